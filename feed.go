package symcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/l2"
)

// This file is the change feed: each time a market's newest snapshot is
// replaced by one this process fetched, the two are compared and the
// differences recorded in the market's change log, which consumers follow
// with Changes and Subscribe.

// ChangeLog is the change log a deployment shares, as *l2.Store implements
// it: Advance writes a snapshot with its changes, all or nothing. When
// Config.L2 implements it, every process records the changes of the
// snapshots it fetches there, and reads them from there; else each
// process keeps a log of its own in memory.
type ChangeLog interface {
	Advance(ctx context.Context, a l2.Advance) (l2.Advanced, l2.Meta, error)
	Changes(ctx context.Context, market, after string, n int) (l2.LogWindow, error)
	LatestChanges(ctx context.Context, market string, n int) (l2.LogWindow, error)
}

// The limits on a page of changes.
const (
	DefaultChangesLimit = 500
	MaxChangesLimit     = 5000
)

// maxScan bounds how many entries of a log one page looks through for the
// changes a filter wants: a page may end short of its Limit, with Next past
// what was looked through.
const maxScan = 10000

// pollChanges is how often Subscribe reads the log when nothing woke it:
// a change recorded by another process whose announcement was lost.
const pollChanges = 5 * time.Second

// minRead is the least time between two reads of one subscription: a
// flood of announcements (forged, say) wakes it at most this often.
const minRead = 100 * time.Millisecond

// ErrNoChangeLog is what Changes and Subscribe return when the Cache keeps
// no change log (Config.ChangesMax negative).
var ErrNoChangeLog = errors.New("symcache: no change log is kept (ChangesMax is negative)")

// ChangeQuery is what Changes and Subscribe return.
type ChangeQuery struct {
	// After is the cursor to follow from: the ID of the last change seen,
	// or the Next of a page. The zero cursor follows from the oldest
	// change retained.
	After changes.Cursor
	// FromEnd follows from the end of the log instead, After ignored: a
	// page of no changes whose Next is the end of the log.
	FromEnd bool
	// Latest returns the last Limit changes instead (those that match,
	// among the last 10,000 entries of the log), oldest first, with Next
	// the end of the log: what changed lately, for a person. After and
	// FromEnd are ignored.
	Latest bool
	// Symbols and Kinds, when not empty, keep only the changes of those
	// symbols (exact names) and of those kinds.
	Symbols []string
	Kinds   []changes.Kind
	// Limit is the most changes a page holds: 1 to MaxChangesLimit; if
	// zero, DefaultChangesLimit.
	Limit int
}

// ChangePage is one page of a market's changes, in the order they were
// recorded.
type ChangePage struct {
	Market  exchangeinfo.Market `json:"market"`
	Changes []changes.Change    `json:"changes"`
	// Next is the cursor to ask for the next page with. A page with fewer
	// than Limit changes reached the end of the log, or looked through
	// as many entries as one page may without finding Limit that match.
	Next changes.Cursor `json:"next"`
}

// Changes returns a page of the market's changes after q.After (see
// ChangeQuery). When the log cannot vouch for every change after the
// cursor (trimmed past it, started again since, or the cursor is not its
// own), it returns an error matching changes.ErrGone: reload the snapshot,
// and follow from the end. A log in Redis that could not be read is an
// error matching l2.ErrMiss.
func (c *Cache) Changes(ctx context.Context, m exchangeinfo.Market, q ChangeQuery) (ChangePage, error) {
	ms, err := c.market(m)
	if err != nil {
		return ChangePage{}, err
	}
	if ms.feed == nil {
		return ChangePage{}, ErrNoChangeLog
	}
	p, _, err := ms.page(ctx, q)
	return p, err
}

