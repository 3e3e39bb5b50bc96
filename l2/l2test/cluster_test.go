package l2test_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/symcache/symcache/l2/l2test"
)

// checkGone checks that nothing listens on addrs any more.
func checkGone(t *testing.T, what string, addrs []string) {
	t.Helper()
	for _, addr := range addrs {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s %s still accepts connections after its test ended", what, addr)
		}
	}
}

func TestStartCluster(t *testing.T) {
	var addrs []string
	t.Run("cluster", func(t *testing.T) {
		c := l2test.StartCluster(t)
		addrs = c.Addrs()
		if len(addrs) != 3 {
			t.Fatalf("Addrs() = %v, want 3 nodes", addrs)
		}
		for _, a := range addrs {
			if !strings.HasPrefix(a, "127.0.0.1:") {
				t.Errorf("Addrs() = %v, want 127.0.0.1:PORT each", addrs)
			}
		}
		opt, err := redis.ParseClusterURL(c.URL())
		if err != nil || !slices.Equal(opt.Addrs, addrs) {
			t.Fatalf("ParseClusterURL(%q) = %v, %v, want Addrs %v", c.URL(), opt, err, addrs)
		}

		ctx := context.Background()
		for _, a := range addrs {
			n := redis.NewClient(&redis.Options{Addr: a})
			info, err := n.ClusterInfo(ctx).Result()
			n.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_size:3") {
				t.Errorf("CLUSTER INFO on %s = %q, %v, want cluster_state:ok and cluster_size:3", a, info, err)
			}
		}
		// Keys in every slot range are served, each by its node.
		rdb := c.Client(t)
		served := map[string]bool{}
		for i := range 30 {
			key := fmt.Sprintf("k%d", i)
			if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
				t.Fatalf("SET %s = %v, want nil", key, err)
			}
			m, err := rdb.MasterForKey(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			served[m.Options().Addr] = true
		}
		if len(served) != 3 {
			t.Errorf("30 keys went to nodes %v, want all 3", served)
		}
		// No persistence.
		n := redis.NewClient(&redis.Options{Addr: addrs[0]})
		defer n.Close()
		for param, want := range map[string]string{"save": "", "appendonly": "no"} {
			got, err := n.ConfigGet(ctx, param).Result()
			if err != nil || got[param] != want {
				t.Errorf("CONFIG GET %s = %q, %v, want %q", param, got[param], err, want)
			}
		}
	})
	checkGone(t, "cluster node", addrs)
}
