package symcache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/l2"
)

// grows lets the USD-M answer of 2025 replace that of 2024, 5.3 times its
// bytes: more than the growth guard lets through at once.
var grows = symcache.Config{MaxGrowth: -1}

// serveUSDM makes the fake Binance answer USD-M with the recording name.
func (w *world) serveUSDM(name string) []byte {
	w.t.Helper()
	body := fixtures.Read(w.t, "binance/"+name)
	w.upstream.Handler.Set(fetchtest.USDMPath, fetchtest.Response{Body: body})
	return body
}

// refresh refreshes m on c and fails the test unless it fetched.
func refresh(t *testing.T, c *symcache.Cache, m exchangeinfo.Market) *exchangeinfo.Snapshot {
	t.Helper()
	r, err := c.Refresh(context.Background(), m)
	if err != nil {
		t.Fatalf("Refresh(%s) = %v", m, err)
	}
	return r.Snapshot
}

// allChanges follows c's log of m from after to its end, a page of limit
// at a time.
func allChanges(t *testing.T, c *symcache.Cache, m exchangeinfo.Market, after changes.Cursor, limit int) ([]changes.Change, changes.Cursor) {
	t.Helper()
	var out []changes.Change
	for {
		p, err := c.Changes(context.Background(), m, symcache.ChangeQuery{After: after, Limit: limit})
		if err != nil {
			t.Fatalf("Changes(%s, after %v) = %v", m, after, err)
		}
		out = append(out, p.Changes...)
		if len(p.Changes) < limit {
			return out, p.Next
		}
		after = p.Next
	}
}

// withoutIDs returns cs with their IDs cleared, for comparing with Diff.
func withoutIDs(cs []changes.Change) []changes.Change {
	out := slices.Clone(cs)
	for i := range out {
		out[i].ID = ""
	}
	return out
}

func sameChanges(t *testing.T, what string, got, want []changes.Change) {
	t.Helper()
	g, _ := json.Marshal(withoutIDs(got))
	w, _ := json.Marshal(withoutIDs(want))
	if string(g) != string(w) {
		t.Fatalf("%s: %d changes, want %d (Diff's):\ngot  %.600s\nwant %.600s", what, len(got), len(want), g, w)
	}
}

