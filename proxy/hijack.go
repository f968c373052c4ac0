package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// relayRawHijack forwards a hijacking request (attach, exec start) that did
// not ask for a protocol upgrade. dockerd then answers "200 OK" with no
// length and turns the connection into a raw bidirectional stream: stdin
// flows in after the request, output flows out until dockerd closes.
// httputil.ReverseProxy only relays upgrades (101), so the proxy dials
// dockerd itself, and from the answer on copies bytes both ways with
// half-close, never reading them as HTTP again.
func (p *Proxy) relayRawHijack(w http.ResponseWriter, r *http.Request, x *exchange) {
	ctx := r.Context()
	upstream, err := p.dialUpstream(ctx)
	if err != nil {
		p.upstreamFailed(w, r, err)
		return
	}
	defer upstream.Close()

	out := r.Clone(ctx)
	out.URL.Scheme, out.URL.Host = p.upstream.scheme, p.upstream.host
	out.RequestURI = ""
	out.Close = false
	out.Header.Del("Connection")
	if err := out.Write(upstream); err != nil {
		p.upstreamFailed(w, r, err)
		return
	}
	upR := bufio.NewReaderSize(upstream, 64<<10)
	res, err := http.ReadResponse(upR, out)
	if err != nil {
		p.upstreamFailed(w, r, err)
		return
	}
	defer res.Body.Close()
	_ = p.upstreamResponded(res)

	// dockerd hijacked the connection: its answer has no length and no
	// chunks (even its 404 for a missing container).
	raw := res.ContentLength < 0 && len(res.TransferEncoding) == 0
	if !raw {
		// An ordinary answer: relay it as one.
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		_, _ = io.Copy(w, res.Body)
		return
	}

	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		x.ev.Error = "cannot take over the client connection: " + err.Error()
		return
	}
	defer client.Close()
	// Cut the relay when the proxy shuts down.
	stop := context.AfterFunc(p.baseCtx, func() { client.Close(); upstream.Close() })
	defer stop()

	// dockerd's own status line and headers, then the raw stream.
	fmt.Fprintf(brw, "HTTP/%d.%d %s\r\n", res.ProtoMajor, res.ProtoMinor, strings.TrimSpace(res.Status))
	_ = res.Header.Write(brw)
	_, _ = brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		return
	}

	done := make(chan struct{}, 2)
	go func() { // client → dockerd (stdin), including bytes already buffered
		_, _ = io.Copy(upstream, brw.Reader)
		closeWrite(upstream)
		done <- struct{}{}
	}()
	go func() { // dockerd → client (output)
		_, _ = io.Copy(client, upR)
		closeWrite(client)
		done <- struct{}{}
	}()
	<-done
	<-done
}

// closeWrite half-closes c so the other end sees EOF while replies can
// still flow back.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// dialUpstream opens a connection of its own to dockerd (TLS included).
func (p *Proxy) dialUpstream(ctx context.Context) (net.Conn, error) {
	conn, err := p.upstream.dial(ctx)
	if err != nil {
		return nil, err
	}
	if p.tlsConfig == nil {
		return conn, nil
	}
	tconn := tls.Client(conn, p.tlsConfig.Clone())
	if err := tconn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tconn, nil
}
