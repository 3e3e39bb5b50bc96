package chaos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/rules"
)

// The hostile faults of the script (docs/design.md, "What happens when…"):
// a value in Redis dated hours ahead holding a poisoned version, a refresh
// lock without a TTL, an upstream answer far larger than any valid version,
// and a flood of forged announcements.

const (
	// oversizeFor is how long an oversized answer lasts: less than a TTL,
	// because the guard accepts an answer that has kept coming for a TTL,
	// three times in a row (the designed end of a hold-back), and then it
	// would be a valid version. Each injection is a new answer (its own
	// serverTime), so the guard's count starts afresh every time: with
	// only failures between them, the same answer twice would add up.
	oversizeFor = ttl / 2
	// oversizeBump moves the serverTime of oversized answers away from the
	// valid versions'; the n-th injection adds n milliseconds.
	oversizeBump = int64(time.Hour / time.Millisecond)
	padBytes     = 2 << 20 // the absurd symbol's extra field: the guard's limit is 64 KiB
	floodFor     = time.Second

	// strayBackoff is the TTL l2 gives a backoff marker found without one.
	strayBackoff = 5 * time.Minute
	// lockMeetWithin is how long a TTL-less lock is watched for a sidecar to
	// meet it: one does at its next refresh tick, unless all are in a
	// backoff of their own (then nothing is asserted).
	lockMeetWithin = 10 * time.Second
	// resumeWithin is how soon after a sidecar met a TTL-less lock holding a
	// token a sidecar takes the lock: the lease it gave it, a few times over,
	// and a refresh tick.
	resumeWithin = 4*lockLease + refreshInterval
	// backoffShown is how long a backoff marker stands once it got its TTL
	// before the script deletes it, as an operator would (POST
	// /admin/refresh/{market}?force=true): the 5 minutes it was given would
	// stop refreshing that market for the rest of the run.
	backoffShown = time.Second
	lockPoll     = 20 * time.Millisecond
)

// ---------------------------------------------------------------------------
// The poisoned version and the oversized answers, built once per market.

// wrongData is a check's verdict on an answer made from the poisoned,
// future-dated version: what no client may ever get.
type wrongData struct{ what string }

func (e *wrongData) Error() string { return "WRONG DATA SERVED: " + e.what }

func (mk *market) smallest() *version {
	s := mk.versions[0]
	for _, v := range mk.versions[1:] {
		if len(v.body) < len(s.body) {
			s = v
		}
	}
	return s
}

// makePoison builds mk.poison from the smallest version: one symbol common
// to every version (BTCUSDT when it is) turned from TRADING to HALT, padded
// to the same length. It is a valid exchangeInfo, and none of the versions.
func (mk *market) makePoison(t *testing.T) {
	base := mk.smallest()
	syms := mk.symbols
	if slices.Contains(syms, "BTCUSDT") {
		syms = append([]string{"BTCUSDT"}, syms...)
	}
	for _, sym := range syms {
		s, _ := base.snap.Lookup(sym)
		i := bytes.Index(s.Raw, []byte(`"status":"TRADING"`))
		at := bytes.Index(base.body, s.Raw)
		if i < 0 || at < 0 {
			continue
		}
		body := bytes.Clone(base.body)
		copy(body[at+i:], `"status":"HALT"   `)
		snap, err := exchangeinfo.Parse(mk.m, body, time.Now())
		if err != nil {
			t.Fatalf("%s: the poisoned version does not parse: %v", mk.m, err)
		}
		mk.poison = &version{name: base.name + " with " + sym + " HALT", body: body, snap: snap}
		break
	}
	if mk.poison == nil || mk.byBody(mk.poison.body) != nil {
		t.Fatalf("%s: no symbol to poison", mk.m)
	}
	mk.pQueries, mk.pRules, mk.pOrders = map[string][]byte{}, map[string][]byte{}, map[string][]byte{}
	for _, sym := range mk.symbols {
		s, _ := mk.poison.snap.Lookup(sym)
		if r, err := rules.For(mk.m, s); err == nil {
			mk.pRules[sym], _ = json.Marshal(r)
		}
	}
}