// TestChanges_deployment checks the change log of a deployment on a real
// Redis: the first snapshot records nothing; the next, the diff of the two
// recorded USD-M answers, written with the snapshot; every process reads
// the same changes with the same ids, in order, page by page; and a
// process that stored from an older base records what the stored one
// missed, once.
func TestChanges_deployment(t *testing.T) {
	w := newWorld(t, withRedis(relaxed))
	a := w.process(grows, markets(exchangeinfo.USDM))
	// B takes up no announcement: it keeps the snapshot it read.
	b := w.process(grows, markets(exchangeinfo.USDM), alone())
	ctx := context.Background()

	w.serveUSDM("usdm_exchangeinfo_2024-02-12.json")
	old := refresh(t, a, exchangeinfo.USDM)
	get(t, b, exchangeinfo.USDM, symcache.HitL2)
	start, err := b.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{FromEnd: true})
	if err != nil || len(start.Changes) != 0 || start.Next.IsZero() {
		t.Fatalf("after the first snapshot: %+v, %v; want no changes and the reset's id", start, err)
	}
	if got, _ := allChanges(t, b, exchangeinfo.USDM, changes.Cursor{}, 100); len(got) != 0 {
		t.Fatalf("the first snapshot recorded %d changes, want none", len(got))
	}

	w.serveUSDM("usdm_exchangeinfo.json")
	w.clock.Advance(time.Second)
	now := refresh(t, a, exchangeinfo.USDM)
	want := changes.Diff(old, now)
	if len(want) < 400 {
		t.Fatalf("Diff of the two recordings: %d changes, want hundreds", len(want))
	}
	// Both processes read the same changes, in small pages or one.
	gotA, endA := allChanges(t, a, exchangeinfo.USDM, start.Next, 7)
	gotB, endB := allChanges(t, b, exchangeinfo.USDM, changes.Cursor{}, symcache.MaxChangesLimit)
	sameChanges(t, "process A, pages of 7", gotA, want)
	if fmt.Sprint(gotA) != fmt.Sprint(gotB) || endA != endB {
		t.Fatalf("processes A and B read different changes (or ids): %d vs %d, ends %v vs %v", len(gotA), len(gotB), endA, endB)
	}
	for i, ch := range gotA {
		id, err := changes.ParseCursor(ch.ID)
		if err != nil || (i > 0 && id.Compare(changes.Cursor(mustCursor(t, gotA[i-1].ID))) <= 0) {
			t.Fatalf("change %d has id %q after %q: want growing ids", i, ch.ID, gotA[i-1].ID)
		}
		if ch.To.ETag != now.ETag() || ch.From.ETag != old.ETag() || ch.To.ServerTime != now.ServerTime().UnixMilli() {
			t.Fatalf("change %d: from %+v to %+v, want the two snapshots", i, ch.From, ch.To)
		}
	}
	if st := a.Stats()[0]; st.Changes["listed"] == 0 || st.Changes["delisted"] == 0 {
		t.Errorf("Stats().Changes = %v, want listed and delisted counted", st.Changes)
	}
	if n := w.rdb.XLen(ctx, "symcache:{usdm}:changes").Val(); n != int64(len(want))+1 {
		t.Errorf("the Redis log holds %d entries, want the reset and %d changes", n, len(want))
	}
	if logged := w.logs.String(); !strings.Contains(logged, `"msg":"symbol listed"`) || !strings.Contains(logged, `"msg":"symbol delisted"`) {
		t.Errorf("no INFO line for listed and delisted symbols")
	}

	// The latest, oldest first, and the end.
	latest, err := b.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{Latest: true, Limit: 10})
	if err != nil || latest.Next != endA {
		t.Fatalf("Latest = %+v, %v; want next the end %v", latest.Next, err, endA)
	}
	sameChanges(t, "the latest 10", latest.Changes, want[len(want)-10:])
	if fmt.Sprint(latest.Changes) != fmt.Sprint(gotA[len(gotA)-10:]) {
		t.Errorf("Latest ids differ from the log's")
	}
	latest, err = a.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{Latest: true, Limit: 2, Kinds: []changes.Kind{changes.Delisted}})
	if err != nil || len(latest.Changes) != 2 || latest.Changes[1].Kind != changes.Delisted {
		t.Errorf("Latest 2 delistings = %+v, %v", latest.Changes, err)
	}

	// Filters.
	p, err := b.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{After: start.Next, Kinds: []changes.Kind{changes.Delisted}, Limit: 5000})
	var wantDelisted []changes.Change
	for _, ch := range want {
		if ch.Kind == changes.Delisted {
			wantDelisted = append(wantDelisted, ch)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	sameChanges(t, "kind delisted", p.Changes, wantDelisted)
	sym := wantDelisted[0].Symbol
	p, err = b.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{Symbols: []string{sym}, Limit: 10})
	if err != nil || len(p.Changes) != 1 || p.Changes[0].Symbol != sym || p.Next != endA {
		t.Errorf("symbol %s: %+v, %v; want its delisting, and next the end", sym, p, err)
	}

	// B, which holds the older snapshot, fetches the same answer as A
	// did: it records nothing twice.
	w.clock.Advance(time.Second)
	refresh(t, b, exchangeinfo.USDM)
	if got, _ := allChanges(t, a, exchangeinfo.USDM, endA, 100); len(got) != 0 {
		t.Errorf("after B stored the same answer: %d more changes, want none", len(got))
	}
	// A change that A records from the base B stored, once.
	edited := strings.Replace(string(fixtures.Read(t, "binance/usdm_exchangeinfo.json")), `"status": "TRADING"`, `"status": "SETTLING"`, 1)
	w.upstream.Handler.Set(fetchtest.USDMPath, fetchtest.Response{Body: []byte(edited)})
	w.clock.Advance(time.Second)
	refresh(t, a, exchangeinfo.USDM)
	got, _ := allChanges(t, b, exchangeinfo.USDM, endA, 100)
	if len(got) != 1 || got[0].Kind != changes.Status || string(got[0].Old) != `"TRADING"` || string(got[0].New) != `"SETTLING"` {
		t.Errorf("after one status change: %+v, want it, once", got)
	}
}

