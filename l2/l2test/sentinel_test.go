package l2test_test

import (
	"context"
	"slices"
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
		if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET through the sentinel = %v, want nil", err)
		}
		if n, err := rdb.Wait(ctx, 1, 5*time.Second).Result(); n != 1 || err != nil {
			t.Fatalf("WAIT 1 = %d, %v, want 1, nil", n, err)
		}
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
		if got := s.WaitFailover(t); got != s.ReplicaAddr() {
			t.Errorf("WaitFailover() = %s, want the replica %s", got, s.ReplicaAddr())
		}
		var got string
		for deadline := time.Now().Add(30 * time.Second); ; {
			if got, err = rdb.Get(ctx, "k").Result(); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got != "v" || err != nil {
			t.Errorf("GET k through the sentinel after the failover = %q, %v, want %q, nil", got, err, "v")
		}
	})
	checkGone(t, "sentinel deployment process", addrs)
}
