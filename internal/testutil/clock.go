package testutil

import (
	"sync"
	"time"
)

// Clock is a time source that a test moves by hand, for a Config.Now:
// cfg.Now = clk.Now. It is safe for concurrent use and must not be copied
// after first use.
//
// The zero value follows the real clock, shifted by whatever Advance and Set
// have added: time passes as usual, and a test can jump past a TTL or a
// backoff. A Clock from NewClock stands still until it is moved, so that
// windows measured on it do not shrink on a slow machine.
type Clock struct {
	mu     sync.Mutex
	manual bool
	t      time.Time     // manual: the time Now returns
	offset time.Duration // otherwise: what Now adds to time.Now
}

// NewClock returns a Clock that reads start until Advance or Set moves it.
func NewClock(start time.Time) *Clock {
	return &Clock{manual: true, t: start}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.manual {
		return c.t
	}
	return time.Now().Add(c.offset)
}

// Advance moves the clock by d, which may be negative.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.manual {
		c.t = c.t.Add(d)
	} else {
		c.offset += d
	}
}

// Set moves the clock to t. A zero-value Clock goes on from t at the real
// clock's pace; one from NewClock stands still at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.manual {
		c.t = t
	} else {
		c.offset = time.Until(t)
	}
}