func mustCursor(t *testing.T, s string) changes.Cursor {
	t.Helper()
	c, err := changes.ParseCursor(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestChanges_gone checks that a consumer is told when the log cannot
// vouch for what follows its cursor: trimmed past it, a Redis that lost
// its data, a cursor from nowhere. And that an older snapshot put back
// into Redis records no change.
func TestChanges_gone(t *testing.T) {
	w := newWorld(t, withRedis(relaxed))
	a := w.process(symcache.Config{ChangesMax: 1, ChangesAge: time.Millisecond, MaxGrowth: grows.MaxGrowth}, markets(exchangeinfo.USDM))
	ctx := context.Background()
	isGone := func(what string, after changes.Cursor) {
		t.Helper()
		if p, err := a.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{After: after}); !errors.Is(err, changes.ErrGone) {
			t.Errorf("%s: Changes after %v = %+v, %v; want ErrGone", what, after, p, err)
		}
	}

	w.serveUSDM("usdm_exchangeinfo_2024-02-12.json")
	refresh(t, a, exchangeinfo.USDM)
	w.serveUSDM("usdm_exchangeinfo.json")
	w.clock.Advance(time.Second)
	refresh(t, a, exchangeinfo.USDM)
	// Trimmed to the last entry, as old as they are.
	time.Sleep(5 * time.Millisecond)
	edited := strings.Replace(string(fixtures.Read(t, "binance/usdm_exchangeinfo.json")), `"status": "TRADING"`, `"status": "SETTLING"`, 1)
	w.upstream.Handler.Set(fetchtest.USDMPath, fetchtest.Response{Body: []byte(edited)})
	w.clock.Advance(time.Second)
	refresh(t, a, exchangeinfo.USDM)
	if n := w.rdb.XLen(ctx, "symcache:{usdm}:changes").Val(); n != 1 {
		t.Fatalf("the log holds %d entries, want 1", n)
	}
	isGone("trimmed", changes.Cursor{Ms: 1})
	end, err := a.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{FromEnd: true})
	if err != nil {
		t.Fatal(err)
	}
	isGone("past the end", changes.Cursor{Ms: end.Next.Ms, Seq: end.Next.Seq + 1})

	// Redis restarts empty: the old cursor is gone; the last good snapshot
	// a process puts back records nothing, and the next fetch starts the
	// log again.
	w.restartRedis()
	isGone("after Redis lost its data", end.Next)
	if _, err := a.Get(ctx, exchangeinfo.USDM); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(time.Second)
	refresh(t, a, exchangeinfo.USDM)
	isGone("after the log started again", end.Next)
	p, err := a.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{})
	if err != nil || len(p.Changes) != 0 {
		t.Errorf("from the start of the new log: %+v, %v; want no changes", p, err)
	}
}

