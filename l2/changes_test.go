package l2_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// snap returns the i-th of a series of envelopes of market, each fetched a
// second after the one before.
func snap(market string, i int) l2.Envelope {
	e := envelope(market, fmt.Appendf(nil, `{"serverTime":%d,"symbols":[]}`, i))
	e.FetchedAt = e.FetchedAt.Add(time.Duration(i) * time.Second)
	e.ETag = fmt.Sprintf(`"etag-%d"`, i)
	return e
}

func metaOf(e l2.Envelope) l2.Meta {
	return l2.Meta{Market: e.Market, FetchedAt: e.FetchedAt, ETag: e.ETag}
}

// logOf reads market's whole log after "0-0".
func logOf(t *testing.T, s *l2.Store, market string) l2.LogWindow {
	t.Helper()
	w, err := s.Changes(context.Background(), market, "0-0", 10000)
	if err != nil {
		t.Fatalf("Changes(%s) = %v", market, err)
	}
	return w
}

// kinds renders a window's entries: "c:<change>" or "reset".
func kinds(w l2.LogWindow) []string {
	var out []string
	for _, e := range w.Entries {
		if e.Reset != "" {
			out = append(out, "reset")
		} else {
			out = append(out, "c:"+string(e.Change))
		}
	}
	return out
}

func TestStore_Advance(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()

	// The first snapshot a deployment stores starts the log with a reset,
	// whatever base the writer names.
	first := snap("usdm", 1)
	done, _, err := s.Advance(ctx, l2.Advance{Envelope: first, TTL: time.Minute, Base: metaOf(snap("usdm", 0)), Changes: [][]byte{[]byte(`{"x":0}`)}})
	if err != nil || done.Reset == "" || len(done.IDs) != 0 {
		t.Fatalf("first Advance = %+v, %v, want a reset and no changes", done, err)
	}
	checkReads(t, s, "usdm", first, "")

	// The next, from the stored base, appends its changes, in order.
	second := snap("usdm", 2)
	done, _, err = s.Advance(ctx, l2.Advance{Envelope: second, TTL: time.Minute, Base: metaOf(first), Seen: done.Reset,
		Changes: [][]byte{[]byte(`{"x":1}`), []byte(`{"x":2}`)}})
	if err != nil || done.Reset != "" || len(done.IDs) != 2 {
		t.Fatalf("second Advance = %+v, %v, want two ids", done, err)
	}
	checkReads(t, s, "usdm", second, "")
	w := logOf(t, s, "usdm")
	if got := fmt.Sprint(kinds(w)); got != `[reset c:{"x":1} c:{"x":2}]` {
		t.Fatalf("log = %s", got)
	}
	if w.Entries[1].ID != done.IDs[0] || w.Entries[2].ID != done.IDs[1] || w.Last != done.IDs[1] || w.Trimmed != "0-0" {
		t.Errorf("window %+v, want the ids Advance gave %v", w, done.IDs)
	}

	// The last two, oldest first.
	if last, err := s.LatestChanges(ctx, "usdm", 2); err != nil || fmt.Sprint(kinds(last)) != `[c:{"x":1} c:{"x":2}]` || last.Last != done.IDs[1] {
		t.Errorf("LatestChanges(2) = %v, %v", kinds(last), err)
	}
	if last, err := s.LatestChanges(ctx, "nowhere", 2); err != nil || last.Exists {
		t.Errorf("LatestChanges of no log = %+v, %v", last, err)
	}

	// From the middle: what follows.
	part, err := s.Changes(ctx, "usdm", done.IDs[0], 10)
	if err != nil || fmt.Sprint(kinds(part)) != `[c:{"x":2}]` {
		t.Errorf("Changes after the first change = %v, %v", kinds(part), err)
	}

	// A writer whose base is not the stored snapshot writes nothing and
	// learns which snapshot is stored.
	third := snap("usdm", 3)
	_, stored, err := s.Advance(ctx, l2.Advance{Envelope: third, TTL: time.Minute, Base: metaOf(first), Changes: [][]byte{[]byte(`{"x":3}`)}})
	if !errors.Is(err, l2.ErrRebase) {
		t.Fatalf("Advance from an old base = %v, want ErrRebase", err)
	}
	if !stored.FetchedAt.Equal(second.FetchedAt.Truncate(time.Millisecond)) || stored.ETag != second.ETag {
		t.Errorf("stored = %+v, want the second snapshot's meta", stored)
	}
	checkReads(t, s, "usdm", second, "after ErrRebase")
	if n := len(logOf(t, s, "usdm").Entries); n != 3 {
		t.Errorf("log has %d entries after ErrRebase, want 3", n)
	}

	// An older snapshot is superseded, whatever its base.
	if _, _, err := s.Advance(ctx, l2.Advance{Envelope: first, TTL: time.Minute, Base: metaOf(second)}); !errors.Is(err, l2.ErrSuperseded) {
		t.Fatalf("Advance of an older snapshot = %v, want ErrSuperseded", err)
	}

	// An equal snapshot (no changes) moves the stored one on and adds nothing.
	same := second
	same.FetchedAt = third.FetchedAt
	done, _, err = s.Advance(ctx, l2.Advance{Envelope: same, TTL: time.Minute, Base: stored})
	if err != nil || done.Reset != "" || len(done.IDs) != 0 {
		t.Fatalf("Advance with no changes = %+v, %v", done, err)
	}
	if m, _ := s.Meta(ctx, "usdm"); !m.FetchedAt.Equal(third.FetchedAt.Truncate(time.Millisecond)) {
		t.Errorf("meta after Advance with no changes = %+v", m)
	}
	if n := len(logOf(t, s, "usdm").Entries); n != 3 {
		t.Errorf("log has %d entries after no changes, want 3", n)
	}

	// A writer that knows no base learns the stored one.
	if _, stored, err = s.Advance(ctx, l2.Advance{Envelope: snap("usdm", 4), TTL: time.Minute}); !errors.Is(err, l2.ErrRebase) || stored.ETag != second.ETag {
		t.Fatalf("Advance with a zero base = %+v, %v; want ErrRebase naming the stored snapshot", stored, err)
	}

	// A reset when asked.
	done, _, err = s.Advance(ctx, l2.Advance{Envelope: snap("usdm", 4), TTL: time.Minute, Base: stored, Reset: true, Changes: [][]byte{[]byte(`{"x":4}`)}})
	if err != nil || done.Reset == "" || len(done.IDs) != 0 {
		t.Fatalf("Advance with a zero base = %+v, %v, want a reset", done, err)
	}
	if got := fmt.Sprint(kinds(logOf(t, s, "usdm"))); got != `[reset c:{"x":1} c:{"x":2} reset]` {
		t.Errorf("log = %s", got)
	}
}