// Subscribe yields the market's changes after q (its Limit is the size of
// each read) as they are recorded, until ctx ends or the loop stops. Every
// process of a deployment yields the same changes, read from the shared
// log. A read that fails (Redis down) is yielded as an error, and tried
// again after a pause; an error matching changes.ErrGone (see Changes),
// an unknown market or ErrNoChangeLog is yielded and ends it.
func (c *Cache) Subscribe(ctx context.Context, m exchangeinfo.Market, q ChangeQuery) iter.Seq2[changes.Change, error] {
	return func(yield func(changes.Change, error) bool) {
		ms, err := c.market(m)
		if err == nil && ms.feed == nil {
			err = ErrNoChangeLog
		}
		if err != nil {
			yield(changes.Change{}, err)
			return
		}
		for ctx.Err() == nil {
			wake := ms.feed.waiter() // before the read: a change recorded after it wakes this loop
			read := time.Now()
			p, more, err := ms.page(ctx, q)
			if err != nil && ctx.Err() == nil {
				if !yield(changes.Change{}, err) || errors.Is(err, changes.ErrGone) {
					return
				}
			}
			for _, ch := range p.Changes {
				if !yield(ch, nil) {
					return
				}
			}
			if err == nil {
				q.After, q.FromEnd, q.Latest = p.Next, false, false
				if more {
					continue
				}
			}
			t := time.NewTimer(pollChanges)
			select {
			case <-ctx.Done():
			case <-wake:
			case <-t.C:
			}
			t.Stop()
			if !sleep(ctx, minRead-time.Since(read)) {
				return
			}
		}
	}
}

// sleep waits d (if positive), or until ctx ends: then it reports false.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// feed is one market's change log and what follows it.
type feed struct {
	shared ChangeLog       // the deployment's; nil: mem
	mem    *changes.Memory // this process's; nil: shared
	keep   changes.Retention
	counts [7]atomic.Uint64 // changes recorded, by kind (changes.Kinds order)

	mu   sync.Mutex
	wake chan struct{} // closed when a change may have been recorded
	seen changes.Cursor
}

// newFeed returns the feed of a Cache with cfg, or nil when it keeps none.
func newFeed(cfg Config) *feed {
	if cfg.ChangesMax < 0 {
		return nil
	}
	f := &feed{keep: changes.Retention{Max: cfg.ChangesMax, Age: cfg.ChangesAge}, wake: make(chan struct{})}
	if log, ok := cfg.L2.(ChangeLog); ok {
		f.shared = log
	} else {
		f.mem = changes.NewMemory(f.keep, cfg.Now)
	}
	return f
}

// waiter returns a channel closed at the next notify.
func (f *feed) waiter() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wake
}

// notify wakes the subscribers: a change may have been recorded.
func (f *feed) notify() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.wake)
	f.wake = make(chan struct{})
}

// see notes id as part of the log; seenID is the newest id seen, "" for none.
func (f *feed) see(id changes.Cursor) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id.Compare(f.seen) > 0 {
		f.seen = id
	}
}

func (f *feed) seenID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen.IsZero() {
		return ""
	}
	return f.seen.String()
}

// read reads at most n entries of the log after the cursor.
func (f *feed) read(ctx context.Context, m exchangeinfo.Market, after changes.Cursor, n int) (changes.Window, error) {
	if f.mem != nil {
		return f.mem.Read(after, n), nil
	}
	lw, err := f.shared.Changes(ctx, string(m), after.String(), n)
	if err != nil {
		return changes.Window{}, err
	}
	return f.window(m, lw)
}

// readLast reads the last n entries of the log.
func (f *feed) readLast(ctx context.Context, m exchangeinfo.Market, n int) (changes.Window, error) {
	if f.mem != nil {
		return f.mem.ReadLast(n), nil
	}
	lw, err := f.shared.LatestChanges(ctx, string(m), n)
	if err != nil {
		return changes.Window{}, err
	}
	return f.window(m, lw)
}

// window reads what l2 read of a log.
func (f *feed) window(m exchangeinfo.Market, lw l2.LogWindow) (changes.Window, error) {
	var err error
	w := changes.Window{Exists: lw.Exists}
	if !lw.Exists {
		return w, nil
	}
	w.Last, err = changes.ParseCursor(lw.Last)
	if err == nil {
		w.Trimmed, err = changes.ParseCursor(lw.Trimmed)
	}
	for _, e := range lw.Entries {
		var id changes.Cursor
		if id, err = changes.ParseCursor(e.ID); err != nil {
			break
		}
		w.Entries = append(w.Entries, changes.Entry{ID: id, Reset: e.Reset, Change: e.Change})
	}
	if err != nil {
		return changes.Window{}, fmt.Errorf("%w: the change log of %s: %w", l2.ErrMiss, m, err)
	}
	f.see(w.Last)
	return w, nil
}

