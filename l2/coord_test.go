package l2_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

func TestStore_Lock(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()
	const lease = 300 * time.Millisecond

	token, _, err := s.Lock(ctx, "spot", lease)
	if err != nil || token == "" {
		t.Fatalf("Lock = %q, %v, want a token", token, err)
	}
	if pttl := rdb.PTTL(ctx, "symcache:{spot}:lock").Val(); pttl <= 0 || pttl > lease {
		t.Errorf("PTTL lock = %v, want in (0, %v]", pttl, lease)
	}
	other, held, err := s.Lock(ctx, "spot", lease)
	if err != nil || other != "" {
		t.Fatalf("second Lock = %q, %v, want no token", other, err)
	}
	if held.Backoff || held.Until.Before(time.Now()) || held.Until.After(time.Now().Add(lease)) {
		t.Errorf("Held = %+v, want a plain lock until within the lease", held)
	}
	if tok, _, _ := s.Lock(ctx, "usdm", lease); tok == "" {
		t.Errorf("Lock(usdm) while spot is locked: no token, want one (a lock per market)")
	}

	// Only the owner releases.
	if err := s.Unlock(ctx, "spot", "not-the-token"); !errors.Is(err, l2.ErrLockLost) {
		t.Fatalf("Unlock with another token = %v, want ErrLockLost", err)
	}
	if n := rdb.Exists(ctx, "symcache:{spot}:lock").Val(); n != 1 {
		t.Fatalf("Unlock with another token deleted the lock")
	}
	if err := s.Unlock(ctx, "spot", token); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, "symcache:{spot}:lock").Val(); n != 0 {
		t.Fatalf("Unlock by the owner left the lock")
	}

	// A holder that dies loses the lock at the end of its lease.
	if token, _, _ = s.Lock(ctx, "spot", lease); token == "" {
		t.Fatal("Lock after Unlock: no token")
	}
	waitLock(t, s, lease)
	// The first holder's late Unlock does not release the new holder's lock.
	if err := s.Unlock(ctx, "spot", token); !errors.Is(err, l2.ErrLockLost) {
		t.Fatalf("late Unlock = %v, want ErrLockLost", err)
	}
	if n := rdb.Exists(ctx, "symcache:{spot}:lock").Val(); n != 1 {
		t.Errorf("a holder whose lease ran out released the next holder's lock")
	}
}

func TestStore_Extend(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()
	token, _, err := s.Lock(ctx, "spot", time.Second)
	if err != nil || token == "" {
		t.Fatal(token, err)
	}
	if err := s.Extend(ctx, "spot", token, time.Minute); err != nil {
		t.Fatalf("Extend by the holder = %v", err)
	}
	if pttl := rdb.PTTL(ctx, "symcache:{spot}:lock").Val(); pttl < 50*time.Second {
		t.Errorf("PTTL after Extend(1m) = %v", pttl)
	}
	if err := s.Extend(ctx, "spot", "not-the-token", time.Hour); !errors.Is(err, l2.ErrLockLost) {
		t.Errorf("Extend with another token = %v, want ErrLockLost", err)
	}
	if pttl := rdb.PTTL(ctx, "symcache:{spot}:lock").Val(); pttl > time.Minute {
		t.Errorf("Extend with another token changed the lease to %v", pttl)
	}
	rdb.Del(ctx, "symcache:{spot}:lock")
	if err := s.Extend(ctx, "spot", token, time.Minute); !errors.Is(err, l2.ErrLockLost) {
		t.Errorf("Extend of a lock gone = %v, want ErrLockLost", err)
	}
	if n := rdb.Exists(ctx, "symcache:{spot}:lock").Val(); n != 0 {
		t.Errorf("Extend of a lock gone created it")
	}
}

