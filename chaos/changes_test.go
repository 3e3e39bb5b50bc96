package chaos

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
)

// verifyChangeLog checks each market's change log in Redis (when: before
// Redis is stopped, and at the end of the run), after sidecars raced,
// restarted, lost the refresh lock and saw Redis restart: the changes form
// one chain between resets (each batch starts from the snapshot the one
// before ended at), no snapshot's changes are recorded twice, and each
// batch is exactly what Diff finds between the two versions it names.
func (w *world) verifyChangeLog(when string) {
	rdb := redis.NewClient(&redis.Options{Addr: w.redis.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, mk := range w.markets {
		key := "symcache:{" + string(mk.m) + "}:changes"
		entries, err := rdb.XRange(ctx, key, "-", "+").Result()
		if err != nil {
			w.t.Logf("change log of %s not checked %s: %v", mk.m, when, err)
			continue
		}
		byETag := map[string]*exchangeinfo.Snapshot{mk.poison.snap.ETag(): mk.poison.snap}
		for _, v := range mk.versions {
			byETag[v.snap.ETag()] = v.snap
		}
		type batch struct {
			from, to changes.Ref
			changes  []changes.Change
		}
		var batches []batch
		resets, seen := 0, map[time.Time]bool{}
		var prev *batch // the batch before, since the last reset
		check := func(b *batch) {
			if b == nil {
				return
			}
			if seen[b.to.FetchedAt] {
				w.fail("change log of %s: the changes to the snapshot fetched at %s are recorded twice", mk.m, b.to.FetchedAt)
			}
			seen[b.to.FetchedAt] = true
			if prev != nil && prev.to.ETag != b.from.ETag {
				w.fail("change log of %s: a batch from %s follows one that ended at %s, with no reset between: a gap", mk.m, b.from.ETag, prev.to.ETag)
			}
			from, to := byETag[b.from.ETag], byETag[b.to.ETag]
			if from == nil || to == nil {
				w.fail("change log of %s: a batch between snapshots that are no valid version: %s → %s", mk.m, b.from.ETag, b.to.ETag)
			} else if got, want := strip(b.changes), strip(changes.Diff(from, to)); !slices.Equal(got, want) {
				w.fail("change log of %s: %d changes from %s to %s, want Diff's %d", mk.m, len(got), b.from.ETag, b.to.ETag, len(want))
			}
			batches = append(batches, *b)
			prev = &batches[len(batches)-1]
		}
		var cur *batch
		for _, e := range entries {
			if _, ok := e.Values["reset"]; ok {
				check(cur)
				cur, prev = nil, nil
				resets++
				continue
			}
			var ch changes.Change
			raw, _ := e.Values["c"].(string)
			if err := json.Unmarshal([]byte(raw), &ch); err != nil {
				w.fail("change log of %s: entry %s holds no change: %v", mk.m, e.ID, err)
				continue
			}
			if cur == nil || !cur.to.FetchedAt.Equal(ch.To.FetchedAt) || !cur.from.FetchedAt.Equal(ch.From.FetchedAt) {
				check(cur)
				cur = &batch{from: ch.From, to: ch.To}
			}
			cur.changes = append(cur.changes, ch)
		}
		check(cur)
		n := 0
		for _, b := range batches {
			n += len(b.changes)
		}
		w.events.add("(change log) %s %s: %d entries, %d resets, %d batches, %d changes", mk.m, when, len(entries), resets, len(batches), n)
		w.t.Logf("change log of %s %s: %d entries, %d resets, %d batches, %d changes", mk.m, when, len(entries), resets, len(batches), n)
	}
}

// strip returns each change as JSON without its id and snapshot times: what
// two computations of one diff share.
func strip(cs []changes.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		c.ID, c.From, c.To = "", changes.Ref{}, changes.Ref{}
		b, _ := json.Marshal(c)
		out[i] = string(b)
	}
	return out
}