// page reads a page of the market's changes (see Cache.Changes); more
// reports that the page ended because it was full or looked through
// maxScan entries, not because the log ended.
func (m *market) page(ctx context.Context, q ChangeQuery) (p ChangePage, more bool, err error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = DefaultChangesLimit
	case limit < 0 || limit > MaxChangesLimit:
		return ChangePage{}, false, fmt.Errorf("symcache: change query limit %d, want 1 to %d", limit, MaxChangesLimit)
	}
	p = ChangePage{Market: m.name, Changes: []changes.Change{}, Next: q.After}
	if q.Latest {
		return m.latest(ctx, q, limit)
	}
	if q.FromEnd {
		w, err := m.feed.read(ctx, m.name, changes.Cursor{}, 1)
		if err != nil {
			return ChangePage{}, false, fmt.Errorf("symcache %s: reading the change log: %w", m.name, err)
		}
		p.Next = w.Last
		return p, false, nil
	}
	batch := limit
	if len(q.Symbols) > 0 || len(q.Kinds) > 0 {
		batch = max(limit, 1000) // most entries will not match
	}
	for scanned := 0; scanned < maxScan; {
		n := min(batch, maxScan-scanned)
		w, err := m.feed.read(ctx, m.name, p.Next, n)
		if err != nil {
			return ChangePage{}, false, fmt.Errorf("symcache %s: reading the change log: %w", m.name, err)
		}
		entries, next, err := w.Follow(p.Next)
		if err != nil {
			return m.gone(p, q, err)
		}
		scanned += len(w.Entries)
		for _, e := range entries {
			var ch changes.Change
			if err := json.Unmarshal(e.Change, &ch); err != nil {
				return m.gone(p, q, fmt.Errorf("%w: entry %s of the log holds no change: %v", changes.ErrGone, e.ID, err))
			}
			p.Next = e.ID
			if q.match(ch) {
				ch.ID = e.ID.String()
				p.Changes = append(p.Changes, ch)
				if len(p.Changes) == limit {
					return p, true, nil
				}
			}
		}
		p.Next = next // past a reset that starts the log, too
		if len(w.Entries) < n {
			return p, false, nil // the log's end
		}
	}
	return p, true, nil
}

// latest reads the page of q.Latest.
func (m *market) latest(ctx context.Context, q ChangeQuery, limit int) (ChangePage, bool, error) {
	n := limit
	if len(q.Symbols) > 0 || len(q.Kinds) > 0 {
		n = maxScan
	}
	w, err := m.feed.readLast(ctx, m.name, n)
	if err != nil {
		return ChangePage{}, false, fmt.Errorf("symcache %s: reading the change log: %w", m.name, err)
	}
	p := ChangePage{Market: m.name, Changes: []changes.Change{}, Next: w.Last}
	for _, e := range w.Entries {
		var ch changes.Change
		if e.Reset != "" || json.Unmarshal(e.Change, &ch) != nil || !q.match(ch) {
			continue
		}
		ch.ID = e.ID.String()
		p.Changes = append(p.Changes, ch)
	}
	if len(p.Changes) > limit {
		p.Changes = p.Changes[len(p.Changes)-limit:]
	}
	return p, false, nil
}

// gone returns p when it went past q.After (the consumer's next read finds
// what is gone), else err, which matches changes.ErrGone.
func (m *market) gone(p ChangePage, q ChangeQuery, err error) (ChangePage, bool, error) {
	if p.Next != q.After {
		return p, false, nil
	}
	return ChangePage{}, false, fmt.Errorf("symcache %s: after %s: %w", m.name, q.After, err)
}

// match reports whether q keeps ch.
func (q ChangeQuery) match(ch changes.Change) bool {
	return (len(q.Symbols) == 0 || slices.Contains(q.Symbols, ch.Symbol)) &&
		(len(q.Kinds) == 0 || slices.Contains(q.Kinds, ch.Kind))
}

// store writes a snapshot this process fetched, s, to L2, and records its
// changes from prev (memory's newest before it; nil: none) in the change
// log: with a shared log, in the same write. The write has l2's own
// budget, whatever the fetch left of ctx.
func (m *market) store(ctx context.Context, prev, s *exchangeinfo.Snapshot) {
	f := m.feed
	if f != nil && f.shared != nil {
		m.advance(context.WithoutCancel(ctx), prev, s)
		return
	}
	if m.sh.l2 != nil {
		_ = m.sh.l2.Put(context.WithoutCancel(ctx), envelope(s), m.sh.cfg.TTL)
	}
	if f == nil || prev == nil || !s.FetchedAt().After(prev.FetchedAt()) {
		return // the first snapshot this log sees has nothing to compare with
	}
	diff := changes.Diff(prev, s)
	switch enc, ok := m.encode(diff); {
	case !ok:
		m.recorded(nil, f.mem.Reset("a change too large to record"), true)
	case len(enc) > 0:
		ids := f.mem.Append(enc)
		m.recorded(diff, ids[len(ids)-1], false)
	}
}

