package l2test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// setupTimeout bounds how long StartSentinel waits for the replica to sync
	// and for the sentinel to know the replica.
	setupTimeout = 10 * time.Second
	// failoverTimeout bounds how long WaitFailover waits for a new master.
	// A failover takes about 2s here (1s to judge the master down, then the
	// promotion); an attempt the sentinel gives up costs 2 × failover-timeout (6s).
	failoverTimeout = 30 * time.Second
)

// Sentinel is a throwaway Redis Sentinel deployment on free 127.0.0.1 ports,
// without persistence: a master, one replica of it (--replicaof), and one
// sentinel (redis-server --sentinel) that monitors the master as "symcache"
// with a quorum of 1, judges it down after 1s without an answer, and then
// promotes the replica. With a [SentinelConfig], its servers ask for passwords.
type Sentinel struct {
	master, replica, sentinel *Server
	cfg                       SentinelConfig
}

// SentinelConfig is the authentication of a deployment that
// [StartSentinelWith] starts. The zero value asks for no password anywhere,
// as [StartSentinel] does.
type SentinelConfig struct {
	// Password is the data nodes' password. If set, the master and the
	// replica run with --requirepass and --masterauth, and the sentinel
	// authenticates to them with it (sentinel auth-pass). If empty, they
	// ask for none.
	Password string
	// SentinelPassword is the sentinel's own password (requirepass in its
	// configuration), asked of the sentinel's clients only: the data nodes
	// do not know it. If empty, the sentinel asks for none.
	SentinelPassword string
}

// sentinelMaster is the name the sentinel monitors the master under.
const sentinelMaster = "symcache"

// StartSentinel starts a master, a replica of it and a sentinel monitoring it,
// and waits until the replica is in sync and the sentinel knows it (up to 10s
// after the processes answer PING), so that a failover can promote it.
// Everything is stopped in tb.Cleanup. If redis-server is not installed,
// StartSentinel fails tb. No server asks for a password: it is
// StartSentinelWith(tb, SentinelConfig{}).
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	return StartSentinelWith(tb, SentinelConfig{})
}

// StartSentinelWith is [StartSentinel] with the passwords of cfg: the data
// nodes ask for cfg.Password, the sentinel for cfg.SentinelPassword. The
// deployment's own clients ([Sentinel.Client], and those it waits with) give
// both; [Sentinel.URL] holds cfg.Password.
func StartSentinelWith(tb testing.TB, cfg SentinelConfig) *Sentinel {
	tb.Helper()
	requireRedis(tb)
	s := &Sentinel{
		master:   &Server{dir: tb.TempDir()},
		replica:  &Server{dir: tb.TempDir()},
		sentinel: &Server{dir: tb.TempDir()},
		cfg:      cfg,
	}
	s.master.args = func(port int) []string {
		// Sync a new replica at once, not after the default 5s spent waiting for more.
		return append(s.master.plainArgs(port), append(s.authArgs(), "--repl-diskless-sync-delay", "0")...)
	}
	tb.Cleanup(s.master.Stop)
	if err := s.master.startFree(freePort); err != nil {
		tb.Fatalf("l2test: start the master: %v", err)
	}

	s.replica.args = func(port int) []string {
		return append(s.replica.plainArgs(port), append(s.authArgs(), "--replicaof", "127.0.0.1", strconv.Itoa(s.master.port))...)
	}
	tb.Cleanup(s.replica.Stop)
	if err := s.replica.startFree(freePort); err != nil {
		tb.Fatalf("l2test: start the replica: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := waitInfo(ctx, s.replica.Addr(), cfg.Password, "master_link_status:up"); err != nil {
		tb.Fatalf("l2test: replica %s of %s not in sync: %v", s.replica.Addr(), s.master.Addr(), err)
	}

	// The sentinel rewrites its configuration file: it must be its own.
	conf := filepath.Join(s.sentinel.dir, "sentinel.conf")
	text := fmt.Sprintf(`sentinel monitor %[1]s 127.0.0.1 %[2]d 1
sentinel down-after-milliseconds %[1]s 1000
sentinel failover-timeout %[1]s 3000
`, sentinelMaster, s.master.port)
	if cfg.Password != "" {
		text += fmt.Sprintf("sentinel auth-pass %s %s\n", sentinelMaster, confQuote(cfg.Password))
	}
	if cfg.SentinelPassword != "" {
		text += fmt.Sprintf("requirepass %s\n", confQuote(cfg.SentinelPassword))
	}
	err := os.WriteFile(conf, []byte(text), 0o600)
	if err != nil {
		tb.Fatalf("l2test: %v", err)
	}
	s.sentinel.args = func(port int) []string {
		return []string{conf, "--sentinel",
			"--bind", "127.0.0.1",
			"--port", strconv.Itoa(port),
			"--protected-mode", "no",
			"--dir", s.sentinel.dir,
		}
	}
	tb.Cleanup(s.sentinel.Stop)
	if err := s.sentinel.startFree(freePort); err != nil {
		tb.Fatalf("l2test: start the sentinel: %v", err)
	}
	sc := s.sentinelClient()
	defer sc.Close()
	err = poll(ctx, func() error {
		replicas, err := sc.Replicas(ctx, sentinelMaster).Result()
		if err != nil {
			return err
		}
		for _, r := range replicas {
			if net.JoinHostPort(r["ip"], r["port"]) == s.replica.Addr() && r["flags"] == "slave" {
				return nil
			}
		}
		return fmt.Errorf("SENTINEL REPLICAS %s = %v, want %s with flags slave", sentinelMaster, replicas, s.replica.Addr())
	})
	if err != nil {
		tb.Fatalf("l2test: sentinel %s: %v\n%s", s.sentinel.Addr(), err, s.sentinel.output())
	}
	return s
}

// URL returns the deployment's sentinel URL,
// "redis://127.0.0.1:PORT/0?master_name=symcache" where PORT is the sentinel's:
// the form of redis.ParseFailoverURL and of l2.NewClient. With a
// [SentinelConfig.Password], it is "redis://:PASSWORD@127.0.0.1:PORT/0?…"
// (escaped): the data nodes' password, as l2.ParseURL reads it
// (redis.ParseFailoverURL would give it to the sentinel instead). It never
// holds the SentinelPassword, which l2 takes from ClientOptions.SetSentinelAuth.
func (s *Sentinel) URL() string {
	u := url.URL{Scheme: "redis", Host: s.SentinelAddr(), Path: "/0", RawQuery: "master_name=" + sentinelMaster}
	if s.cfg.Password != "" {
		u.User = url.UserPassword("", s.cfg.Password)
	}
	return u.String()
}

// MasterName returns the name the sentinel monitors the master under, "symcache".
func (s *Sentinel) MasterName() string { return sentinelMaster }

// MasterAddr returns the address of the master as started, "127.0.0.1:PORT".
// After a failover, the replica is the master: see [Sentinel.WaitFailover].
func (s *Sentinel) MasterAddr() string { return s.master.Addr() }

// ReplicaAddr returns the address of the replica as started, "127.0.0.1:PORT".
func (s *Sentinel) ReplicaAddr() string { return s.replica.Addr() }

// SentinelAddr returns the sentinel's address, "127.0.0.1:PORT".
func (s *Sentinel) SentinelAddr() string { return s.sentinel.Addr() }

// Client returns a new failover client of the deployment, which asks the
// sentinel for the master, closed in tb.Cleanup. Its context deadlines bound
// socket I/O (ContextTimeoutEnabled), as symcache's own clients do. It gives
// the passwords of the [SentinelConfig]: Password to the master,
// SentinelPassword to the sentinel.
func (s *Sentinel) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            sentinelMaster,
		SentinelAddrs:         []string{s.SentinelAddr()},
		Password:              s.cfg.Password,
		SentinelPassword:      s.cfg.SentinelPassword,
		ContextTimeoutEnabled: true,
	})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// StopMaster kills the master as started (SIGKILL) and waits for it to exit:
