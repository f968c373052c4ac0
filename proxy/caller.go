package proxy

import (
	"context"
	"net"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

type callerKey struct{}

// WithCaller returns a context that carries c; the proxy's server puts the
// caller of each connection there when it is accepted.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFromContext returns the caller a connection was accepted from. A
// context without one yields the anonymous caller (Known false).
func CallerFromContext(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// PeerCaller reads the kernel's credentials of the process on the other end
// of a Unix socket connection (SO_PEERCRED: the credentials at connect time,
// which the peer cannot forge). Any other connection, or a failed lookup,
// gives an anonymous caller (Known false).
func PeerCaller(conn net.Conn) Caller {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return Caller{}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Caller{}
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return Caller{}
	}
	c := Caller{Known: true, UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}
	resolveNames(&c)
	return c
}

// resolveNames fills in user and group names where the host can tell them
// (/etc/passwd, /etc/group, NSS); numbers without names are left nameless.
func resolveNames(c *Caller) {
	if g, err := user.LookupGroupId(strconv.Itoa(c.GID)); err == nil {
		c.Group = g.Name
	}
	u, err := user.LookupId(strconv.Itoa(c.UID))
	if err != nil {
		return
	}
	c.User = u.Username
	gids, err := u.GroupIds()
	if err != nil {
		return
	}
	for _, gid := range gids {
		if g, err := user.LookupGroupId(gid); err == nil {
			c.Groups = append(c.Groups, g.Name)
		}
	}
}
