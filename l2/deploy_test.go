package l2_test

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// calls returns how many times the server behind rdb ran cmd without an
// error since the last CONFIG RESETSTAT, from INFO commandstats. Commands that
// scripts and transactions run count too.
func calls(t *testing.T, rdb *redis.Client, cmd string) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats on %s: %v", rdb.Options().Addr, err)
	}
	m := regexp.MustCompile(`(?m)^cmdstat_` + cmd + `:calls=(\d+),.*failed_calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	failed, _ := strconv.Atoi(m[2])
	return n - failed // an EVALSHA answered NOSCRIPT ran nothing
}

// TestStore_cluster checks a Store over a Redis Cluster reached through
// NewClient, with both cluster URL forms: a Put and its reads, the keys of a
// market in one slot of one node, and Put as one atomic unit there.
func TestStore_cluster(t *testing.T) {
	c := l2test.StartCluster(t)
	nodes := map[string]*redis.Client{}
	for _, addr := range c.Addrs() {
		nodes[addr] = redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		defer nodes[addr].Close()
	}
	body := fixtures.Read(t, "binance/usdm_exchangeinfo.json")
	const current, lastGood = "symcache:{usdm}:current", "symcache:{usdm}:last_good"

	for i, tt := range []struct{ name, url string }{
		{"addr seeds", c.URL()},
		{"cluster=true", "redis://" + c.Addrs()[1] + "?cluster=true"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.url
			ctx := context.Background()
			rdb, err := l2.NewClient(raw)
			if err != nil {
				t.Fatalf("NewClient(%q) = %v, want nil", raw, err)
			}
			defer rdb.Close()
			cc, ok := rdb.(*redis.ClusterClient)
			if !ok {
				t.Fatalf("NewClient(%q) = %T, want *redis.ClusterClient", raw, rdb)
			}
			for addr, n := range nodes {
				if err := n.FlushAll(ctx).Err(); err != nil {
					t.Fatalf("FLUSHALL on %s: %v", addr, err)
				}
				if err := n.ConfigResetStat(ctx).Err(); err != nil {
					t.Fatalf("CONFIG RESETSTAT on %s: %v", addr, err)
				}
			}

			// The first call loads the slot map: a generous budget.
			s := l2.New(l2.Config{Client: rdb, Logger: discard(), Timeout: 2 * time.Second, WriteTimeout: 5 * time.Second})
			want := envelope("usdm", body)
			want.ServerTime += int64(i)
			if err := s.Put(ctx, want, 5*time.Minute); err != nil {
				t.Fatalf("Put = %v, want nil", err)
			}

			// One slot, the hash tag's.
			slot, err := cc.ClusterKeySlot(ctx, current).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{lastGood, "usdm"} {
				if got, err := cc.ClusterKeySlot(ctx, key).Result(); got != slot || err != nil {
					t.Errorf("CLUSTER KEYSLOT %s = %d, %v, want %d (that of %s)", key, got, err, slot, current)
				}
			}
			// One node holds both, and every other key of the market; the others, nothing.
			var owner string
			for addr, n := range nodes {
				count, err := n.ClusterCountKeysInSlot(ctx, int(slot)).Result()
				if err != nil {
					t.Fatalf("CLUSTER COUNTKEYSINSLOT %d on %s: %v", slot, addr, err)
				}
				size, err := n.DBSize(ctx).Result()
				if err != nil {
					t.Fatalf("DBSIZE on %s: %v", addr, err)
				}
				switch {
				case count >= 2 && size == count && owner == "":
					owner = addr
					if both, err := n.Exists(ctx, current, lastGood).Result(); both != 2 || err != nil {
						t.Errorf("EXISTS %s %s on %s = %d, %v, want 2, nil", current, lastGood, addr, both, err)
					}
				case count != 0 || size != 0:
					t.Errorf("node %s holds %d keys in slot %d, %d in all, want them all on one node, none elsewhere", addr, count, slot, size)
				}
			}
			if owner == "" {
				t.Fatalf("no node holds the keys of slot %d", slot)
			}
			if m, err := cc.MasterForKey(ctx, lastGood); err != nil || m.Options().Addr != owner {
				t.Errorf("MasterForKey(%s) = %v, want the node %s", lastGood, err, owner)
			}

			// Put was atomic: one script or MULTI/EXEC, on that node only, that
			// set both keys.
			for addr, n := range nodes {
				units, sets := calls(t, n, "exec")+calls(t, n, "eval")+calls(t, n, "evalsha"), calls(t, n, "set")
				wantUnits, wantSets := 0, 0
				if addr == owner {
					wantUnits, wantSets = 1, 2
				}
				if units != wantUnits || sets != wantSets {
					t.Errorf("node %s ran %d EXEC, EVAL or EVALSHA and %d SET, want %d and %d", addr, units, sets, wantUnits, wantSets)
				}
			}

			// The bounded reads (STRLEN, EXISTS, GETRANGE) and the scripts
			// of the meta and the lock, which name their key as KEYS[1], go
			// to the node that owns the key.
			checkReads(t, s, "usdm", want, "")
			if m, err := s.Meta(ctx, "usdm"); err != nil || m.ETag != want.ETag {
				t.Errorf("Meta(usdm) = %+v, %v, want the Put's", m, err)
			}
			small := l2.New(l2.Config{Client: rdb, Logger: discard(), Timeout: 2 * time.Second, MaxValueBytes: 1 << 10})
			if _, err := small.Current(ctx, "usdm"); !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
				t.Errorf("Current(usdm) with MaxValueBytes 1 KiB = %v, want an error matching ErrMiss", err)
			}
			if n := small.Errors()["too_large"]; n != 1 {
				t.Errorf(`Errors()["too_large"] after a value over MaxValueBytes = %d, want 1`, n)
			}
			const lock = "symcache:{usdm}:lock"
			if err := cc.Set(ctx, lock, "backoff:set by hand", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if tok, held, err := s.Lock(ctx, "usdm", time.Second); err != nil || tok != "" || !held.Backoff {
				t.Errorf("Lock(usdm) over a backoff marker without a TTL = %q, %+v, %v, want it held as a backoff", tok, held, err)
			}
			if pttl := cc.PTTL(ctx, lock).Val(); pttl <= 0 || pttl > 5*time.Minute {
				t.Errorf("PTTL %s after Lock = %v, want in (0, 5m]", lock, pttl)
			}
			if ok, err := s.ClearBackoff(ctx, "usdm"); err != nil || !ok {
				t.Errorf("ClearBackoff(usdm) of a backoff marker = %v, %v, want true, nil", ok, err)
			}
			tok, _, err := s.Lock(ctx, "usdm", time.Second)
			if err != nil || tok == "" {
				t.Fatalf("Lock(usdm) after ClearBackoff = %q, %v, want a token", tok, err)
			}
			if ok, err := s.ClearBackoff(ctx, "usdm"); err != nil || ok {
				t.Errorf("ClearBackoff(usdm) of a live lock = %v, %v, want false, nil", ok, err)
			}
			if err := s.Unlock(ctx, "usdm", tok); err != nil {
				t.Errorf("Unlock(usdm) after a ClearBackoff that left it = %v, want nil", err)
			}

			// The change log: its Stream in the same slot, written by
			// Advance's script with the snapshot, read by Changes.
			next := want
			next.FetchedAt = next.FetchedAt.Add(time.Second)
			next.ETag = `"next"`
			if _, _, err := s.Advance(ctx, l2.Advance{Envelope: next, TTL: time.Minute, Base: l2.Meta{Market: "usdm", FetchedAt: want.FetchedAt, ETag: want.ETag}, Changes: [][]byte{[]byte(`{"c":1}`)}}); err != nil {
				t.Fatalf("Advance on a cluster = %v", err)
			}
			if got, err := cc.ClusterKeySlot(ctx, "symcache:{usdm}:changes").Result(); got != slot || err != nil {
				t.Errorf("CLUSTER KEYSLOT of the change log = %d, %v, want %d", got, err, slot)
			}
			w, err := s.Changes(ctx, "usdm", "0-0", 10)
			if err != nil || len(w.Entries) != 1 || w.Entries[0].Reset == "" {
				// A snapshot stored by Put: the log starts with a reset.
				t.Errorf("Changes on a cluster = %+v, %v, want the reset", w, err)
			}
		})
	}
}

// TestStore_sentinel checks a Store over a Sentinel deployment reached
// through NewClient: a Put and its reads, then a failover, after which the
// same client reaches the new master, which has what was put, and writes there.
func TestStore_sentinel(t *testing.T) {
	d := l2test.StartSentinel(t)
	ctx := context.Background()
	rdb, err := l2.NewClient(d.URL())
	if err != nil {
		t.Fatalf("NewClient(%q) = %v, want nil", d.URL(), err)
	}
	defer rdb.Close()
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), Timeout: time.Second, WriteTimeout: 5 * time.Second})
	want := envelope("usdm", fixtures.Read(t, "binance/usdm_exchangeinfo.json"))
	if err := s.Put(ctx, want, 5*time.Minute); err != nil {
		t.Fatalf("Put = %v, want nil", err)
	}
	checkReads(t, s, "usdm", want, "")
	master := redis.NewClient(&redis.Options{Addr: d.MasterAddr(), ContextTimeoutEnabled: true})
	defer master.Close()
	if n, err := master.Exists(ctx, "symcache:{usdm}:current", "symcache:{usdm}:last_good").Result(); n != 2 || err != nil {
		t.Fatalf("EXISTS both keys on the master %s = %d, %v, want 2, nil", d.MasterAddr(), n, err)
	}
	// Through the failover client, so on the master: the replica has both keys.
	if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int64(); n < 1 || err != nil {
		t.Fatalf("WAIT 1 5000 = %d, %v, want 1, nil", n, err)
	}

	start := time.Now()
	d.StopMaster()
	newMaster := d.WaitFailover(t)
	// The client learns of the new master by itself: poll, bounded.
	var got l2.Envelope
	for deadline := time.Now().Add(30 * time.Second); ; {
		if got, err = s.Current(ctx, "usdm"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Current(%q) 30s after the failover to %s = %v, want nil", "usdm", newMaster, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("failover to %s, and Current through it, %v after the master stopped", newMaster, time.Since(start).Round(time.Millisecond))
	checkEnvelope(t, `Current("usdm") after the failover`, got, want)

	// Writes go to the new master.
	next := envelope("usdm", []byte(`{"symbols":[{"symbol":"BTCUSDT"}]}`))
	next.FetchedAt = next.FetchedAt.Add(time.Minute)
	next.ServerTime++
	if err := s.Put(ctx, next, 5*time.Minute); err != nil {
		t.Fatalf("Put after the failover = %v, want nil", err)
	}
	promoted := redis.NewClient(&redis.Options{Addr: newMaster, ContextTimeoutEnabled: true})
	defer promoted.Close()
	direct := l2.New(l2.Config{Client: promoted, Logger: discard(), Timeout: time.Second})
	checkReads(t, direct, "usdm", next, "on the new master")
}

// TestStore_sentinelAuth checks a Store over a Sentinel deployment whose data
// nodes and sentinel ask for different passwords: the URL carries the data
// nodes' and SetSentinelAuth the sentinel's, and a Put and its reads work.
// Without the sentinel's password, or with a wrong one, Put fails with an
// error that holds neither password.
func TestStore_sentinelAuth(t *testing.T) {
	cfg := l2test.SentinelConfig{Password: "data-Pa55:@", SentinelPassword: "sentinel-Pa55"}
	d := l2test.StartSentinelWith(t, cfg)
	ctx := context.Background()
	want := envelope("usdm", fixtures.Read(t, "binance/usdm_exchangeinfo.json"))
	secrets := []string{cfg.Password, url.QueryEscape(cfg.Password), cfg.SentinelPassword}

	for _, tt := range []struct {
		name     string
		set      bool
		password string
		refusal  string // in Put's error; "" for none
	}{
		{"sentinel password", true, cfg.SentinelPassword, ""},
		{"no sentinel password", false, "", "NOAUTH"},
		{"wrong sentinel password", true, "hunter2-wrong", "WRONGPASS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := l2.ParseURL(d.URL())
			if err != nil {
				t.Fatalf("ParseURL(%q) = %v, want nil", d.URL(), err)
			}
			if tt.set {
				if err := o.SetSentinelAuth("", tt.password); err != nil {
					t.Fatalf("SetSentinelAuth = %v, want nil", err)
				}
			}
			for _, secret := range append(secrets, tt.password) {
				if secret != "" && strings.Contains(o.String(), secret) {
					t.Errorf("String() = %q, which holds the password %q", o.String(), secret)
				}
			}
			rdb, err := o.NewClient()
			if err != nil {
				t.Fatalf("NewClient = %v, want nil", err)
			}
			defer rdb.Close()
			s := l2.New(l2.Config{Client: rdb, Logger: discard(), Timeout: time.Second, WriteTimeout: 5 * time.Second})
			err = s.Put(ctx, want, 5*time.Minute)
			if tt.refusal != "" {
				if err == nil || !strings.Contains(err.Error(), tt.refusal) {
					t.Fatalf("Put = %v, want a %s error from the sentinel", err, tt.refusal)
				}
				for _, secret := range append(secrets, tt.password) {
					if secret != "" && strings.Contains(err.Error(), secret) {
						t.Errorf("Put = %q, which holds the password %q", err, secret)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Put = %v, want nil", err)
			}
			checkReads(t, s, "usdm", want, "")
		})
	}
}
