package testutil_test

import (
	"net"
	"testing"

	"github.com/symcache/symcache/internal/testutil"
)

func TestFreeAddr(t *testing.T) {
	addr := testutil.FreeAddr(t)
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("FreeAddr() = %q, want 127.0.0.1:port", addr)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("Dial(FreeAddr()) = nil error, want connection refused")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("Listen(FreeAddr()) = %v, want a listener", err)
	}
	ln.Close()
}
