package l2_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// TestStore_TLS runs the snapshot round trip over rediss:// against a real
// redis-server serving TLS, with the server's certificate verified; a client
// that does not trust its CA is refused.
func TestStore_TLS(t *testing.T) {
	srv := l2test.StartTLS(t)
	opts, err := l2.ParseURL(srv.TLSURL())
	if err != nil {
		t.Fatal(err)
	}
	if opts.Single == nil || opts.Single.TLSConfig == nil {
		t.Fatalf("ParseURL(%s): no TLS configured: %+v", srv.TLSURL(), opts)
	}

	untrusted, err := opts.NewClient() // the system's roots: the throwaway CA is not among them
	if err != nil {
		t.Fatal(err)
	}
	defer untrusted.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := untrusted.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("PING over TLS without trusting the CA = %v, want a certificate error", err)
	}

	opts.Single.TLSConfig.RootCAs = srv.CAPool
	rdb, err := opts.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), Timeout: time.Second})
	want := envelope("usdm", fixtures.Read(t, "binance/usdm_exchangeinfo.json"))
	if err := s.Put(context.Background(), want, time.Minute); err != nil {
		t.Fatalf("Put over TLS = %v", err)
	}
	got, err := s.Current(context.Background(), "usdm")
	if err != nil {
		t.Fatalf("Current over TLS = %v", err)
	}
	checkEnvelope(t, "Current over TLS", got, want)
	// The same value seen through the plain port: one server.
	if n := srv.Client(t).Exists(context.Background(), "symcache:{usdm}:current").Val(); n != 1 {
		t.Errorf("the value written over TLS is not on the server")
	}
}