// isPoison reports whether b is the poisoned body (trailing whitespace
// aside: an envelope may keep or drop it).
func (mk *market) isPoison(b []byte) bool {
	return bytes.Equal(bytes.TrimRight(b, " \t\r\n"), bytes.TrimRight(mk.poison.body, " \t\r\n"))
}

// makeOversized builds the answers no sidecar may take: mk.grown, the
// smallest version repeated (fixtures.Grow) to more than 4 times the
// largest version's bytes, and mk.absurd, the smallest version with one
// symbol carrying a field of 2 MiB. Both are valid exchangeInfo.
func (mk *market) makeOversized(t *testing.T) {
	largest := 0
	for _, v := range mk.versions {
		largest = max(largest, len(v.body))
	}
	base := mk.smallest()
	mk.grown = fixtures.Grow(t, base.body, 4*largest+largest/8)
	open := []byte(`"symbols":[{`)
	i := bytes.Index(base.body, open)
	if i < 0 {
		t.Fatalf("%s: %s has no %s", mk.m, base.name, open)
	}
	i += len(open)
	pad := `"chaosPadding":"` + strings.Repeat("A", padBytes) + `",`
	mk.absurd = append(append(append([]byte(nil), base.body[:i]...), pad...), base.body[i:]...)
	for _, b := range [][]byte{mk.grown, mk.absurd} {
		if _, err := exchangeinfo.Parse(mk.m, b, time.Now()); err != nil {
			t.Fatalf("%s: an oversized answer (%d bytes) does not parse: %v", mk.m, len(b), err)
		}
	}
}

// poisonEnvelope is an envelope as l2 lays it out, around the poisoned
// version, dated at. A member no sidecar writes (injected_by) tells the
// script's value from a sidecar writing the poison back.
func (mk *market) poisonEnvelope(at time.Time) []byte {
	h := fmt.Sprintf(`{"market":%q,"fetched_at":%q,"server_time":%d,"etag":%q,"injected_by":"chaos","exchange_info":`,
		mk.m, at.UTC().Format(time.RFC3339Nano), mk.poison.snap.ServerTime().UnixMilli(), mk.poison.snap.ETag())
	return append(append([]byte(h), mk.poison.body...), '}')
}

// injected remembers what the script wrote into Redis itself, so that the
// checker tells it from what a sidecar wrote.
type injected struct {
	mu     sync.Mutex
	values map[[32]byte]bool // sha256 of the raw values
	dates  map[int64]bool    // fetched_at (UnixMilli) of the future-dated envelopes
}

func (in *injected) add(value []byte, at time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.values == nil {
		in.values, in.dates = map[[32]byte]bool{}, map[int64]bool{}
	}
	in.values[sha256.Sum256(value)] = true
	in.dates[at.UnixMilli()] = true
}

// has reports whether the script wrote the raw value b.
func (in *injected) has(b []byte) bool {
	sum := sha256.Sum256(b)
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.values[sum]
}

// dated reports whether the script wrote an envelope dated at.
func (in *injected) dated(at time.Time) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.dates[at.UnixMilli()]
}

// ---------------------------------------------------------------------------
// The faults.

