package testutil_test

import (
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/testutil"
)

var start = time.Date(2025, 12, 24, 8, 0, 0, 0, time.UTC)

func TestNewClock_standsStill(t *testing.T) {
	c := testutil.NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want %v", got, start)
	}
	time.Sleep(2 * time.Millisecond)
	if got := c.Now(); !got.Equal(start) {
		t.Errorf("Now() after a real 2ms = %v, want still %v", got, start)
	}
	c.Advance(90 * time.Second)
	if got, want := c.Now(), start.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("Now() after Advance(90s) = %v, want %v", got, want)
	}
	c.Advance(-30 * time.Second)
	if got, want := c.Now(), start.Add(time.Minute); !got.Equal(want) {
		t.Errorf("Now() after Advance(-30s) = %v, want %v", got, want)
	}
	later := start.Add(24 * time.Hour)
	c.Set(later)
	if got := c.Now(); !got.Equal(later) {
		t.Errorf("Now() after Set(%v) = %v, want it", later, got)
	}
}

func TestClock_zeroFollowsRealTime(t *testing.T) {
	var c testutil.Clock
	before := time.Now()
	got := c.Now()
	if got.Before(before) || got.After(time.Now()) {
		t.Fatalf("zero Clock Now() = %v, want real time %v", got, before)
	}
	c.Advance(time.Hour)
	before = time.Now()
	got = c.Now()
	if got.Before(before.Add(time.Hour)) || got.After(time.Now().Add(time.Hour)) {
		t.Errorf("Now() after Advance(1h) = %v, want an hour past %v", got, before)
	}
	c.Set(start)
	got = c.Now()
	if got.Before(start) || got.After(start.Add(time.Minute)) {
		t.Errorf("Now() after Set(%v) = %v, want just after it", start, got)
	}
	time.Sleep(2 * time.Millisecond)
	if again := c.Now(); !again.After(got) {
		t.Errorf("Now() = %v, then %v 2ms later: want it to keep moving after Set", got, again)
	}
}

// Run with -race: readers and movers share the clock.
func TestClock_concurrent(t *testing.T) {
	for name, c := range map[string]*testutil.Clock{"manual": testutil.NewClock(start), "zero": new(testutil.Clock)} {
		t.Run(name, func(t *testing.T) {
			first := c.Now()
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for range 100 {
						c.Advance(time.Second)
						_ = c.Now()
					}
				})
			}
			wg.Wait()
			if got := c.Now().Sub(first); got < 400*time.Second {
				t.Errorf("Now() moved %v after 400 Advance(1s), want at least 400s", got)
			}
		})
	}
}
