package l2test_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/symcache/symcache/l2/l2test"
)

func TestStartSentinel(t *testing.T) {
	var addrs []string
	t.Run("sentinel", func(t *testing.T) {
		s := l2test.StartSentinel(t)
		addrs = []string{s.MasterAddr(), s.ReplicaAddr(), s.SentinelAddr()}
		if got, want := s.URL(), "redis://"+s.SentinelAddr()+"/0?master_name=symcache"; got != want {
			t.Errorf("URL() = %q, want %q", got, want)
		}
		opt, err := redis.ParseFailoverURL(s.URL())
		if err != nil || opt.MasterName != s.MasterName() || !slices.Equal(opt.SentinelAddrs, []string{s.SentinelAddr()}) {
			t.Fatalf("ParseFailoverURL(%q) = %+v, %v, want master %q, sentinel %s", s.URL(), opt, err, s.MasterName(), s.SentinelAddr())
		}

		ctx := context.Background()
		rdb := s.Client(t)
		setReplicated(t, rdb)
		master := redis.NewClient(&redis.Options{Addr: s.MasterAddr()})
		defer master.Close()
		if got, err := master.Get(ctx, "k").Result(); got != "v" || err != nil {
			t.Errorf("GET k on MasterAddr() = %q, %v, want %q, nil", got, err, "v")
		}

		s.StopMaster()
		s.StopMaster() // idempotent
		if err := master.Ping(ctx).Err(); err == nil {
			t.Fatal("PING on the master after StopMaster = nil, want an error")
		}
		checkFailover(t, s, rdb)
	})
	checkGone(t, "sentinel deployment process", addrs)
}

// TestStartSentinelWith checks a deployment whose data nodes and sentinel ask
// for passwords, with characters that need quoting in a URL and in
// sentinel.conf: Client gives both and writes, which reach the replica; a
// client without one of them is refused; and the sentinel, which has the
// data nodes' password, still fails over.
func TestStartSentinelWith(t *testing.T) {
	cfg := l2test.SentinelConfig{Password: `data pw:@/%"\`, SentinelPassword: `sentinel pw "#1"\`}
	var addrs []string
	t.Run("sentinel", func(t *testing.T) {
		s := l2test.StartSentinelWith(t, cfg)
		addrs = []string{s.MasterAddr(), s.ReplicaAddr(), s.SentinelAddr()}
		u, err := url.Parse(s.URL())
		if err != nil {
			t.Fatalf("url.Parse(URL()) = %v, want nil", err)
		}
		if pw, _ := u.User.Password(); pw != cfg.Password || u.Host != s.SentinelAddr() || u.RawQuery != "master_name=symcache" {
			t.Errorf("URL() = %q, want the data password, the sentinel %s and master_name=symcache", s.URL(), s.SentinelAddr())
		}
		if strings.Contains(s.URL(), url.QueryEscape(cfg.SentinelPassword)) || strings.Contains(s.URL(), "sentinel") {
			t.Errorf("URL() = %q, which holds the sentinel password", s.URL())
		}

		ctx := context.Background()
		rdb := s.Client(t)
		setReplicated(t, rdb)

		// Each server asks for its password.
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		for _, tt := range []struct {
			name string
			opt  redis.Options
			ok   bool
		}{
			{"master, no password", redis.Options{Addr: s.MasterAddr()}, false},
			{"master, password", redis.Options{Addr: s.MasterAddr(), Password: cfg.Password}, true},
			{"replica, no password", redis.Options{Addr: s.ReplicaAddr()}, false},
			{"replica, password", redis.Options{Addr: s.ReplicaAddr(), Password: cfg.Password}, true},
			{"sentinel, no password", redis.Options{Addr: s.SentinelAddr()}, false},
			{"sentinel, the data password", redis.Options{Addr: s.SentinelAddr(), Password: cfg.Password}, false},
			{"sentinel, its password", redis.Options{Addr: s.SentinelAddr(), Password: cfg.SentinelPassword}, true},
		} {
			opt := tt.opt
			opt.ContextTimeoutEnabled, opt.MaxRetries = true, -1
			c := redis.NewClient(&opt)
			err := c.Ping(tctx).Err()
			c.Close()
			if (err == nil) != tt.ok {
				t.Errorf("PING on the %s = %v, want success %t", tt.name, err, tt.ok)
			}
		}

		// A failover client without the sentinel's password is refused.
		for _, tt := range []struct {
			name string
			opt  redis.FailoverOptions
		}{
			{"no sentinel password", redis.FailoverOptions{Password: cfg.Password}},
			{"no data password", redis.FailoverOptions{SentinelPassword: cfg.SentinelPassword}},
		} {
			opt := tt.opt
			opt.MasterName, opt.SentinelAddrs = s.MasterName(), []string{s.SentinelAddr()}
			opt.ContextTimeoutEnabled, opt.MaxRetries = true, -1
			c := redis.NewFailoverClient(&opt)
			err := c.Set(tctx, "k", "other", 0).Err()
			c.Close()
			if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
				t.Errorf("SET through a failover client with %s = %v, want a NOAUTH error", tt.name, err)
			}
		}
		if got, err := rdb.Get(ctx, "k").Result(); got != "v" || err != nil {
			t.Errorf("GET k = %q, %v, want %q, nil", got, err, "v")
		}

		s.StopMaster()
		checkFailover(t, s, rdb)
	})
	checkGone(t, "sentinel deployment process", addrs)
}

// checkFailover waits for the failover of s after its master stopped, and
// checks that rdb, a failover client, then reads k = "v" from the new master.
func checkFailover(t *testing.T, s *l2test.Sentinel, rdb *redis.Client) {
	t.Helper()
	if got := s.WaitFailover(t); got != s.ReplicaAddr() {
		t.Errorf("WaitFailover() = %s, want the replica %s", got, s.ReplicaAddr())
	}
	var (
		got string
		err error
	)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if got, err = rdb.Get(context.Background(), "k").Result(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != "v" || err != nil {
		t.Errorf("GET k through the sentinel after the failover = %q, %v, want %q, nil", got, err, "v")
	}
}

// setReplicated sets k = "v" through rdb, a failover client, and waits until
// the replica has it.
func setReplicated(t *testing.T, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through the sentinel = %v, want nil", err)
	}
	if n, err := rdb.Wait(ctx, 1, 5*time.Second).Result(); n != 1 || err != nil {
		t.Fatalf("WAIT 1 = %d, %v, want 1, nil", n, err)
	}
}
