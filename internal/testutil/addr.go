package testutil

import (
	"net"
	"testing"
)

// FreeAddr returns a loopback address, "127.0.0.1:port", that nothing
// listens on: the port was free a moment ago. A server can listen there, and
// until one does a client is refused there. It calls tb.Fatal if no port
// can be had.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testutil: FreeAddr: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