// futureDated writes into Redis, for one market, the poisoned version in
// an envelope dated hours ahead: always as current, sometimes as last_good
// too, sometimes in the meta hash (once in three with an etag of 2 KiB,
// which Meta refuses as too large), and sometimes announced.
func (w *world) futureDated() {
	mk := w.markets[w.rnd.IntN(len(w.markets))]
	ahead := time.Hour + time.Duration(w.rnd.Int64N(int64(5*time.Hour)))
	lastGood, meta, bigTag, announce := w.rnd.IntN(2) == 0, w.rnd.IntN(2) == 0, w.rnd.IntN(3) == 0, w.rnd.IntN(2) == 0
	if !w.redisUp.Load() {
		w.faults.add("redis future-dated skipped (redis down)")
		return
	}
	at := time.Now().Add(ahead).UTC().Truncate(time.Millisecond)
	value := mk.poisonEnvelope(at)
	w.inj.add(value, at) // before it is there: the checker must know it
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	prefix, m := "symcache:", string(mk.m)
	wrote := []string{"current"}
	err := w.ctl.Set(ctx, prefix+l2.CurrentKey(m), value, time.Hour).Err()
	if err == nil && lastGood {
		w.lastGoodSince[mk.idx].Store(0)
		err = w.ctl.Set(ctx, prefix+l2.LastGoodKey(m), value, 0).Err()
		w.lastGoodSince[mk.idx].Store(0)
		wrote = append(wrote, "last_good")
	}
	if err == nil && meta {
		etag := mk.poison.snap.ETag()
		if bigTag {
			etag = `"` + strings.Repeat("f", 2<<10) + `"`
		}
		// The meta key names the newest write: dated ahead it names nothing,
		// and the next write is compared with nothing (as after Redis
		// restarted empty). So is it in the checker.
		w.metaGen[mk.idx].Add(1)
		_, err = w.ctl.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, prefix+l2.MetaKey(m))
			p.HSet(ctx, prefix+l2.MetaKey(m), "market", m, "fetched_at", at.Format(time.RFC3339Nano),
				"fetched_at_ms", at.UnixMilli(), "etag", etag)
			return nil
		})
		if bigTag {
			wrote = append(wrote, "meta (etag of 2 KiB)")
		} else {
			wrote = append(wrote, "meta")
		}
	}
	if err == nil && announce {
		msg, _ := json.Marshal(l2.Meta{Market: m, FetchedAt: at, ETag: mk.poison.snap.ETag()})
		err = w.ctl.Publish(ctx, prefix+l2.InvalidateChannel, msg).Err()
		wrote = append(wrote, "announcement")
	}
	what := strings.Join(wrote, "+")
	if err != nil {
		w.faults.add("redis future-dated failed")
		w.events.add("future-dated %s: %s dated +%v: %v", mk.m, what, ahead.Round(time.Second), err)
		return
	}
	w.faults.add("redis future-dated")
	w.hostile.add("future-dated " + what)
	w.events.add("future-dated %s: %s dated +%v (%s)", mk.m, what, ahead.Round(time.Second), mk.poison.name)
}

// oversized makes the fake Binance answer, for one market and oversizeFor,
// a valid answer no sidecar may take: far larger than every version (sent
// plain: gzipping 15 MB per fault would outlast the attempt timeout under
// -race), or with an absurd symbol. Then the answer before comes back.
//
// The guard would accept it after three times over a TTL: a sidecar that
// was refused it backs off at least 0.5 s, then 1 s (and leaves the lock
// as a backoff marker for the others), so its third request comes 1.5 s
// after its first at the earliest, after the fault has ended.
//
// A grown answer is held back only next to a last good snapshot: a sidecar
// holding none takes it (there is nothing to compare with). So it is sent
// only while every sidecar holds one; the script is sequential, so no
// sidecar restarts meanwhile. An absurd symbol is held back whatever.
func (w *world) oversized() {
	mk := w.markets[w.rnd.IntN(len(w.markets))]
	variant := "absurd-symbol"
	if w.rnd.IntN(2) == 0 {
		variant = "grown"
		for i := range w.slots {
			if !w.slots[i].Load().isWarm(mk.idx, mk.m) {
				variant = "absurd-symbol" // a cold sidecar would take a grown answer
			}
		}
	}
	w.oversizeN++
	n := int64(w.oversizeN)
	r := fetchtest.Response{Body: bump(w.t, mk.absurd, oversizeBump+n), Gzip: true}
	if variant == "grown" {
		r = fetchtest.Response{Body: bump(w.t, mk.grown, oversizeBump+n)}
	}
	inc := w.slots[w.rnd.IntN(sidecars)].Load()
	prev := w.upNow[mk.idx]
	w.up.h.Set(mk.m.Path(), r)
	from := time.Now()
	w.faults.add("upstream " + variant)
	w.events.add("upstream %s %s (%d bytes) for %v; %s refreshes", mk.m, variant, len(r.Body), oversizeFor, inc.name)
	// A refresh asked for meanwhile, as an operator's POST
	// /admin/refresh/{market} would: so that most of these faults meet a
	// fetch (refreshes under -race are often a second apart). It gives up at
	// the end of the fault; the fetch goes on, bounded, in the Cache.
	rctx, cancel := context.WithTimeout(context.Background(), oversizeFor)
	_, err := inc.cache.Refresh(rctx, mk.m)
	cancel()
	w.hostile.add(fmt.Sprintf("upstream %s: the refresh asked for: %s", variant, refreshOutcome(err)))
	time.Sleep(time.Until(from.Add(oversizeFor)))
	w.up.h.Set(mk.m.Path(), prev.r)
	w.oversizes = append(w.oversizes, span{path: mk.m.Path(), what: variant, from: from, to: time.Now()})
	w.events.add("upstream %s back to %s", mk.m, prev.mode)
}