func TestStore_Hold(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()
	token, _, err := s.Lock(ctx, "coinm", time.Second)
	if err != nil || token == "" {
		t.Fatal(token, err)
	}
	if err := s.Hold(ctx, "coinm", "not-the-token", time.Minute, "x"); err != nil {
		t.Fatal(err)
	}
	if pttl := rdb.PTTL(ctx, "symcache:{coinm}:lock").Val(); pttl > time.Second {
		t.Fatalf("Hold with another token extended the lock to %v", pttl)
	}
	if err := s.Hold(ctx, "coinm", token, time.Minute, "upstream 429, retry after 1m0s"); err != nil {
		t.Fatal(err)
	}
	_, held, err := s.Lock(ctx, "coinm", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !held.Backoff || held.Reason != "upstream 429, retry after 1m0s" || held.Until.Before(time.Now().Add(50*time.Second)) {
		t.Errorf("after Hold(1m): Held = %+v, want a backoff until about a minute from now", held)
	}
	// The backoff is the deployment's: not even the former holder's token releases it.
	if err := s.Unlock(ctx, "coinm", token); !errors.Is(err, l2.ErrLockLost) {
		t.Fatalf("Unlock of a backoff = %v, want ErrLockLost", err)
	}
	if n := rdb.Exists(ctx, "symcache:{coinm}:lock").Val(); n != 1 {
		t.Errorf("Unlock released a backoff marker")
	}
}

func TestStore_Meta(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()
	if _, err := s.Meta(ctx, "spot"); err != l2.ErrMiss {
		t.Fatalf("Meta before any Put = %v, want ErrMiss itself", err)
	}
	e := envelope("spot", []byte(`{"symbols":[]}`))
	if err := s.Put(ctx, e, time.Minute); err != nil {
		t.Fatal(err)
	}
	m, err := s.Meta(ctx, "spot")
	if err != nil || m.Market != "spot" || m.ETag != e.ETag || !m.FetchedAt.Equal(e.FetchedAt.Truncate(time.Millisecond)) {
		t.Fatalf("Meta = %+v, %v, want spot %s %v", m, err, e.ETag, e.FetchedAt)
	}
	// Readable with redis-cli HGETALL.
	h := rdb.HGetAll(ctx, "symcache:{spot}:meta").Val()
	if h["fetched_at"] != e.FetchedAt.UTC().Format(time.RFC3339Nano) || h["etag"] != e.ETag {
		t.Errorf("HGETALL meta = %v", h)
	}
	rdb.HSet(ctx, "symcache:{spot}:meta", "fetched_at_ms", "soon")
	if _, err := s.Meta(ctx, "spot"); !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
		t.Errorf("Meta of a corrupt hash = %v, want an error matching ErrMiss", err)
	}
	srv.Stop()
	if _, err := s.Meta(ctx, "spot"); !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
		t.Errorf("Meta with Redis down = %v, want an error matching ErrMiss", err)
	}
}

