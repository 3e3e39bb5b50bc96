package changes

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A market's changes are kept in a log, in the order they were recorded:
// a Redis Stream shared by every process of a deployment, or a Memory of
// one process. Each entry has a Cursor, its id, and is a change or a reset:
// the point where the log starts again, knowing nothing of what came
// before (the first snapshot a log ever saw, a Redis that lost its data).
// A consumer follows the log from a cursor with Window.Follow, which never
// skips a change silently: what it cannot vouch for is ErrGone.

// Cursor is a place in a market's log: the id of an entry, in the form of
// a Redis Stream id, "<ms>-<seq>". Ids grow: a later entry has a larger one.
// The zero Cursor, "0-0", is before every entry.
type Cursor struct {
	Ms, Seq uint64
}

// ParseCursor reads "<ms>-<seq>" or "<ms>" (seq 0), each a decimal number
// that fits in 64 bits without sign, leading zeros or spaces: only what
// String writes, and the short form. The error says what is wrong.
func ParseCursor(s string) (Cursor, error) {
	ms, seq, dash := strings.Cut(s, "-")
	var c Cursor
	var err error
	if c.Ms, err = idPart(ms); err == nil && dash {
		c.Seq, err = idPart(seq)
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("cursor %.40q: want <ms>-<seq>, two whole numbers, as a change's id or next gives it: %w", s, err)
	}
	return c, nil
}

func idPart(s string) (uint64, error) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not a number written in full")
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number written in full")
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errors.New("larger than 64 bits")
	}
	return n, nil
}

func (c Cursor) String() string {
	return strconv.FormatUint(c.Ms, 10) + "-" + strconv.FormatUint(c.Seq, 10)
}

// MarshalText writes c as String does: JSON has it as a string.
func (c Cursor) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads what ParseCursor reads.
func (c *Cursor) UnmarshalText(b []byte) error {
	v, err := ParseCursor(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// IsZero reports whether c is "0-0", before every entry.
func (c Cursor) IsZero() bool { return c == Cursor{} }

// Compare returns -1, 0 or +1 as c is before, at or after d.
func (c Cursor) Compare(d Cursor) int {
	switch {
	case c.Ms < d.Ms || (c.Ms == d.Ms && c.Seq < d.Seq):
		return -1
	case c == d:
		return 0
	}
	return 1
}

// ErrGone means the log no longer holds every change after the cursor: it
// was trimmed past it, started again since (a reset), or the cursor is not
// one of its own. The consumer reloads the snapshot and follows the log
// from its end, the Next of a read without a cursor.
var ErrGone = errors.New("changes: the changes after this cursor are no longer retained; reload the snapshot and follow from the end of the log")

// Entry is one entry of a log.
type Entry struct {
	ID Cursor
	// Reset is set on a reset: why the log starts again here. Change is
	// then nil.
	Reset string
	// Change is the change's JSON, without its id.
	Change []byte
}

// Window is what a read of a log after a cursor returned.
type Window struct {
	Exists  bool    // false: the market has no log, yet or any more
	Last    Cursor  // the newest id the log gave out, even if trimmed since
	Trimmed Cursor  // the newest id removed from the log; zero: none
	Entries []Entry // the first entries after the cursor, in order
}

// Follow returns the changes of w after the cursor w was read after, and
// the cursor that follows them. It drops resets, and returns ErrGone when
// w cannot vouch for every change after the cursor:
//
//   - the log does not exist, or the cursor is past its Last: the cursor
//     is from a log that was lost, or from elsewhere;
//   - the log was trimmed past the cursor;
//   - a reset follows the cursor: what came between is not in the log.
//
// The zero cursor is the exception that lets a consumer start: it follows
// the oldest entry retained, and a reset right after it is skipped. A
// reset after changes ends the page before it; the next read, after
// those changes, is ErrGone.
func (w Window) Follow(after Cursor) (entries []Entry, next Cursor, err error) {
	if !w.Exists {
		if after.IsZero() {
			return nil, after, nil
		}
		return nil, after, ErrGone
	}
	if after.Compare(w.Last) > 0 || (!after.IsZero() && after.Compare(w.Trimmed) < 0) {
		return nil, after, ErrGone
	}
	if len(w.Entries) == 0 {
		return nil, w.Last, nil // nothing after the cursor: the log's end
	}
	next = after
	for _, e := range w.Entries {
		if e.Reset == "" {
			entries = append(entries, e)
			next = e.ID
			continue
		}
		switch {
		case next.IsZero(): // the log's start, for a consumer that starts
			next = e.ID
		case len(entries) > 0: // the next read finds the gap
			return entries, next, nil
		default:
			return nil, after, ErrGone
		}
	}
	return entries, next, nil
}

// Retention is how much of a log is kept: the last Max entries, and every
// entry younger than Age, whichever is more.
type Retention struct {
	Max int
	Age time.Duration
}

// Memory is a log kept in one process's memory, for a deployment without
// Redis. It starts with a reset: cursors of an earlier process are ErrGone.
// It is safe for concurrent use.
type Memory struct {
	keep Retention
	now  func() time.Time

	mu      sync.Mutex
	entries []Entry // oldest first
	last    Cursor
	trimmed Cursor
}

// NewMemory returns a log that starts now, keeping what keep says (Max at
// least 1). now is the clock the ids are made from (nil: time.Now).
func NewMemory(keep Retention, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	keep.Max = max(keep.Max, 1)
	l := &Memory{keep: keep, now: now}
	l.append(Entry{Reset: "the process started"})
	return l
}

// Append adds one entry per change, in order, and returns their ids.
func (l *Memory) Append(changes [][]byte) []Cursor {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]Cursor, len(changes))
	for i, c := range changes {
		ids[i] = l.append(Entry{Change: c})
	}
	l.trim()
	return ids
}

