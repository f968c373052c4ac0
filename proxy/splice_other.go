//go:build !linux

package proxy

import (
	"bufio"
	"net"
)

// splicePump is splice(2) on Linux; elsewhere pump copies.
func splicePump(net.Conn, net.Conn, *bufio.Reader) (bool, error) { return false, nil }