// TestStore_Advance_resets checks that a log that cannot follow on from
// what it holds starts again, and that the changes are not recorded then.
func TestStore_Advance_resets(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()
	const key = "symcache:{spot}:changes"

	base := snap("spot", 1)
	if _, _, err := s.Advance(ctx, l2.Advance{Envelope: base, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for i, tt := range []struct {
		name  string
		spoil func() string // returns Seen
	}{
		{"log deleted", func() string { rdb.Del(ctx, key); return "" }},
		{"log of another type", func() string { rdb.Del(ctx, key); rdb.Set(ctx, key, "x", 0); return "" }},
		{"log behind what the writer saw", func() string { return "99999999999999-0" }},
		{"meta deleted", func() string { rdb.Del(ctx, "symcache:{spot}:meta"); return "" }},
		{"a snapshot Put without its changes", func() string {
			base = snap("spot", 100)
			if err := s.Put(ctx, base, time.Minute); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seen := tt.spoil()
			next := snap("spot", 2+i+100*(i/4))
			done, _, err := s.Advance(ctx, l2.Advance{Envelope: next, TTL: time.Minute, Base: metaOf(base), Seen: seen, Changes: [][]byte{[]byte(`{"lost":1}`)}})
			if err != nil || done.Reset == "" || len(done.IDs) != 0 {
				t.Fatalf("Advance = %+v, %v, want a reset and no changes", done, err)
			}
			w := logOf(t, s, "spot")
			if last := w.Entries[len(w.Entries)-1]; last.ID != done.Reset || last.Reset == "" {
				t.Errorf("log ends with %+v, want the reset %s", last, done.Reset)
			}
			checkReads(t, s, "spot", next, "")
			base = next
		})
	}
}

// TestStore_Advance_race checks that of writers racing from one base,
// exactly one records its changes.
func TestStore_Advance_race(t *testing.T) {
	srv := l2test.Start(t)
	ctx := context.Background()
	first := snap("coinm", 1)
	s0 := l2.New(l2.Config{Client: srv.Client(t), Logger: discard()})
	if _, _, err := s0.Advance(ctx, l2.Advance{Envelope: first, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		s := l2.New(l2.Config{Client: srv.Client(t), Logger: discard()})
		wg.Go(func() {
			e := snap("coinm", 2)
			e.ETag = fmt.Sprintf(`"writer-%d"`, i)
			_, _, errs[i] = s.Advance(ctx, l2.Advance{Envelope: e, TTL: time.Minute, Base: metaOf(first), Changes: [][]byte{fmt.Appendf(nil, `{"writer":%d}`, i)}})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, l2.ErrRebase):
			t.Errorf("a racing Advance = %v, want nil or ErrRebase", err)
		}
	}
	if w := logOf(t, s0, "coinm"); won != 1 || len(w.Entries) != 2 {
		t.Errorf("%d writers won, log %v; want one, and one change after the reset", won, kinds(w))
	}
}

// TestStore_Advance_retention checks that the log keeps its last
// Keep.Max entries and every entry younger than Keep.Age, and that a
// cursor before what was trimmed can tell.
func TestStore_Advance_retention(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		age      time.Duration
		wantKept int // of 1 reset and 3 batches of 2 changes
	}{
		{"old ones trimmed", time.Millisecond, 3},
		{"young ones kept", time.Hour, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rdb.FlushAll(ctx)
			s := l2.New(l2.Config{Client: rdb, Logger: discard()})
			keep := l2.Retention{Max: 3, Age: tt.age}
			prev := snap("spot", 0)
			if _, _, err := s.Advance(ctx, l2.Advance{Envelope: prev, TTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
			var all []string
			for i := 1; i <= 3; i++ {
				time.Sleep(3 * time.Millisecond) // older than 1ms by Redis' clock
				next := snap("spot", i)
				done, _, err := s.Advance(ctx, l2.Advance{Envelope: next, TTL: time.Minute, Base: metaOf(prev), Keep: keep,
					Changes: [][]byte{fmt.Appendf(nil, `{"a":%d}`, i), fmt.Appendf(nil, `{"b":%d}`, i)}})
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, done.IDs...)
				prev = next
			}
			w := logOf(t, s, "spot")
			if len(w.Entries) != tt.wantKept {
				t.Fatalf("log has %v, want %d entries", kinds(w), tt.wantKept)
			}
			if tt.wantKept == 3 {
				// The last 3 are kept, and what was trimmed is known.
				if w.Entries[0].ID != all[3] || w.Trimmed != all[2] {
					t.Errorf("kept from %s, trimmed %s; want from %s, trimmed %s", w.Entries[0].ID, w.Trimmed, all[3], all[2])
				}
			} else if w.Trimmed != "0-0" {
				t.Errorf("Trimmed = %s, want 0-0", w.Trimmed)
			}
		})
	}
}

// TestStore_Changes_hostile checks what a reader makes of a log that
// holds what no writer of symcache puts there.
func TestStore_Changes_hostile(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()
	const key = "symcache:{spot}:changes"

	if w, err := s.Changes(ctx, "spot", "0-0", 10); err != nil || w.Exists {
		t.Errorf("Changes of no log = %+v, %v, want Exists false", w, err)
	}
	rdb.Set(ctx, key, "not a stream", 0)
	if w, err := s.Changes(ctx, "spot", "0-0", 10); err != nil || w.Exists {
		t.Errorf("Changes of a string = %+v, %v, want Exists false", w, err)
	}
	rdb.Del(ctx, key)
	big := make([]byte, 2<<20)
	for _, values := range [][]any{
		{"c", `{"ok":1}`},
		{"other", "x"},
		{"c", big},
		{"c", "a", "d", "b"},
		{"reset", ""},
	} {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	w, err := s.Changes(ctx, "spot", "0-0", 10)
	if err != nil {
		t.Fatalf("Changes = %v", err)
	}
	if got := fmt.Sprint(kinds(w)); got != `[c:{"ok":1} reset reset reset reset]` {
		t.Errorf("entries = %s, want the change, then each other entry read as a reset", got)
	}
	if _, err := s.Changes(ctx, "spot", "0-0", 0); err == nil {
		t.Errorf("Changes with count 0 = nil, want an error")
	}
}