// TestChanges_memory checks the log of a process without Redis: changes
// of each new snapshot, none for an answer the shrink guard rejects nor an
// equal one, the delistings of a shrunken answer once it is accepted, and
// an earlier process's cursors gone.
func TestChanges_memory(t *testing.T) {
	w := newWorld(t, standingClock())
	var cfg symcache.Config
	c := w.process(cfg, markets(exchangeinfo.USDM))
	ctx := context.Background()

	old := fixtures.Read(t, "binance/usdm_exchangeinfo_2024-02-12.json")
	w.upstream.Handler.Set(fetchtest.USDMPath, fetchtest.Response{Body: old})
	first := refresh(t, c, exchangeinfo.USDM)
	start, err := c.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{FromEnd: true})
	if err != nil || start.Next.IsZero() {
		t.Fatalf("FromEnd = %+v, %v", start, err)
	}
	w.clock.Advance(time.Second)
	refresh(t, c, exchangeinfo.USDM) // the same answer
	if got, _ := allChanges(t, c, exchangeinfo.USDM, start.Next, 10); len(got) != 0 {
		t.Fatalf("the first snapshot and an equal one recorded %d changes, want none", len(got))
	}

	// An answer of 20 symbols is rejected, and records nothing, until it
	// has kept coming for a TTL, three times in a row.
	w.upstream.Handler.Set(fetchtest.USDMPath, fetchtest.Response{Body: firstSymbols(t, first, 20)})
	for i := range 2 {
		w.clock.Advance(6 * time.Minute) // past the TTL
		get(t, c, exchangeinfo.USDM, symcache.Stale)
		if got, _ := allChanges(t, c, exchangeinfo.USDM, start.Next, 10); len(got) != 0 {
			t.Fatalf("a rejected answer (sighting %d) recorded %d changes", i+1, len(got))
		}
	}
	w.clock.Advance(6 * time.Minute)
	if r := get(t, c, exchangeinfo.USDM, symcache.Miss); r.Snapshot.Len() != 20 {
		t.Fatalf("third sighting: %d symbols, want the 20 accepted", r.Snapshot.Len())
	}
	got, end := allChanges(t, c, exchangeinfo.USDM, start.Next, 1000)
	if len(got) != first.Len()-20 || got[0].Kind != changes.Delisted {
		t.Fatalf("once accepted: %d changes (%v first), want %d delistings", len(got), got[0].Kind, first.Len()-20)
	}

	// A process that starts again has a new log.
	c2 := w.process(cfg, markets(exchangeinfo.USDM))
	if _, err := c2.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{After: end}); !errors.Is(err, changes.ErrGone) {
		t.Errorf("another process's cursor: %v, want ErrGone", err)
	}
	if _, err := c2.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{Limit: symcache.MaxChangesLimit + 1}); err == nil {
		t.Errorf("a limit above MaxChangesLimit: nil error")
	}
}

// firstSymbols returns s's body with only its first n symbols.
func firstSymbols(t *testing.T, s *exchangeinfo.Snapshot, n int) []byte {
	t.Helper()
	syms := s.Symbols()
	body := s.Body()
	first, last := syms[0].Raw, syms[n-1].Raw
	startAt := strings.Index(string(body), string(first))
	endAt := strings.Index(string(body), string(last)) + len(last)
	closeAt := strings.Index(string(body), string(syms[len(syms)-1].Raw)) + len(syms[len(syms)-1].Raw)
	return slices.Concat(body[:startAt], body[startAt:endAt], body[closeAt:])
}

