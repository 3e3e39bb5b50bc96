// Package l1 is symcache's in-process tier: a ristretto cache of
// *exchangeinfo.Snapshot values keyed by market, costed in bytes, with TTL.
//
// ristretto applies sets asynchronously and may drop them. Set waits until
// the write is applied and checks that it is visible, so a snapshot stored by
// Set is returned by the next Get; a set that was dropped anyway is counted
// (Dropped) and reported to the caller. Snapshots are shared, never copied:
// their bytes must not be modified.
package l1

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/symcache/symcache/exchangeinfo"
)

// DefaultMaxBytes is the budget used when Config.MaxBytes is zero (512 MiB).
const DefaultMaxBytes = 512 << 20

// Config configures a Cache.
type Config struct {
	// MaxBytes is the memory budget, as the sum of Snapshot.Size of the
	// entries. If zero, DefaultMaxBytes. A snapshot larger than the budget is
	// never stored.
	MaxBytes int64
}

// Cache holds at most one snapshot per market.
type Cache struct {
	rc      *ristretto.Cache[string, *exchangeinfo.Snapshot]
	dropped atomic.Uint64
}

// New returns an empty Cache. Close releases its goroutines.
func New(cfg Config) (*Cache, error) {
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("l1: MaxBytes %d is negative", cfg.MaxBytes)
	}
	rc, err := ristretto.NewCache(&ristretto.Config[string, *exchangeinfo.Snapshot]{
		// A handful of large values: the admission counters need not be many,
		// and the item's own byte size is its whole cost.
		NumCounters:        1000,
		MaxCost:            cfg.MaxBytes,
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	if err != nil {
		return nil, fmt.Errorf("l1: %w", err)
	}
	return &Cache{rc: rc}, nil
}

// Get returns the market's snapshot unless it is absent or its TTL has passed.
func (c *Cache) Get(m exchangeinfo.Market) (*exchangeinfo.Snapshot, bool) {
	return c.rc.Get(string(m))
}

// Set stores s under its market for ttl (which must be positive) and waits
// until the next Get can see it. It reports false, and counts a drop, when
// ristretto refused or dropped the write (for example when s is larger than
// the whole budget).
func (c *Cache) Set(s *exchangeinfo.Snapshot, ttl time.Duration) bool {
	if ttl <= 0 {
		return false
	}
	key := string(s.Market())
	if !c.rc.SetWithTTL(key, s, s.Size(), ttl) {
		c.dropped.Add(1)
		return false
	}
	c.rc.Wait()
	got, ok := c.rc.Get(key)
	// Another goroutine may have stored a newer snapshot meanwhile; that is a
	// success for this one too.
	if !ok || (got != s && got.FetchedAt().Before(s.FetchedAt())) {
		c.dropped.Add(1)
		return false
	}
	return true
}

// Del removes the market's snapshot.
func (c *Cache) Del(m exchangeinfo.Market) {
	c.rc.Del(string(m))
	c.rc.Wait()
}

// Dropped counts the Set calls that did not store their snapshot.
func (c *Cache) Dropped() uint64 { return c.dropped.Load() }

// UsedBytes is the sum of the costs of the stored snapshots.
func (c *Cache) UsedBytes() int64 { return c.rc.MaxCost() - c.rc.RemainingCost() }

// Close stops the cache's goroutines; later calls miss and drop.
func (c *Cache) Close() { c.rc.Close() }
