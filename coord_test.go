package symcache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// TestDeployment_OneFetchPerInterval runs three processes against one Redis
// over several refresh intervals: Binance sees one request per market per
// interval, whichever process makes it, and every process serves it. (COIN-M:
// the bigger answers take much of a short interval under -race.)
func TestDeployment_OneFetchPerInterval(t *testing.T) {
	// Periods long enough for a fetch, its gzip and its write under -race on
	// a busy machine, well within the lease (three quarters of a period).
	const interval = 2 * time.Second
	served := []exchangeinfo.Market{exchangeinfo.COINM}
	d := newWorld(t, withRedis(relaxed))
	// Start just after a period begins, so that the warm-up fetch and the
	// first refresh fall in different periods.
	time.Sleep(time.Until(time.Now().Truncate(interval).Add(interval + 100*time.Millisecond)))
	start := time.Now()
	var caches []*symcache.Cache
	for range 3 {
		caches = append(caches, d.process(symcache.Config{RefreshInterval: interval, TTL: time.Minute, FetchTimeout: time.Second}, markets(served...)))
	}
	const periods = 4
	time.Sleep(time.Until(start.Truncate(interval).Add(periods*interval + 600*time.Millisecond)))

	for _, m := range served {
		reqs := d.requests(m)
		perPeriod := map[time.Time]int{}
		for _, at := range reqs {
			perPeriod[at.Truncate(interval)]++
		}
		// The warm-up's period, then one refresh at the start of each period after it.
		for k := range periods + 1 {
			p := start.Truncate(interval).Add(time.Duration(k) * interval)
			if n := perPeriod[p]; n != 1 {
				t.Errorf("%s: %d requests in the period starting %s, want 1 (all: %v)", m, n, p.Format("15:04:05.000"), reqs)
			}
		}
		if len(reqs) != periods+1 {
			t.Errorf("%s: %d upstream requests over %d periods from 3 processes, want %d", m, len(reqs), periods+1, periods+1)
		}
	}
	var acquired, adopted uint64
	for _, c := range caches {
		for _, st := range c.Stats() {
			acquired += st.LocksAcquired
			adopted += st.Adopted
			if st.LockErrors != 0 {
				t.Errorf("%s: %d lock errors with Redis up", st.Market, st.LockErrors)
			}
		}
		for _, m := range served {
			r, err := c.Get(context.Background(), m)
			if err != nil || r.Source != symcache.HitL1 {
				t.Errorf("Get(%s) = %v, %v, want a HIT-L1", m, r.Source, err)
			}
		}
	}
	if acquired != uint64(len(served))*(periods+1) {
		t.Errorf("locks acquired = %d, want one per fetch (%d)", acquired, uint64(len(served))*(periods+1))
	}
	if adopted < uint64(len(served))*2*periods {
		t.Errorf("snapshots adopted from another process = %d, want at least %d", adopted, uint64(len(served))*2*periods)
	}
}

