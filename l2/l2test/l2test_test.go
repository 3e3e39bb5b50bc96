package l2test_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/symcache/symcache/l2/l2test"
)

func TestStart(t *testing.T) {
	srv := l2test.Start(t)
	if got := srv.Addr(); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1:PORT", got)
	}
	if got, want := srv.URL(), "redis://"+srv.Addr()+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q) = %v, want nil", srv.URL(), err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("Set = %v, want nil", err)
	}
	if got, err := srv.Client(t).Get(ctx, "k").Result(); got != "v" || err != nil {
		t.Errorf("Get(%q) = %q, %v, want %q, nil", "k", got, err, "v")
	}
	// No persistence.
	for param, want := range map[string]string{"save": "", "appendonly": "no"} {
		got, err := rdb.ConfigGet(ctx, param).Result()
		if err != nil || got[param] != want {
			t.Errorf("CONFIG GET %s = %q, %v, want %q", param, got[param], err, want)
		}
	}
}

func TestStart_twoServers(t *testing.T) {
	a, b := l2test.Start(t), l2test.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	ctx := context.Background()
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Client(t).Exists(ctx, "k").Result(); n != 0 || err != nil {
		t.Errorf("Exists(%q) on the other server = %d, %v, want 0, nil", "k", n, err)
	}
}

func TestServer_StopRestart(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	srv.Stop() // idempotent
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("Ping after Stop = nil, want an error")
	}

	srv.Restart(t)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Ping after Restart = %v, want nil", err)
	}
	if n, err := rdb.Exists(ctx, "k").Result(); n != 0 || err != nil {
		t.Errorf("Exists(%q) after Restart = %d, %v, want 0, nil (empty)", "k", n, err)
	}
}
