package symcache

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// lockOn returns a refresh lock for spot over a real redis-server, and the
// Store it uses (another process's, as far as the lock knows).
func lockOn(t *testing.T, srv *l2test.Server, lease time.Duration) (*refreshLock, *l2.Store) {
	t.Helper()
	store := l2.New(l2.Config{Client: srv.Client(t), Logger: slog.New(slog.DiscardHandler), Timeout: time.Second})
	return &refreshLock{co: store, market: exchangeinfo.Spot, lease: lease, log: slog.New(slog.DiscardHandler)}, store
}

func none(context.Context) *exchangeinfo.Snapshot { return nil }

func TestRefreshLock_Claim(t *testing.T) {
	ctx := context.Background()
	srv := l2test.Start(t)
	l, other := lockOn(t, srv, time.Minute)

	token, peer, err := l.claim(ctx, none)
	if token == "" || peer != nil || err != nil || l.acquired.Load() != 1 {
		t.Fatalf("claim of a free lock = %q, %v, %v (acquired %d), want a token", token, peer, err, l.acquired.Load())
	}
	// Held by this process: another claim waits for a snapshot, and takes
	// the one that appears.
	s := snapshotOf(t, 3, "")
	polls := 0
	newer := func(context.Context) *exchangeinfo.Snapshot {
		if polls++; polls < 3 {
			return nil
		}
		return s
	}
	if tok, got, err := l.claim(ctx, newer); tok != "" || got != s || err != nil || l.waited.Load() != 1 {
		t.Errorf("claim while held = %q, %v, %v (waited %d), want the snapshot stored meanwhile", tok, got, err, l.waited.Load())
	}
	// Released after a success: free again.
	l.release(token, nil, 0)
	if tok, _, err := other.Lock(ctx, "spot", time.Second); tok == "" || err != nil {
		t.Errorf("Lock after release = %q, %v, want the lock", tok, err)
	}
}

func TestRefreshLock_ReleaseAfterFailureHoldsABackoff(t *testing.T) {
	ctx := context.Background()
	srv := l2test.Start(t)
	l, _ := lockOn(t, srv, time.Minute)
	token, _, _ := l.claim(ctx, none)
	l.release(token, &fetch.StatusError{Code: 503}, 30*time.Second)

	start := time.Now()
	_, _, err := l.claim(ctx, none)
	var be *BackoffError
	if !errors.As(err, &be) || !isPeerFailure(be.Cause) || be.Until.Before(start.Add(25*time.Second)) {
		t.Fatalf("claim during the deployment's backoff = %v, want a *BackoffError for about 30s caused by the holder's failure", err)
	}
	if f := classify(err); f.class != classBackoff || f.reason != "another sidecar's fetch failed: upstream 503" {
		t.Errorf("classify(%v) = %+v, want backoff, the holder's reason", err, f)
	}
}

func TestRefreshLock_RedisDown(t *testing.T) {
	srv := l2test.Start(t)
	l, _ := lockOn(t, srv, time.Minute)
	srv.Stop()
	token, peer, err := l.claim(context.Background(), none)
	if token != "" || peer != nil || err != nil || l.errors.Load() != 1 {
		t.Errorf("claim with Redis down = %q, %v, %v (errors %d), want to go on without the lock", token, peer, err, l.errors.Load())
	}
}

func TestRefreshLock_KeepRenewsTheLease(t *testing.T) {
	ctx := context.Background()
	srv := l2test.Start(t)
	l, other := lockOn(t, srv, 300*time.Millisecond)
	token, _, _ := l.claim(ctx, none)
	stop := l.keep(token)
	time.Sleep(time.Second) // three leases
	if tok, _, _ := other.Lock(ctx, "spot", time.Second); tok != "" {
		t.Error("another process took the lock while its holder renewed it")
	}
	stop()
	l.release(token, nil, 0)
	if n := l.lost.Load(); n != 0 {
		t.Errorf("lost = %d, want 0", n)
	}
}

func TestRefreshLock_Lost(t *testing.T) {
	ctx := context.Background()
	srv := l2test.Start(t)
	l, other := lockOn(t, srv, 100*time.Millisecond)
	token, _, _ := l.claim(ctx, none) // not kept: the lease runs out
	time.Sleep(200 * time.Millisecond)
	theirs, _, err := other.Lock(ctx, "spot", time.Minute)
	if theirs == "" || err != nil {
		t.Fatalf("Lock after the lease ran out = %q, %v, want the lock", theirs, err)
	}
	l.release(token, nil, 0)
	if n := l.lost.Load(); n != 1 {
		t.Errorf("lost = %d, want 1", n)
	}
	if tok, held, _ := other.Lock(ctx, "spot", time.Minute); tok != "" || held.Backoff {
		t.Errorf("the late release freed the other holder's lock (Lock = %q, %+v)", tok, held)
	}
}