// advance writes s to L2 with its changes from the snapshot stored there,
// which is prev unless another process stored one since: then the changes
// are computed again from that one. When the log cannot follow on (no
// prev: this process could not read what L2 holds; the stored snapshot
// cannot be read; writers keep racing), s is written with a reset:
// consumers reload rather than miss a change. A failure is logged by l2;
// L1 and memory still serve s.
func (m *market) advance(ctx context.Context, prev, s *exchangeinfo.Snapshot) {
	base := prev
	for try := 0; ; try++ {
		a := l2.Advance{Envelope: envelope(s), TTL: m.sh.cfg.TTL, Seen: m.feed.seenID(), Keep: l2.Retention(m.feed.keep), Reset: true}
		var diff []changes.Change
		if base != nil && try < 2 {
			a.Base = l2.Meta{Market: string(m.name), FetchedAt: base.FetchedAt(), ETag: base.ETag()}
			diff = changes.Diff(base, s)
			var ok bool
			if a.Changes, ok = m.encode(diff); ok {
				a.Reset = false
			} else {
				a.Changes, diff = nil, nil
			}
		}
		done, stored, err := m.feed.shared.Advance(ctx, a)
		if errors.Is(err, l2.ErrRebase) { // not after a reset: it writes whatever is stored
			base = m.storedBase(ctx, stored)
			continue
		}
		if err != nil {
			return
		}
		ids := done.IDs
		if done.Reset != "" {
			ids = []string{done.Reset}
		}
		last := changes.Cursor{}
		if len(ids) > 0 {
			last, _ = changes.ParseCursor(ids[len(ids)-1])
		}
		m.recorded(diff, last, done.Reset != "")
		return
	}
}

// storedBase returns L2's last good snapshot when it is the one stored
// names, else nil.
func (m *market) storedBase(ctx context.Context, stored l2.Meta) *exchangeinfo.Snapshot {
	s, _ := m.readL2(ctx, l2LastGood)
	if s == nil || s.FetchedAt().UnixMilli() != stored.FetchedAt.UnixMilli() || s.ETag() != stored.ETag {
		return nil
	}
	return s
}

// encode returns each change as a log entry holds it: its JSON without the
// id. ok is false when one is larger than a log takes (l2.MaxChangeBytes:
// a symbol object of a megabyte, with MaxSymbolBytes negative).
func (m *market) encode(diff []changes.Change) (enc [][]byte, ok bool) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false) // Binance's bytes as they are, "<" and "&" too
	for _, ch := range diff {
		buf.Reset()
		if err := e.Encode(ch); err != nil || buf.Len() > l2.MaxChangeBytes {
			m.sh.log.Warn("a change too large for the change log; it starts again instead", "market", m.name, "symbol", ch.Symbol, "kind", ch.Kind, "bytes", buf.Len())
			return nil, false
		}
		enc = append(enc, bytes.Clone(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))))
	}
	return enc, true
}

// recorded counts and logs the changes just recorded, the last at id last
// (a reset instead when reset is set), and wakes the subscribers.
func (m *market) recorded(diff []changes.Change, last changes.Cursor, reset bool) {
	f := m.feed
	f.see(last)
	if reset {
		m.sh.log.Info("the change log starts again: consumers reload the snapshot", "market", m.name, "id", last.String())
	}
	for _, ch := range diff {
		f.counts[slices.Index(changes.Kinds(), ch.Kind)].Add(1)
		switch ch.Kind {
		case changes.Listed, changes.Delisted:
			m.sh.log.Info("symbol "+string(ch.Kind), "market", m.name, "symbol", ch.Symbol, "status", ch.Status)
		case changes.Status:
			m.sh.log.Info("symbol status changed", "market", m.name, "symbol", ch.Symbol, "field", ch.Field, "old", unquote(ch.Old), "new", unquote(ch.New))
		}
	}
	f.notify()
}

// unquote returns a JSON string's text, or the JSON as it is.
func unquote(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}