// TestDeployment_NewSnapshotReachesEveryL1 checks that after one process
// stores a new snapshot every process serves it within a second, without
// asking Binance.
func TestDeployment_NewSnapshotReachesEveryL1(t *testing.T) {
	d := newWorld(t, withRedis(relaxed))
	var caches []*symcache.Cache
	for range 3 {
		caches = append(caches, d.process(symcache.Config{RefreshInterval: -1, TTL: time.Hour}))
	}
	old := get(t, caches[0], exchangeinfo.USDM, symcache.Miss).Snapshot
	for i, c := range caches[1:] {
		// From L2, or already in L1: process 0's store was announced.
		if r, err := c.Get(context.Background(), exchangeinfo.USDM); err != nil || r.Source == symcache.Miss || r.Snapshot.ETag() != old.ETag() {
			t.Fatalf("process %d: Get(usdm) = %v, %v, want process 0's snapshot", i+1, r.Source, err)
		}
	}

	// Binance changes (its serverTime, here); one process learns it.
	ms := strconv.FormatInt(old.ServerTime().UnixMilli(), 10)
	body := bytes.Replace(old.Body(), []byte(ms), []byte(ms+"1"), 1)
	d.upstream.Set(exchangeinfo.USDM.Path(), fetchtest.Response{Body: body})
	r, err := caches[2].Refresh(context.Background(), exchangeinfo.USDM)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Snapshot
	if s.ETag() == old.ETag() {
		t.Fatal("the new answer has the old ETag")
	}
	learned := time.Now()
	for i, c := range caches {
		for {
			r, err := c.Get(context.Background(), exchangeinfo.USDM)
			if err != nil {
				t.Fatal(err)
			}
			if r.Snapshot.ETag() == s.ETag() {
				if r.Source != symcache.HitL1 {
					t.Errorf("process %d served the new snapshot as %v, want HIT-L1", i, r.Source)
				}
				break
			}
			if time.Since(learned) > time.Second {
				t.Fatalf("process %d still serves ETag %s a second after process 2 stored %s", i, r.Snapshot.ETag(), s.ETag())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if n := len(d.requests(exchangeinfo.USDM)); n != 2 {
		t.Errorf("upstream requests = %d, want 2 (the first load, the refresh)", n)
	}
}

// TestDeployment_LockHolderDies checks that a process that took the
// refresh lock and died keeps the others from Binance for one lease at most.
func TestDeployment_LockHolderDies(t *testing.T) {
	d := newWorld(t, withRedis(relaxed))
	const lease = 700 * time.Millisecond
	dead := l2.New(l2.Config{Client: d.redis.Client(t), Logger: discard(), Timeout: time.Second})
	token, _, err := dead.Lock(context.Background(), "spot", lease)
	if err != nil || token == "" {
		t.Fatalf("Lock = %q, %v", token, err)
	}
	locked := time.Now() // and never released: the holder died mid-fetch

	// A lock that never ran out would keep the Get waiting for FetchTimeout
	// and LockLease, then fail.
	c := d.process(symcache.Config{RefreshInterval: -1, LockLease: lease, FetchTimeout: 30 * time.Second})
	r := get(t, c, exchangeinfo.Spot, symcache.Miss)
	took := time.Since(locked)
	if took < lease-50*time.Millisecond {
		t.Errorf("fetched %v after the lock was taken, before its %v lease ran out", took, lease)
	}
	if took > 15*time.Second {
		t.Errorf("took over %v after the lock was taken, want about one lease (%v), far below FetchTimeout (30s)", took, lease)
	}
	if len(r.Snapshot.Body()) == 0 || len(d.requests(exchangeinfo.Spot)) != 1 {
		t.Errorf("upstream requests = %d, want 1", len(d.requests(exchangeinfo.Spot)))
	}
	if st := c.Stats()[0]; st.LocksAcquired != 1 {
		t.Errorf("LocksAcquired = %d, want 1", st.LocksAcquired)
	}
}

// TestDeployment_RedisDownFetchesAlone checks the fallback: without Redis
// each process fetches by itself, still once at a time.
func TestDeployment_RedisDownFetchesAlone(t *testing.T) {
	d := newWorld(t, withRedis(l2.Config{Timeout: 100 * time.Millisecond}))
	c := d.process(symcache.Config{RefreshInterval: -1})
	d.redis.Stop()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.Get(context.Background(), exchangeinfo.Spot); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(d.requests(exchangeinfo.Spot)); n != 1 {
		t.Errorf("upstream requests = %d, want 1 (singleflight in the process)", n)
	}
	if st := c.Stats()[0]; st.LockErrors != 1 {
		t.Errorf("LockErrors = %d, want 1", st.LockErrors)
	}
}

// TestDeployment_RedisCluster runs the whole read path, coordination
// included, on a three-node Redis Cluster through a cluster URL: two
// processes, one upstream request, the second served from L2, and every
// key of the market in one slot.
func TestDeployment_RedisCluster(t *testing.T) {
	cluster := l2test.StartCluster(t)
	w := newWorld(t) // its processes' Redis is the cluster
	h := w.upstream
	process := func() *symcache.Cache {
		rdb, err := l2.NewClient(cluster.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		store := l2.New(l2.Config{Client: rdb, Logger: discard(), Timeout: time.Second})
		return w.process(symcache.Config{L2: store, Coordinator: store}, markets(exchangeinfo.USDM))
	}
	a, b := process(), process()
	ra := get(t, a, exchangeinfo.USDM, symcache.Miss)
	rb, err := b.Get(context.Background(), exchangeinfo.USDM)
	if err != nil || rb.Source == symcache.Miss || rb.Snapshot.ETag() != ra.Snapshot.ETag() {
		t.Fatalf("second process: Get = %v, %v, want the first's snapshot from L2 (or already followed into L1)", rb.Source, err)
	}
	if n := h.Requests(exchangeinfo.USDM.Path()); n != 1 {
		t.Errorf("upstream requests = %d, want 1", n)
	}

	// A new snapshot announced on the cluster reaches the other process.
	ms := strconv.FormatInt(ra.Snapshot.ServerTime().UnixMilli(), 10)
	h.Set(exchangeinfo.USDM.Path(), fetchtest.Response{Body: bytes.Replace(ra.Snapshot.Body(), []byte(ms), []byte(ms+"1"), 1)})
	r, err := a.Refresh(context.Background(), exchangeinfo.USDM)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Snapshot
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if r, err := b.Get(context.Background(), exchangeinfo.USDM); err == nil && r.Snapshot.ETag() == s.ETag() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other process did not follow the new snapshot through the cluster within 5s")
		}
	}

	rdb := cluster.Client(t)
	slots := map[int64]bool{}
	for _, k := range []string{"current", "last_good", "meta", "lock"} {
		slot, err := rdb.ClusterKeySlot(context.Background(), "symcache:{usdm}:"+k).Result()
		if err != nil {
			t.Fatal(err)
		}
		slots[slot] = true
	}
	if len(slots) != 1 {
		t.Errorf("usdm's keys are in %d slots, want 1", len(slots))
	}
}

// TestDeployment_SlowFetchKeepsTheLock checks that a holder renews its lock
// while a fetch slower than the lease goes on, so no other process takes it
// meanwhile; and that a lock lost anyway (deleted here, as a Redis that
// lost its data would) is counted and logged, its late release harmless.
func TestDeployment_SlowFetchKeepsTheLock(t *testing.T) {
	d := newWorld(t, withRedis(relaxed))
	body := fixtures.Read(t, "binance/coinm_exchangeinfo.json")
	d.upstream.Set(exchangeinfo.COINM.Path(), fetchtest.Response{Body: body, Delay: 600 * time.Millisecond})
	c := d.process(symcache.Config{RefreshInterval: -1, LockLease: 200 * time.Millisecond}, markets(exchangeinfo.COINM))
	other := l2.New(l2.Config{Client: d.redis.Client(t), Logger: discard(), Timeout: time.Second})
	rdb := d.redis.Client(t)
	waitHeld := func() {
		for deadline := time.Now().Add(5 * time.Second); rdb.Exists(context.Background(), "symcache:{coinm}:lock").Val() == 0; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Error("the lock was never taken")
				return
			}
		}
	}

	taken := make(chan bool, 1)
	go func() { // tries to take the lock for longer than the lease while c fetches
		waitHeld()
		for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if tok, _, _ := other.Lock(context.Background(), "coinm", time.Minute); tok != "" {
				taken <- true
				return
			}
		}
		taken <- false
	}()
	get(t, c, exchangeinfo.COINM, symcache.Miss)
	if <-taken {
		t.Error("another process took the lock during a fetch 3 leases long: it was not renewed")
	}
	if st := c.Stats()[0]; st.LocksAcquired != 1 || st.LocksLost != 0 {
		t.Errorf("LocksAcquired %d, LocksLost %d; want 1, 0", st.LocksAcquired, st.LocksLost)
	}
	if n := rdb.Exists(context.Background(), "symcache:{coinm}:lock").Val(); n != 0 {
		t.Errorf("the lock is still there after the fetch")
	}

	// The lock lost mid-fetch: another process takes it; the late release
	// leaves that one alone.
	go func() {
		waitHeld()
		rdb.Del(context.Background(), "symcache:{coinm}:lock")
		other.Lock(context.Background(), "coinm", time.Minute)
	}()
	if _, err := c.Refresh(context.Background(), exchangeinfo.COINM); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats()[0]; st.LocksLost != 1 {
		t.Errorf("LocksLost = %d, want 1", st.LocksLost)
	}
	if n := rdb.Exists(context.Background(), "symcache:{coinm}:lock").Val(); n != 1 {
		t.Errorf("the other holder's lock is gone: the late release took it")
	}
}