// span is when the fake Binance gave one market's path an answer.
type span struct {
	path, what string
	from, to   time.Time
}

// oversizedAsked counts, per variant, the upstream requests that got an
// oversized answer.
func (w *world) oversizedAsked() string {
	var c counter
	arr := w.up.snapshot()
	for _, o := range w.oversizes {
		c.addN(o.what, 0)
		for _, a := range arr {
			if a.path == o.path && a.at.After(o.from) && a.at.Before(o.to) {
				c.add(o.what)
			}
		}
	}
	return c.String()
}

// flood publishes announcements on the invalidate channel for floodFor:
// dated hours ahead, forged (dated now, naming nothing stored), of no
// market served, not JSON, and larger than 1 KiB.
func (w *world) flood() {
	r := rand.New(rand.NewPCG(w.rnd.Uint64(), 0)) // however many it sends, the script's draws stay the same
	if !w.redisUp.Load() {
		w.faults.add("flood skipped (redis down)")
		return
	}
	kinds := []string{"dated ahead", "forged", "unknown market", "not JSON", "over 1 KiB"}
	var sent counter
	var err error
	end := time.Now().Add(floodFor)
	for err == nil && time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = w.ctl.Pipelined(ctx, func(p redis.Pipeliner) error {
			for range 25 {
				m, now := string(w.markets[r.IntN(len(w.markets))].m), time.Now().UTC()
				k := kinds[r.IntN(len(kinds))]
				var msg string
				switch k {
				case "dated ahead":
					msg = fmt.Sprintf(`{"market":%q,"fetched_at":%q,"etag":"\"forged\""}`, m, now.Add(time.Duration(1+r.IntN(48))*time.Hour).Format(time.RFC3339Nano))
				case "forged":
					msg = fmt.Sprintf(`{"market":%q,"fetched_at":%q,"etag":"\"forged-%d\""}`, m, now.Format(time.RFC3339Nano), r.Uint32())
				case "unknown market":
					msg = fmt.Sprintf(`{"market":"coinm","fetched_at":%q,"etag":"\"x\""}`, now.Format(time.RFC3339Nano))
				case "not JSON":
					msg = "<html>not an announcement"
				case "over 1 KiB":
					msg = fmt.Sprintf(`{"market":%q,"fetched_at":%q,"etag":"%s"}`, m, now.Format(time.RFC3339Nano), strings.Repeat("x", 2<<10))
				}
				p.Publish(ctx, "symcache:"+l2.InvalidateChannel, msg)
				sent.add(k)
			}
			return nil
		})
		cancel()
		time.Sleep(10 * time.Millisecond)
	}
	w.faults.add("redis flood")
	w.hostile.add("flood announcements sent: " + sent.String())
	if err != nil {
		w.events.add("flood of announcements: %s; stopped: %v", sent.String(), err)
		return
	}
	w.events.add("flood of announcements for %v: %s", floodFor, sent.String())
}

// readLockScript returns a lock's value (nil if absent) and its PTTL (-1:
// none; -2: no key), at once.
var readLockScript = redis.NewScript(`return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}`)

