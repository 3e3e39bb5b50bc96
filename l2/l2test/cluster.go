package l2test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTimeout bounds how long StartCluster waits for redis-cli --cluster
// create and then for every node to say cluster_state:ok.
const clusterTimeout = 30 * time.Second

// clusterBusOffset is how far above its port a cluster node listens for the
// other nodes (the cluster bus), unless told otherwise (--cluster-port, Redis 7+).
const clusterBusOffset = 10000

// Cluster is a throwaway Redis Cluster of three masters, without replicas and
// without persistence, each a redis-server on a free 127.0.0.1 port. The 16384
// slots are spread over the three, as redis-cli --cluster create spreads them.
type Cluster struct {
	nodes []*Server
}

// StartCluster starts three cluster-enabled redis-servers, joins them into a
// cluster with redis-cli --cluster create, and waits until every node says
// cluster_state:ok (up to 30s). Everything is stopped in tb.Cleanup.
//
// If redis-server lacks cluster support (it refuses --cluster-enabled, or
// redis-cli has no --cluster), StartCluster skips tb, saying so; with CI=true in
// the environment it fails tb instead, so that CI never silently tests less.
// A missing redis-server or redis-cli fails tb.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	requireRedis(tb)
	if _, err := exec.LookPath("redis-cli"); err != nil {
		tb.Fatal("redis-cli not installed: run `apt-get install -y redis-server` (or `make test`, which does)")
	}
	dir := tb.TempDir()
	c := new(Cluster)
	for range 3 {
		s := &Server{dir: dir}
		s.args = func(port int) []string {
			return append(s.plainArgs(port),
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes-"+strconv.Itoa(port)+".conf"),
			)
		}
		tb.Cleanup(s.Stop)
		if err := s.startFree(clusterPort); err != nil {
			if noClusterSupport(err.Error()) {
				skipOrFail(tb, "l2test: redis-server lacks cluster support: %v", err)
			}
			tb.Fatalf("l2test: start a cluster node: %v", err)
		}
		c.nodes = append(c.nodes, s)
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, "redis-cli", args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second // its output pipe is closed even if it hangs after the kill
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "[OK] All 16384 slots covered") {
		if noClusterSupport(string(out)) {
			skipOrFail(tb, "l2test: redis-cli lacks cluster support (--cluster): %s", out)
		}
		tb.Fatalf("l2test: redis-cli --cluster create %s: %v\n%s", strings.Join(c.Addrs(), " "), err, out)
	}
	if err := c.waitOK(ctx); err != nil {
		tb.Fatalf("l2test: cluster %s: %v", strings.Join(c.Addrs(), " "), err)
	}
	return c
}

// Addrs returns the nodes' addresses, "127.0.0.1:PORT" each.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// URL returns a cluster URL naming every node as a seed,
// "redis://127.0.0.1:P1?addr=127.0.0.1:P2&addr=127.0.0.1:P3", the form of
// redis.ParseClusterURL and of l2.NewClient.
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	return "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
}

// Client returns a new cluster client seeded with every node, closed in
// tb.Cleanup. Its context deadlines bound socket I/O (ContextTimeoutEnabled),
// as symcache's own clients do.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// waitOK waits until every node says cluster_state:ok and knows every other.
func (c *Cluster) waitOK(ctx context.Context) error {
	want := "cluster_known_nodes:" + strconv.Itoa(len(c.nodes))
	for _, s := range c.nodes {
		rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
		err := poll(ctx, func() error {
			info, err := rdb.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, want) {
				return fmt.Errorf("CLUSTER INFO says:\n%s", info)
			}
			return nil
		})
		rdb.Close()
		if err != nil {
			return fmt.Errorf("node %s not ready: %w", s.Addr(), err)
		}
	}
	return nil
}

// clusterPort returns a free port of 127.0.0.1 whose cluster bus port, 10000
// above, was free too a moment ago.
func clusterPort() (int, error) {
	var errs []error
	for range 100 {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		if port+clusterBusOffset > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+clusterBusOffset)))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no port P with P+%d free among 100 tried: %w", clusterBusOffset, errors.Join(errs...))
}

// noClusterSupport reports whether redis-server's or redis-cli's output says
// it does not know about clusters.
func noClusterSupport(out string) bool {
	return strings.Contains(out, "Bad directive") && strings.Contains(out, "cluster") ||
		strings.Contains(out, "Unrecognized option") && strings.Contains(out, "--cluster")
}

// skipOrFail skips tb, or fails it when the environment says CI=true: CI must
// run every test, so a missing capability there is an error to fix.
func skipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		tb.Fatalf(format+" (CI=true: failing rather than skipping)", args...)
	}
	tb.Skipf(format, args...)
}