// Reset adds a reset, for reason: what came before it is not known to the
// log (a change that could not be recorded), and consumers reload.
func (l *Memory) Reset(reason string) Cursor {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := l.append(Entry{Reset: reason})
	l.trim()
	return id
}

// append gives e the next id, as Redis does for XADD *: the clock's
// millisecond, or the last one's with the next seq when the clock has not
// moved past it.
func (l *Memory) append(e Entry) Cursor {
	ms := uint64(max(l.now().UnixMilli(), 0))
	if ms <= l.last.Ms {
		e.ID = Cursor{Ms: l.last.Ms, Seq: l.last.Seq + 1}
	} else {
		e.ID = Cursor{Ms: ms}
	}
	l.entries = append(l.entries, e)
	l.last = e.ID
	return e.ID
}

// trim drops the entries that are neither among the last Max nor younger
// than Age.
func (l *Memory) trim() {
	cut := l.now().Add(-l.keep.Age).UnixMilli()
	n := 0
	for n < len(l.entries)-l.keep.Max && int64(l.entries[n].ID.Ms) < cut {
		n++
	}
	if n == 0 {
		return
	}
	l.trimmed = l.entries[n-1].ID
	l.entries = append(l.entries[:0:0], l.entries[n:]...)
}

// ReadLast returns the last n entries, oldest first.
func (l *Memory) ReadLast(n int) Window {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := Window{Exists: true, Last: l.last, Trimmed: l.trimmed}
	w.Entries = append([]Entry(nil), l.entries[max(len(l.entries)-max(n, 0), 0):]...)
	return w
}

// Read returns at most n entries after the cursor.
func (l *Memory) Read(after Cursor, n int) Window {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := Window{Exists: true, Last: l.last, Trimmed: l.trimmed}
	i, found := slices.BinarySearchFunc(l.entries, after, func(e Entry, c Cursor) int { return e.ID.Compare(c) })
	if found {
		i++
	}
	w.Entries = append([]Entry(nil), l.entries[i:min(i+max(n, 0), len(l.entries))]...)
	return w
}