// A 418 that one process sees stops every process of the deployment from
// asking that host, until its time has passed; an operator's forced refresh
// on one lifts it for all.
func TestDeployment_BanStopsEveryProcess(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, withRedis(relaxed))
	gateA, gateB := fetch.NewGate(), fetch.NewGate()
	a := w.process(symcache.Config{Gate: gateA}, markets(exchangeinfo.Spot))
	b := w.process(symcache.Config{Gate: gateB}, markets(exchangeinfo.Spot))
	host := fetch.GateHost(mustParse(t, w.upstream.URL))

	w.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{
		Status: http.StatusTeapot,
		Header: http.Header{"Retry-After": {"300"}},
		Body:   []byte(`{"code":-1003,"msg":"Way too much request weight used; IP banned until 1765000000000."}`),
	})
	if _, err := a.Refresh(ctx, exchangeinfo.Spot); err == nil {
		t.Fatal("Refresh against a 418 = nil, want an error")
	}
	var until time.Time
	testutil.WaitFor(t, 5*time.Second, "B's Gate to hear of A's ban", func() bool {
		var code int
		var ok bool
		until, code, ok = gateB.Blocked(host, time.Now())
		return ok && code == http.StatusTeapot
	})
	if left := time.Until(until); left < 295*time.Second || left > 300*time.Second {
		t.Errorf("B's block ends in %v, want the 418's Retry-After (300s)", left)
	}
	before := spotRequests(w.upstream)
	_, err := b.Refresh(ctx, exchangeinfo.Spot)
	var be *symcache.BackoffError
	if !errors.As(err, &be) {
		t.Errorf("B's Refresh during A's ban = %v, want a *BackoffError", err)
	}
	if n := spotRequests(w.upstream); n != before {
		t.Errorf("Binance got %d requests during the ban, want none", n-before)
	}
	if bans, err := w.store().Bans(ctx); err != nil || len(bans) != 1 || bans[0].Host != host || bans[0].Code != http.StatusTeapot {
		t.Errorf("Redis' bans = %v, %v, want %s's 418", bans, err, host)
	}

	// An operator's forced refresh on B lifts the ban everywhere.
	w.upstream.Set(exchangeinfo.Spot.Path(), fetchtest.Response{Body: spotFixture(t)})
	if _, err := b.ClearBackoff(ctx, exchangeinfo.Spot); err != nil {
		t.Fatalf("ClearBackoff = %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, "A's Gate to hear of the lift", func() bool {
		_, _, ok := gateA.Blocked(host, time.Now())
		return !ok
	})
	if _, err := a.Refresh(ctx, exchangeinfo.Spot); err != nil {
		t.Errorf("A's Refresh after the lift = %v, want nil", err)
	}
}