// TestStore_Watch checks that every Put is announced to every watcher, and
// that a watcher hears announcements again after Redis restarts.
func TestStore_Watch(t *testing.T) {
	srv := l2test.Start(t)
	logs := new(testutil.LogBuffer)
	writer := l2.New(l2.Config{Client: srv.Client(t), Logger: discard()})
	watcher := l2.New(l2.Config{Client: srv.Client(t), Logger: logs.Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := watcher.Watch(ctx)

	put := func(market, etag string, at time.Time) {
		t.Helper()
		e := envelope(market, []byte(`{}`))
		e.ETag, e.FetchedAt = etag, at
		if err := writer.Put(context.Background(), e, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(market, etag string) {
		t.Helper()
		select {
		case m := <-ch:
			if m.Market != market || m.ETag != etag {
				t.Fatalf("announcement = %+v, want %s %s", m, market, etag)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no announcement of %s %s within 5s", market, etag)
		}
	}
	// The subscription starts in the background: announce until it is heard.
	start := time.Now()
	for heard := false; !heard; {
		put("spot", `"a"`, time.Now())
		select {
		case m := <-ch:
			heard = m.ETag == `"a"`
		case <-time.After(50 * time.Millisecond):
			if time.Since(start) > 5*time.Second {
				t.Fatal("no announcement within 5s")
			}
		}
	}
	for len(ch) > 0 {
		<-ch
	}
	put("usdm", `"b"`, time.Now())
	expect("usdm", `"b"`)

	srv.Restart(t)
	start = time.Now()
	for heard := false; !heard; {
		put("spot", `"c"`, time.Now())
		select {
		case m := <-ch:
			heard = m.ETag == `"c"`
		case <-time.After(100 * time.Millisecond):
			if time.Since(start) > 15*time.Second {
				t.Fatal("no announcement within 15s after Redis restarted: not subscribed again")
			}
		}
	}

	// Garbage on the channel is skipped and logged.
	srv.Client(t).Publish(context.Background(), "symcache:invalidate", "not json")
	put("coinm", `"d"`, time.Now())
	for {
		m := <-ch
		if m.ETag == `"d"` {
			break
		}
	}
	if !strings.Contains(logs.String(), "unreadable announcement") {
		t.Errorf("logs = %s, want the unreadable announcement logged", logs)
	}
	cancel()
	for range ch { // closed once ctx ended
	}
}

// TestStore_Errors checks the failure counters behind the Redis error
// metric: nothing while Redis answers, then one per failed call by
// operation, and a corrupt value counted as "decode".
func TestStore_Errors(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), Timeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	if err := s.Put(ctx, envelope("spot", []byte(`{}`)), time.Minute); err != nil {
		t.Fatal(err)
	}
	s.Current(ctx, "spot")
	s.Meta(ctx, "spot")
	var ops []string
	for op, n := range s.Errors() {
		ops = append(ops, op)
		if n != 0 {
			t.Errorf("Errors()[%s] = %d with Redis up, want 0", op, n)
		}
	}
	slices.Sort(ops)
	// Every operation, as docs/operations.md lists them for symcache_redis_errors_total.
	want := []string{"ban", "bans", "changes", "clear_backoff", "decode", "extend", "get", "hold", "lock", "lock_no_ttl", "meta", "ping", "publish", "put", "seed", "too_large", "unlock", "watch", "write_json"}
	if !slices.Equal(ops, want) {
		t.Errorf("Errors() has the operations %v, want %v", ops, want)
	}
	rdb.Set(ctx, "symcache:{spot}:current", "garbage", time.Minute)
	s.Current(ctx, "spot")
	srv.Stop()
	s.Current(ctx, "spot")
	s.Put(ctx, envelope("spot", []byte(`{}`)), time.Minute)
	s.Lock(ctx, "spot", time.Second)
	s.Meta(ctx, "spot")
	got := s.Errors()
	for op, want := range map[string]uint64{"decode": 1, "get": 1, "put": 1, "lock": 1, "meta": 1, "publish": 0, "hold": 0} {
		if got[op] != want {
			t.Errorf("Errors()[%s] = %d, want %d (all: %v)", op, got[op], want, got)
		}
	}
}

// waitLock takes spot's refresh lock, trying every 20ms, and fails the test
// if it is still held after 5s.
func waitLock(t *testing.T, s *l2.Store, lease time.Duration) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		tok, _, err := s.Lock(context.Background(), "spot", lease)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			return tok
		}
		if time.Now().After(deadline) {
			t.Fatalf("spot's lock still held after 5s")
		}
	}
}

func TestStore_LockHolder(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	a := l2.New(l2.Config{Client: rdb, Logger: discard(), Holder: "pod-a/\n1"})
	b := l2.New(l2.Config{Client: rdb, Logger: discard()})

	if h, bo, until, err := b.LockHolder(ctx, "spot"); err != nil || h != "" || bo != "" || !until.IsZero() {
		t.Errorf("LockHolder of a free lock = %q, %q, %v, %v; want nothing", h, bo, until, err)
	}
	token, _, err := a.Lock(ctx, "spot", time.Minute)
	if err != nil || !strings.HasPrefix(token, "pod-a__1/") {
		t.Fatalf("Lock = %q, %v; want a token starting with the holder's name", token, err)
	}
	h, bo, until, err := b.LockHolder(ctx, "spot")
	if err != nil || h != "pod-a__1" || bo != "" || until.Before(time.Now().Add(50*time.Second)) {
		t.Errorf("LockHolder = %q, %q, %v, %v; want pod-a__1 for about a minute", h, bo, until, err)
	}
	if err := a.Hold(ctx, "spot", token, time.Minute, "upstream 418"); err != nil {
		t.Fatal(err)
	}
	if h, bo, _, err := b.LockHolder(ctx, "spot"); err != nil || h != "" || bo != "upstream 418" {
		t.Errorf("LockHolder of a backoff = %q, %q, %v; want the reason", h, bo, err)
	}
	// A default holder is this host and process.
	tok, _, err := b.Lock(ctx, "usdm", time.Minute)
	host, _ := os.Hostname()
	if err != nil || !strings.HasPrefix(tok, host+":") {
		t.Errorf("Lock with the default holder = %q, %v; want it to start with %q", tok, err, host+":")
	}
}
