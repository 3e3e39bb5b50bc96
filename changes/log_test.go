package changes_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/internal/testutil"
)

func TestParseCursor(t *testing.T) {
	for in, want := range map[string]changes.Cursor{
		"0-0":                     {},
		"0":                       {},
		"1733500000000-5":         {Ms: 1733500000000, Seq: 5},
		"1733500000000":           {Ms: 1733500000000},
		"18446744073709551615-18": {Ms: 1<<64 - 1, Seq: 18},
	} {
		got, err := changes.ParseCursor(in)
		if err != nil || got != want {
			t.Errorf("ParseCursor(%q) = %v, %v, want %v", in, got, err, want)
		}
		if s := got.String(); in == s {
			continue
		} else if again, _ := changes.ParseCursor(s); again != got {
			t.Errorf("ParseCursor(%q.String()) = %v", in, again)
		}
	}
	for _, in := range []string{"", "-", "1-", "-1", "01-2", "1-02", "+1-2", " 1-2", "1-2 ", "1-2-3", "1.5-2", "0x10-1",
		"18446744073709551616-0", "1-18446744073709551616", "１-2", "abc"} {
		if c, err := changes.ParseCursor(in); err == nil {
			t.Errorf("ParseCursor(%q) = %v, nil; want an error", in, c)
		}
	}
}

func id(ms, seq uint64) changes.Cursor { return changes.Cursor{Ms: ms, Seq: seq} }

func change(ms, seq uint64) changes.Entry {
	return changes.Entry{ID: id(ms, seq), Change: fmt.Appendf(nil, `{"n":"%d-%d"}`, ms, seq)}
}

func reset(ms, seq uint64) changes.Entry { return changes.Entry{ID: id(ms, seq), Reset: "test"} }

func TestWindow_Follow(t *testing.T) {
	for _, tt := range []struct {
		name     string
		w        changes.Window
		after    changes.Cursor
		want     []changes.Cursor // the changes' ids
		wantNext changes.Cursor
		gone     bool
	}{
		{name: "no log, from the start", w: changes.Window{}, wantNext: id(0, 0)},
		{name: "no log, a cursor", w: changes.Window{}, after: id(5, 0), gone: true},
		{name: "from the start, over the first reset",
			w:    changes.Window{Exists: true, Last: id(3, 0), Entries: []changes.Entry{reset(1, 0), change(2, 0), change(3, 0)}},
			want: []changes.Cursor{id(2, 0), id(3, 0)}, wantNext: id(3, 0)},
		{name: "in the middle",
			w:     changes.Window{Exists: true, Last: id(3, 0), Entries: []changes.Entry{change(3, 0)}},
			after: id(2, 0), want: []changes.Cursor{id(3, 0)}, wantNext: id(3, 0)},
		{name: "at the end", w: changes.Window{Exists: true, Last: id(3, 0)}, after: id(3, 0), wantNext: id(3, 0)},
		{name: "from the start of a log whose entries were all trimmed", w: changes.Window{Exists: true, Last: id(3, 0), Trimmed: id(3, 0)},
			wantNext: id(3, 0)},
		{name: "past the end", w: changes.Window{Exists: true, Last: id(3, 0)}, after: id(3, 1), gone: true},
		{name: "trimmed past the cursor", w: changes.Window{Exists: true, Last: id(9, 0), Trimmed: id(4, 0), Entries: []changes.Entry{change(5, 0)}},
			after: id(3, 0), gone: true},
		{name: "at what was trimmed", w: changes.Window{Exists: true, Last: id(9, 0), Trimmed: id(4, 0), Entries: []changes.Entry{change(5, 0)}},
			after: id(4, 0), want: []changes.Cursor{id(5, 0)}, wantNext: id(5, 0)},
		{name: "a reset after the cursor", w: changes.Window{Exists: true, Last: id(9, 0), Entries: []changes.Entry{reset(5, 0), change(6, 0)}},
			after: id(4, 0), gone: true},
		{name: "a reset after changes ends the page",
			w:     changes.Window{Exists: true, Last: id(9, 0), Entries: []changes.Entry{change(5, 0), reset(6, 0), change(7, 0)}},
			after: id(4, 0), want: []changes.Cursor{id(5, 0)}, wantNext: id(5, 0)},
		{name: "from the start, a reset after changes ends the page",
			w:    changes.Window{Exists: true, Last: id(9, 0), Entries: []changes.Entry{reset(1, 0), change(5, 0), reset(6, 0)}},
			want: []changes.Cursor{id(5, 0)}, wantNext: id(5, 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := tt.w.Follow(tt.after)
			if tt.gone {
				if !errors.Is(err, changes.ErrGone) {
					t.Errorf("Follow(%v) = %v, %v, %v; want ErrGone", tt.after, got, next, err)
				}
				return
			}
			var ids []changes.Cursor
			for _, e := range got {
				ids = append(ids, e.ID)
			}
			if err != nil || fmt.Sprint(ids) != fmt.Sprint(tt.want) || next != tt.wantNext {
				t.Errorf("Follow(%v) = %v, %v, %v; want %v, %v", tt.after, ids, next, err, tt.want, tt.wantNext)
			}
		})
	}
}