// about 1s later the sentinel judges it down and promotes the replica.
// Stopping it twice does nothing.
func (s *Sentinel) StopMaster() { s.master.Stop() }

// WaitFailover waits until the sentinel names the replica as the master and
// the replica says it is one (up to 30s), and returns its address. It fails
// tb, with the sentinel's log, if that does not happen in time.
func (s *Sentinel) WaitFailover(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failoverTimeout)
	defer cancel()
	sc := s.sentinelClient()
	defer sc.Close()
	want := s.replica.Addr()
	err := poll(ctx, func() error {
		addr, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
		if err != nil {
			return err
		}
		if len(addr) != 2 || net.JoinHostPort(addr[0], addr[1]) != want {
			return fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME %s = %v, want %s", sentinelMaster, addr, want)
		}
		return nil
	})
	if err == nil {
		err = waitInfo(ctx, want, s.cfg.Password, "role:master")
	}
	if err != nil {
		tb.Fatalf("l2test: no failover to %s: %v\nsentinel log:\n%s", want, err, s.sentinel.output())
	}
	return want
}

// authArgs returns the redis-server arguments of a data node of s: with a
// password, --requirepass and --masterauth (for a replica, or a master that
// becomes one).
func (s *Sentinel) authArgs() []string {
	if s.cfg.Password == "" {
		return nil
	}
	return []string{"--requirepass", s.cfg.Password, "--masterauth", s.cfg.Password}
}

// sentinelClient returns a new client of s's sentinel, with its password.
// The caller closes it.
func (s *Sentinel) sentinelClient() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr:                  s.sentinel.Addr(),
		Password:              s.cfg.SentinelPassword,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
	})
}

// confQuote quotes v for a line of a redis.conf: in double quotes, with
// quotes, backslashes and bytes other than printable ASCII escaped, as
// redis-server's config parser reads them.
func confQuote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// waitInfo waits until INFO replication on the server at addr, which asks for
// password if it is not empty, has line.
func waitInfo(ctx context.Context, addr, password, line string) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer rdb.Close()
	return poll(ctx, func() error {
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		for l := range strings.Lines(info) {
			if strings.TrimSpace(l) == line {
				return nil
			}
		}
		return fmt.Errorf("INFO replication on %s says:\n%s", addr, info)
	})
}