// persistScript removes the TTL of the lock, if there is one, and returns
// its value.
var persistScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and redis.call('PERSIST', KEYS[1]) == 1 then
	return v
end
return false
`)

// clearScript deletes the lock while it holds ARGV[1], as an operator's
// forced refresh deletes a backoff marker.
var clearScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// lockFault is a refresh lock the script left without a TTL.
type lockFault struct {
	mk      *market
	kind    string // "token", "backoff" or "persist"
	value   string
	backoff bool      // value is a backoff marker
	at      time.Time // from when the key held value without a TTL
	lives   int64     // Redis's life then
}

// ttlLessLock leaves one market's refresh lock without a TTL: a random
// token, "backoff:chaos", or whatever lock is there (waiting up to 1.5 s
// for one), PERSISTed. watchLock then follows it.
func (w *world) ttlLessLock(ctx context.Context, wg *sync.WaitGroup) {
	mk := w.markets[w.rnd.IntN(len(w.markets))]
	kind := []string{"token", "token", "backoff", "persist", "persist"}[w.rnd.IntN(5)]
	var tok [16]byte
	for i := range tok {
		tok[i] = byte(w.rnd.Uint32())
	}
	if w.lockBusy[mk.idx].Load() {
		mk = w.markets[1-mk.idx] // one fault per lock at a time
	}
	if !w.redisUp.Load() || w.lockBusy[mk.idx].Load() {
		w.faults.add("lock skipped (redis down or both locks watched)")
		return
	}
	key := "symcache:" + l2.LockKey(string(mk.m))
	f := lockFault{mk: mk, kind: kind, lives: w.redisLives.Load()}
	var err error
	switch kind {
	case "token":
		f.value = hex.EncodeToString(tok[:])
	case "backoff":
		f.value = "backoff:chaos"
	}
	if f.value != "" {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		err = w.ctl.Set(rctx, key, f.value, 0).Err()
		cancel()
	} else {
		for end := time.Now().Add(1500 * time.Millisecond); f.value == "" && err == nil && time.Now().Before(end); {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			v, rerr := persistScript.Run(rctx, w.ctl, []string{key}).Text()
			cancel()
			switch {
			case errors.Is(rerr, redis.Nil):
				time.Sleep(10 * time.Millisecond)
			case rerr != nil:
				err = rerr
			default:
				f.value = v
			}
		}
		if err == nil && f.value == "" {
			w.faults.add("lock persist: no lock to persist")
			w.events.add("lock %s: no lock to PERSIST within 1.5s", mk.m)
			return
		}
	}
	if err != nil {
		w.faults.add("lock failed")
		w.events.add("lock %s %s: %v", mk.m, kind, err)
		return
	}
	f.at = time.Now()
	f.backoff = strings.HasPrefix(f.value, "backoff:")
	w.faults.add("lock " + kind)
	w.events.add("lock %s: %s, no TTL: %q", mk.m, kind, short(f.value))
	w.lockBusy[mk.idx].Store(true)
	wg.Go(func() {
		defer w.lockBusy[mk.idx].Store(false)
		w.watchLock(ctx, f)
	})
}

// refreshOutcome names what a Refresh returned, for the counts.
func refreshOutcome(err error) string {
	var be *fetch.BackoffError
	var ge *symcache.GrowthError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ge):
		return "held back"
	case errors.As(err, &be):
		return "in backoff"
	case errors.Is(err, context.DeadlineExceeded):
		return "still fetching at the end"
	}
	return "failed"
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// watchLock follows a lock left without a TTL, and asserts:
//
//   - once a sidecar's Lock met it, it has a TTL: the lease for a token, 5
//     minutes at most for a backoff marker;
//   - holding a token, a sidecar takes the lock within resumeWithin of the
//     first that met it (plus a fetch's length for a PERSISTed token, which
//     may be a live holder's): refreshing resumes. (Unless no sidecar found
//     the lock held a lease after it was gone, or a Lock call failed: then
//     nothing is asserted.)
//
// A backoff marker is deleted once it stood backoffShown with its TTL (or
// no sidecar met it within lockMeetWithin), as an operator would; how soon
// refreshing resumes then is recorded, not asserted. Redis stopping ends the
// watch.
func (w *world) watchLock(ctx context.Context, f lockFault) {
	m := string(f.mk.m)
	key := "symcache:" + l2.LockKey(m)
	name := fmt.Sprintf("lock %s", f.kind)
	if f.kind == "persist" && f.backoff {
		name += " (a backoff marker)"
	}
	held := func(c lockCall) bool { return c.held }
	took := func(c lockCall) bool { return c.took }
	var met lockCall
	var metOK bool
	var ttlAt, goneAt time.Time
	tick := time.NewTicker(lockPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			w.hostile.add(name + ": run ended while watched")
			return
		case <-tick.C:
		}
		if w.redisLives.Load() != f.lives || !w.redisUp.Load() {
			w.hostile.add(name + ": redis stopped while watched")
			return
		}
		readAt := time.Now()
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		res, err := readLockScript.Run(rctx, w.ctl, []string{key}).Slice()
		cancel()
		if err != nil || len(res) != 2 {
			continue
		}
		val, _ := res[0].(string)
		pttl, _ := res[1].(int64)
		if !metOK {
			if met, metOK = w.locks.first(m, f.at, readAt, held); metOK {
				w.events.addAt(met.end, "(lock) %s met the TTL-less %s lock", met.from, f.mk.m)
			}
		}
		present := val == f.value
		switch {
		case present && pttl < 0 && metOK:
			w.hostile.add(name + ": no TTL after a sidecar met it")
			w.fail("refresh lock %s = %q still has no TTL %v after %s's Lock met it", key, short(f.value), readAt.Sub(met.end).Round(time.Millisecond), met.from)
			return
		case present && pttl >= 0 && ttlAt.IsZero():
			ttlAt = readAt
			limit := lockLease
			if f.backoff {
				limit = strayBackoff
			}
			if got := time.Duration(pttl) * time.Millisecond; got > limit {
				w.fail("refresh lock %s = %q was given a TTL of %v, want at most %v", key, short(f.value), got, limit)
			}
			w.events.add("(lock) the %s lock has a TTL again: %v", f.mk.m, time.Duration(pttl)*time.Millisecond)
		case !present && goneAt.IsZero():
			goneAt = readAt
		}

		if f.backoff {
			if present && ((!ttlAt.IsZero() && readAt.Sub(ttlAt) >= backoffShown) || readAt.Sub(f.at) >= lockMeetWithin) {
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				n, _ := clearScript.Run(rctx, w.ctl, []string{key}, f.value).Int()
				cancel()
				if n == 1 {
					present, goneAt = false, time.Now()
					w.hostile.add(name + ": deleted by the script, as an operator would")
					w.events.add("(lock) the script deleted the %s backoff marker %q, as an operator would", f.mk.m, short(f.value))
				}
			}
			if !present && !goneAt.IsZero() {
				if c, ok := w.locks.first(m, goneAt, time.Now(), took); ok {
					w.hostile.add(name + ": refreshing resumed after the marker")
					w.resume.observe(c.end.Sub(goneAt))
					return
				}
				if time.Since(goneAt) > lockMeetWithin {
					w.hostile.add(name + ": no lock taken after the marker")
					return
				}
			}
			continue
		}
		if !metOK {
			switch {
			case !present:
				w.hostile.add(name + ": gone before a sidecar met it")
				return
			case readAt.Sub(f.at) > lockMeetWithin:
				w.hostile.add(name + ": no sidecar met it")
				return
			}
			continue
		}
		if c, ok := w.locks.first(m, f.at, readAt, took); ok {
			w.hostile.add(name + ": met, then refreshing resumed")
			w.resume.observe(c.end.Sub(met.end))
			w.events.addAt(c.end, "(lock) %s took the %s lock %v after %s met the TTL-less one",
				c.from, f.mk.m, c.end.Sub(met.end).Round(time.Millisecond), met.from)
			return
		}
		stuckAfter := resumeWithin
		if f.kind == "persist" {
			// A token PERSISTed may be a live holder's: it renews the lease
			// while it fetches, for as long as its fetch may take.
			stuckAfter += fetchTimeout + lockLease
		}
		if readAt.Sub(met.end) > stuckAfter {
			// Held, though the TTL-less lock was gone for a lease: by a lock
			// nobody took? Unless a Lock call failed meanwhile: Redis may
			// have run it (a lock whose taker never learnt it, which
			// expires with its lease).
			asked := false
			if !goneAt.IsZero() {
				_, asked = w.locks.first(m, goneAt.Add(lockLease), readAt, held)
			}
			_, failed := w.locks.first(m, f.at, readAt, func(c lockCall) bool { return c.failed })
			switch {
			case present:
				w.hostile.add(name + ": stuck")
				w.fail("refresh lock %s still holds %q %v after %s met it (lease %v): refreshing stopped",
					key, short(f.value), readAt.Sub(met.end).Round(time.Millisecond), met.from, lockLease)
			case asked && failed:
				w.hostile.add(name + ": met, then no lock taken while Lock calls failed (not asserted)")
			case asked:
				w.hostile.add(name + ": stuck")
				w.fail("no sidecar took refresh lock %s within %v of %s meeting the TTL-less one, though they found it held a lease after it was gone at +%v",
					key, stuckAfter, met.from, goneAt.Sub(w.start).Round(time.Millisecond))
			default:
				w.hostile.add(name + ": met, then no sidecar asked")
			}
			return
		}
	}
}

// ---------------------------------------------------------------------------
// The sidecars' Lock calls.

// lockCall is one Lock call of a sidecar.
type lockCall struct {
	from       string
	market     string
	start, end time.Time
	took       bool // it got a token
	held       bool // Redis answered: another holds the lock
	failed     bool // Redis did not answer in time (it may have run the call)
}

type lockLog struct {
	mu    sync.Mutex
	calls []lockCall
}

func (l *lockLog) add(c lockCall) {
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
}

// first returns the call on market that ended first among those that
// started after from, ended before to, and match.
func (l *lockLog) first(market string, from, to time.Time, match func(lockCall) bool) (lockCall, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var best lockCall
	found := false
	for _, c := range l.calls {
		if c.market == market && c.start.After(from) && c.end.Before(to) && match(c) && (!found || c.end.Before(best.end)) {
			best, found = c, true
		}
	}
	return best, found
}

// coordProbe is a sidecar's Coordinator: its l2.Store, with every Lock call
// recorded, the ground truth for "a sidecar met the lock" and "took it".
type coordProbe struct {
	*l2.Store
	name string
	log  *lockLog
}

func (c coordProbe) Lock(ctx context.Context, market string, lease time.Duration) (string, l2.Held, error) {
	start := time.Now()
	token, held, err := c.Store.Lock(ctx, market, lease)
	c.log.add(lockCall{from: c.name, market: market, start: start, end: time.Now(),
		took: err == nil && token != "", held: err == nil && token == "", failed: err != nil})
	return token, held, err
}

// ---------------------------------------------------------------------------
// Checks shared by the clients.

// checkDated fails an answer whose Last-Modified is dated after now (and
// the skew allowed): it was made from a value dated ahead.
func checkDated(h http.Header) error {
	lm := h.Get("Last-Modified")
	if lm == "" {
		return nil
	}
	at, err := http.ParseTime(lm)
	if err != nil {
		return fmt.Errorf("Last-Modified %q: %v", lm, err)
	}
	if at.After(time.Now().Add(l2.MaxSkew)) {
		return &wrongData{fmt.Sprintf("Last-Modified %s is dated ahead", lm)}
	}
	return nil
}

// durations keeps the largest of some durations, and how many.
type durations struct {
	mu      sync.Mutex
	n       int
	longest time.Duration
}

func (d *durations) observe(v time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	d.longest = max(d.longest, v)
}

func (d *durations) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("%d, longest %v", d.n, d.longest.Round(time.Millisecond))
}