func TestMemory(t *testing.T) {
	clock := testutil.NewClock(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	l := changes.NewMemory(changes.Retention{Max: 3, Age: time.Hour}, clock.Now)
	start := l.Read(changes.Cursor{}, 10)
	if _, next, err := start.Follow(changes.Cursor{}); err != nil || next != start.Last || len(start.Entries) != 1 {
		t.Fatalf("a new log: %+v, next %v, %v; want one reset, next its id", start, next, err)
	}

	// Ids grow within a millisecond, and with the clock.
	a := l.Append([][]byte{[]byte("a"), []byte("b")})
	clock.Advance(time.Millisecond)
	b := l.Append([][]byte{[]byte("c")})
	want := []changes.Cursor{{Ms: start.Last.Ms, Seq: 1}, {Ms: start.Last.Ms, Seq: 2}, {Ms: start.Last.Ms + 1}}
	if got := append(a, b...); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
	// An earlier process's cursor is gone.
	if _, _, err := l.Read(id(start.Last.Ms-1, 0), 10).Follow(id(start.Last.Ms-1, 0)); !errors.Is(err, changes.ErrGone) {
		t.Errorf("a cursor from before the log started: %v, want ErrGone", err)
	}
	// Young entries are kept beyond Max.
	if w := l.Read(changes.Cursor{}, 10); len(w.Entries) != 4 || !w.Trimmed.IsZero() {
		t.Errorf("after 4 young entries: %d kept, trimmed %v; want 4, none", len(w.Entries), w.Trimmed)
	}
	// Old ones beyond Max are trimmed, and a cursor before them is gone.
	clock.Advance(2 * time.Hour)
	c := l.Append([][]byte{[]byte("d")})
	w := l.Read(changes.Cursor{}, 10)
	if len(w.Entries) != 3 || w.Entries[0].ID != a[1] || w.Trimmed != a[0] {
		t.Fatalf("after trimming: %+v; want the last 3 from %v, trimmed %v", w, a[1], a[0])
	}
	if _, _, err := l.Read(start.Last, 10).Follow(start.Last); !errors.Is(err, changes.ErrGone) {
		t.Errorf("a cursor before what was trimmed: %v, want ErrGone", err)
	}
	got, next, err := l.Read(a[0], 10).Follow(a[0])
	if err != nil || len(got) != 3 || next != c[0] {
		t.Errorf("from what was trimmed last: %v, %v, %v; want 3 changes, next %v", got, next, err, c[0])
	}
	if got := l.ReadLast(2); len(got.Entries) != 2 || got.Entries[0].ID != b[0] || got.Entries[1].ID != c[0] {
		t.Errorf("ReadLast(2) = %+v, want %v and %v", got.Entries, b[0], c[0])
	}
	if got := l.Read(a[1], 1); len(got.Entries) != 1 || got.Entries[0].ID != b[0] {
		t.Errorf("Read(%v, 1) = %+v, want %v", a[1], got.Entries, b[0])
	}
}