// TestSubscribe checks that subscribers of two processes get each change
// as it is recorded, once, in order, woken by the announcement; and that a
// subscription ends with ErrGone.
func TestSubscribe(t *testing.T) {
	w := newWorld(t, withRedis(relaxed))
	a := w.process(grows, markets(exchangeinfo.USDM))
	b := w.process(grows, markets(exchangeinfo.USDM))
	w.serveUSDM("usdm_exchangeinfo_2024-02-12.json")
	old := refresh(t, a, exchangeinfo.USDM)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type got struct {
		changes []changes.Change
		err     error
	}
	results := make(chan got, 2)
	want := 0
	follow := func(c *symcache.Cache) {
		var g got
		for ch, err := range c.Subscribe(ctx, exchangeinfo.USDM, symcache.ChangeQuery{FromEnd: true, Limit: 50}) {
			if err != nil {
				g.err = err
				break
			}
			if g.changes = append(g.changes, ch); len(g.changes) == want {
				break
			}
		}
		results <- g
	}
	w.serveUSDM("usdm_exchangeinfo.json")
	body := fixtures.Read(t, "binance/usdm_exchangeinfo.json")
	next, err := exchangeinfo.Parse(exchangeinfo.USDM, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want = len(changes.Diff(old, next))
	go follow(a)
	go follow(b)
	time.Sleep(100 * time.Millisecond) // both wait at the end of the log
	w.clock.Advance(time.Second)
	now := refresh(t, a, exchangeinfo.USDM)
	wantChanges := changes.Diff(old, now)
	for range 2 {
		g := <-results
		if g.err != nil {
			t.Fatalf("Subscribe = %v after %d changes", g.err, len(g.changes))
		}
		sameChanges(t, "a subscriber", g.changes, wantChanges)
	}

	// A cursor the log cannot vouch for ends the subscription.
	for ch, err := range b.Subscribe(ctx, exchangeinfo.USDM, symcache.ChangeQuery{After: changes.Cursor{Ms: 1}}) {
		if !errors.Is(err, changes.ErrGone) {
			t.Errorf("Subscribe after a cursor from nowhere yielded %+v, %v; want ErrGone", ch, err)
		}
	}
	if _, err := a.Changes(ctx, "nowhere", symcache.ChangeQuery{}); err == nil {
		t.Errorf("Changes of an unknown market: nil error")
	}
}

// TestSubscribe_flood checks that a flood of announcements (forged, say)
// wakes a subscription at most every 100 ms, not once per message: the
// log is read a handful of times, not hundreds.
func TestSubscribe_flood(t *testing.T) {
	w := newWorld(t, withRedis(relaxed))
	a := w.process(symcache.Config{}, markets(exchangeinfo.USDM))
	refresh(t, a, exchangeinfo.USDM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for range a.Subscribe(ctx, exchangeinfo.USDM, symcache.ChangeQuery{FromEnd: true}) {
		}
	}()
	time.Sleep(200 * time.Millisecond) // it waits at the end of the log
	reads := func() int {
		var n int
		for line := range strings.SplitSeq(w.rdb.Info(ctx, "commandstats").Val(), "\n") {
			if strings.HasPrefix(line, "cmdstat_xrange:") {
				fmt.Sscanf(line, "cmdstat_xrange:calls=%d", &n)
			}
		}
		return n
	}
	before := reads()
	start := time.Now()
	for range 500 {
		w.rdb.Publish(ctx, "symcache:invalidate", `{"market":"usdm","fetched_at":"2020-01-01T00:00:00Z","etag":"\"forged\""}`)
	}
	time.Sleep(300 * time.Millisecond)
	// One read per 100 ms of the flood and after it, and one more at most.
	if n, most := reads()-before, int(time.Since(start)/(100*time.Millisecond))+2; n > most {
		t.Errorf("500 announcements in %v: the log was read %d times, want at most %d", time.Since(start).Round(time.Millisecond), n, most)
	}
}

// TestChanges_restored checks that a snapshot put back into a Redis that
// lost its data records no change: the last good snapshot a process
// restores (as its refresher does, with SeedLastGood), and the snapshot
// fetched after it, which starts the log again with a reset rather than
// record changes that no consumer can place.
func TestChanges_restored(t *testing.T) {
	w := newWorld(t, withRedis(relaxed))
	a := w.process(grows, markets(exchangeinfo.USDM))
	ctx := context.Background()
	w.serveUSDM("usdm_exchangeinfo_2024-02-12.json")
	old := refresh(t, a, exchangeinfo.USDM)
	w.serveUSDM("usdm_exchangeinfo.json")
	w.clock.Advance(time.Second)
	refresh(t, a, exchangeinfo.USDM)
	end, err := a.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{FromEnd: true})
	if err != nil {
		t.Fatal(err)
	}

	// Redis loses its data; a process that held the older snapshot puts it back.
	w.restartRedis()
	restored := l2.Envelope{Market: "usdm", FetchedAt: old.FetchedAt(), ServerTime: old.ServerTime().UnixMilli(), ETag: old.ETag(), ExchangeInfo: old.Body()}
	if wrote, err := w.store().SeedLastGood(ctx, restored); err != nil || !wrote {
		t.Fatalf("SeedLastGood = %v, %v", wrote, err)
	}
	if n := w.exists("symcache:{usdm}:changes"); n != 0 {
		t.Fatalf("the restore wrote a change log")
	}
	w.clock.Advance(time.Second)
	refresh(t, a, exchangeinfo.USDM) // 3003 differences from the restored snapshot
	entries := w.rdb.XRange(ctx, "symcache:{usdm}:changes", "-", "+").Val()
	if len(entries) != 1 || entries[0].Values["reset"] == nil {
		t.Fatalf("after the restore, a fetch wrote %d entries (%v...), want one reset", len(entries), entries[:min(len(entries), 1)])
	}
	if _, err := a.Changes(ctx, exchangeinfo.USDM, symcache.ChangeQuery{After: end.Next}); !errors.Is(err, changes.ErrGone) {
		t.Errorf("a cursor from before Redis lost its data: %v, want ErrGone", err)
	}
}
