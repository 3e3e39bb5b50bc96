package l2_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// dialCounter is a go-redis Dialer that counts its calls.
type dialCounter struct{ n atomic.Int64 }

func (d *dialCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// proxiedClient returns a client of the server behind p, as the sidecar builds
// it (ContextTimeoutEnabled), with go-redis' default retries, and its dial
// count. go-redis' own socket timeouts (3s by default) are off: the Store's
// budget is the only bound, so that without it a stalled read would hang.
func proxiedClient(t *testing.T, p *l2test.Proxy) (*redis.Client, *dialCounter) {
	d := new(dialCounter)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), ContextTimeoutEnabled: true, ReadTimeout: -1, WriteTimeout: -1, Dialer: d.dial})
	t.Cleanup(func() { rdb.Close() })
	return rdb, d
}

// TestStore_readBudget checks that with Redis stalled, slow or unreachable every
// read returns (a miss, never a hang), and is logged at Warn exactly once
// whatever go-redis retried inside; and that reads hit again on Resume.
func TestStore_readBudget(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(*l2test.Proxy)
		budget time.Duration
	}{
		{"stalled", (*l2test.Proxy).Stall, 0}, // the default budget, 50ms
		{"slower than the budget", func(p *l2test.Proxy) { p.Delay(200 * time.Millisecond) }, 0},
		{"slow, with a budget above the delay", func(p *l2test.Proxy) { p.Delay(20 * time.Millisecond) }, 5 * time.Second},
		{"connections dropped and refused", (*l2test.Proxy).Drop, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := l2test.Start(t)
			p := srv.Proxy(t)
			rdb, dials := proxiedClient(t, p)
			logs := new(testutil.LogBuffer)
			s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger(), Timeout: tt.budget})
			ctx := context.Background()
			want := envelope("spot", []byte(`{"symbols":[{"symbol":"ETHBTC"}]}`))
			if err := s.Put(ctx, want, time.Minute); err != nil { // also pools a connection
				t.Fatal(err)
			}
			if err := s.WriteJSON(ctx, "k", "v", 0); err != nil {
				t.Fatal(err)
			}
			before := dials.n.Load()

			tt.fault(p)
			const calls = 3
			for i := range calls {
				got, err := s.Current(ctx, "spot")
				if tt.budget > 0 { // the delay fits in the budget: slow is not a failure
					if err != nil {
						t.Fatalf("Current #%d = %v, want nil", i, err)
					}
					checkEnvelope(t, "Current", got, want)
					continue
				}
				if !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
					t.Errorf("Current #%d = %v, want an error matching ErrMiss that wraps the cause", i, err)
				}
				var v string
				if err := s.ReadJSON(ctx, "k", &v); !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
					t.Errorf("ReadJSON #%d = %v, want an error matching ErrMiss that wraps the cause", i, err)
				}
			}
			wantWarns := calls
			if tt.budget > 0 {
				wantWarns = 0
			}
			if n := logs.Count(t, "level", "WARN", "key", "symcache:{spot}:current"); n != wantWarns {
				t.Errorf("%d Current calls logged %d WARN records with their key, want %d (one per call):\n%s", calls, n, wantWarns, logs)
			}
			if n := logs.Count(t, "level", "WARN", "key", "symcache:k"); n != wantWarns {
				t.Errorf("%d ReadJSON calls logged %d WARN records with their key, want %d:\n%s", calls, n, wantWarns, logs)
			}
			if !strings.Contains(logs.String(), `"market":"spot"`) && wantWarns > 0 {
				t.Errorf("logs %s name no market", logs)
			}
			// go-redis dials in a goroutine of its own, which the budget does not
			// stop: it may go on retrying after the read returned (see
			// TestStore_readBudget_dialInProgress), without holding the read.
			t.Logf("%d reads, %d dials", 2*calls, dials.n.Load()-before)

			p.Resume()
			got, err := s.Current(ctx, "spot")
			if err != nil {
				t.Fatalf("Current after Resume = %v, want nil", err)
			}
			checkEnvelope(t, "Current after Resume", got, want)
		})
	}
}