// A ban read from Redis before this process's lift of it reached Redis is
// the ban just lifted: it does not block the host again. One read after
// does, and a Coordinator that says nothing of its reads is still heard.
func TestDeployment_LiftNotUndoneByAnEarlierRead(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, withRedis(relaxed))
	co := &bansByHand{Store: l2.New(w.l2), feed: make(chan l2.Ban), hold: make(chan struct{})}
	gate := fetch.NewGate()
	c := w.process(symcache.Config{L2: co.Store, Coordinator: co, Gate: gate}, markets(exchangeinfo.Spot))
	host := fetch.GateHost(mustParse(t, w.upstream.URL))
	blocked := func() time.Time {
		until, _, _ := gate.Blocked(host, time.Now())
		return until
	}
	// deliver hands b to the Cache and waits until it was dealt with: the
	// bans are taken one at a time, so a marker's block after it says so.
	markers := 0
	deliver := func(b l2.Ban) {
		t.Helper()
		co.feed <- b
		markers++
		marker := fmt.Sprintf("marker-%d.test", markers)
		co.feed <- l2.Ban{Host: marker, Code: http.StatusTooManyRequests, Left: time.Hour, Seen: time.Now()}
		testutil.WaitFor(t, 5*time.Second, "the marker's block", func() bool {
			_, _, ok := gate.Blocked(marker, time.Now())
			return ok
		})
	}

	early := time.Now()
	deliver(l2.Ban{Host: host, Code: http.StatusTeapot, Left: time.Hour, Seen: early})
	if blocked().IsZero() {
		t.Fatal("a shared ban did not block the host")
	}
	if cleared, err := c.ClearBackoff(ctx, exchangeinfo.Spot); !cleared || err != nil {
		t.Fatalf("ClearBackoff = %v, %v; want true, nil", cleared, err)
	}
	if !blocked().IsZero() {
		t.Fatal("the host is still blocked after ClearBackoff")
	}
	// The lift is on its way to Redis (Unban held): what a read found
	// before it, or while it is on its way, is the ban being lifted.
	deliver(l2.Ban{Host: host, Code: http.StatusTeapot, Left: time.Hour, Seen: early})
	mid := time.Now()
	deliver(l2.Ban{Host: host, Code: http.StatusTeapot, Left: time.Hour, Seen: mid})
	deliver(l2.Ban{Host: host, Code: http.StatusTeapot, Left: time.Hour}) // Seen unknown
	if until := blocked(); !until.IsZero() {
		t.Fatalf("a ban read before the lift reached Redis blocked the host again, until %v", until)
	}
	close(co.hold)
	// Once it is there, a ban read after it is a new one.
	testutil.WaitFor(t, 5*time.Second, "a ban read after the lift to block the host", func() bool {
		deliver(l2.Ban{Host: host, Code: http.StatusTeapot, Left: time.Hour, Seen: time.Now()})
		return !blocked().IsZero()
	})
	first := blocked()
	deliver(l2.Ban{Host: host, Code: http.StatusTeapot, Left: 10 * time.Hour, Seen: mid})
	if until := blocked(); !until.Equal(first) {
		t.Errorf("a ban read before the lift reached Redis made the block end at %v, want %v (the later read's)", until, first)
	}
	deliver(l2.Ban{Host: host, Code: http.StatusTeapot, Left: 10 * time.Hour}) // Seen unknown: taken
	if until := blocked(); !until.After(first) {
		t.Errorf("a ban of a Coordinator that leaves Seen zero was not taken (block ends %v)", until)
	}
}

// bansByHand is a process's Redis as Coordinator, with the bans it hears of
// delivered by the test through feed, and each Unban waiting for hold to be
// closed.
type bansByHand struct {
	*l2.Store
	feed chan l2.Ban
	hold chan struct{}
}

func (c *bansByHand) WatchBans(ctx context.Context, _ time.Duration) <-chan l2.Ban {
	out := make(chan l2.Ban)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-c.feed:
				select {
				case out <- b:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (c *bansByHand) Unban(ctx context.Context, host string) error {
	select {
	case <-c.hold:
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.Store.Unban(ctx, host)
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