// TestStore_readBudget_dialInProgress checks that a read returns within its
// budget while go-redis is still dialing: its dial retries (5 attempts, each up
// to DialTimeout, 100ms apart) never extend a read.
func TestStore_readBudget_dialInProgress(t *testing.T) {
	entered, release := make(chan struct{}, 16), make(chan struct{})
	var inProgress atomic.Int64
	rdb := redis.NewClient(&redis.Options{
		Addr:                  "redis.invalid:6379", // never reached
		ContextTimeoutEnabled: true,
		DialerRetries:         1, // less go-redis work left running after the test
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			inProgress.Add(1)
			defer inProgress.Add(-1)
			entered <- struct{}{}
			select { // a SYN into the void: no answer until released
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("blackholed")
		},
	})
	t.Cleanup(func() { close(release); rdb.Close() })
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger()})
	if _, err := s.Current(context.Background(), "spot"); !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
		t.Errorf("Current with a dial that never ends = %v, want an error matching ErrMiss", err)
	}
	<-entered // the dial did start
	if n := inProgress.Load(); n != 1 {
		t.Errorf("dials in progress after Current returned = %d, want 1 (the read did not wait for it)", n)
	}
	if n := logs.Count(t, "level", "WARN", "key", "symcache:{spot}:current"); n != 1 {
		t.Errorf("Current logged %d WARN records with its key, want 1:\n%s", n, logs)
	}
}

// TestStore_budgetDefaults checks the default budgets against a Redis 100ms
// away each way: a read of current (50ms) gives up, a write (1s) and a read
// of last_good (1s) complete; with Redis stalled, a read of last_good gives
// up too.
func TestStore_budgetDefaults(t *testing.T) {
	srv := l2test.Start(t)
	p := srv.Proxy(t)
	rdb, _ := proxiedClient(t, p)
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger()})
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil { // pools a connection: no handshake below
		t.Fatal(err)
	}
	p.Delay(100 * time.Millisecond)
	want := envelope("spot", []byte(`{"symbols":[]}`))
	if err := s.Put(ctx, want, time.Minute); err != nil {
		t.Errorf("Put through a 100ms delay = %v, want nil (WriteTimeout defaults to 1s)", err)
	}
	if _, err := s.Current(ctx, "spot"); !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
		t.Errorf("Current through a 100ms delay = %v, want a miss (Timeout defaults to 50ms)", err)
	}
	if !logged(t, logs, "WARN", "symcache:{spot}:current") {
		t.Errorf("a read past its budget logged %s, want a WARN with its key", logs)
	}
	got, err := s.LastGood(ctx, "spot")
	if err != nil {
		t.Fatalf("LastGood through a 100ms delay = %v, want the envelope (LastGoodTimeout defaults to 1s)", err)
	}
	checkEnvelope(t, "LastGood through a 100ms delay", got, want)

	p.Stall()
	if _, err := s.LastGood(ctx, "spot"); !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
		t.Errorf("LastGood with Redis stalled = %v, want a miss that wraps the cause, not a hang", err)
	}
	if !logged(t, logs, "WARN", "symcache:{spot}:last_good") {
		t.Errorf("a last_good read past its budget logged %s, want a WARN with its key", logs)
	}
	p.Resume()
	if got, err = s.Current(ctx, "spot"); err != nil {
		t.Fatalf("Current after Resume = %v, want nil", err)
	}
	checkEnvelope(t, "Current after Resume", got, want)
}

// TestStore_writeBudget checks that a write to a stalled Redis returns an error
// within WriteTimeout, logged once at Error.
func TestStore_writeBudget(t *testing.T) {
	srv := l2test.Start(t)
	p := srv.Proxy(t)
	rdb, _ := proxiedClient(t, p)
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger(), WriteTimeout: 100 * time.Millisecond})
	ctx := context.Background()
	p.Stall()
	if err := s.Put(ctx, envelope("spot", []byte(`{}`)), time.Minute); err == nil || errors.Is(err, l2.ErrMiss) {
		t.Errorf("Put to a stalled Redis = %v, want an error, not a miss", err)
	}
	if err := s.WriteJSON(ctx, "k", 1, 0); err == nil {
		t.Errorf("WriteJSON to a stalled Redis = nil, want an error")
	}
	if n := logs.Count(t, "level", "ERROR", "key", "symcache:{spot}:current"); n != 1 {
		t.Errorf("Put logged %d ERROR records with its key, want 1:\n%s", n, logs)
	}
	if n := logs.Count(t, "level", "ERROR", "key", "symcache:k"); n != 1 {
		t.Errorf("WriteJSON logged %d ERROR records with its key, want 1:\n%s", n, logs)
	}
}
