package l2

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file is what lets many processes share one Redis without each asking
// Binance: a refresh lock per market, a small meta key naming the newest
// snapshot stored, and a channel on which every Put announces it.

// MetaKey is the key, relative to the prefix, of a hash naming market's
// newest stored snapshot (market, fetched_at, fetched_at_ms, etag), written
// with every Put: a process learns whether its snapshot is the newest
// without reading megabytes.
func MetaKey(market string) string { return "{" + market + "}:meta" }

// LockKey is the key, relative to the prefix, of market's refresh lock.
func LockKey(market string) string { return "{" + market + "}:lock" }

// InvalidateChannel is the channel, relative to the prefix, on which Put
// announces each new snapshot (a JSON [Meta]).
const InvalidateChannel = "invalidate"

// Meta names a stored snapshot.
type Meta struct {
	Market    string    `json:"market"`
	FetchedAt time.Time `json:"fetched_at"`
	ETag      string    `json:"etag"`
}

// ErrSuperseded is what Put returns when Redis already holds a snapshot of
// the market fetched later than the one given: nothing was written, so a
// slow writer never sends last_good back in time.
var ErrSuperseded = errors.New("l2: a newer snapshot is stored")

// metaLua is what putScript and seedScript share: later(meta, ms) reports
// whether the meta hash names a snapshot fetched after ms (milliseconds). A
// meta that is not a hash, or names a time more than MaxSkew past Redis' own
// clock, is corrupt and names none (the first is deleted), so it cannot block
// writes. record(meta, market, at, ms, etag) replaces it.
var metaLua = `
local maxSkewMs = ` + strconv.FormatInt(MaxSkew.Milliseconds(), 10) + `
local function later(meta, ms)
	local stored = redis.pcall('HGET', meta, 'fetched_at_ms')
	if type(stored) == 'table' and stored.err then
		redis.call('DEL', meta)
		return false
	end
	stored = tonumber(stored)
	local now = redis.call('TIME')
	local nowMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
	return stored ~= nil and stored > tonumber(ms) and stored <= nowMs + maxSkewMs
end
local function record(meta, market, at, ms, etag)
	redis.call('DEL', meta)
	redis.call('HSET', meta, 'market', market, 'fetched_at', at, 'fetched_at_ms', ms, 'etag', etag)
end
`

// putScript writes current, last_good and meta unless meta names a snapshot
// fetched later (see metaLua). KEYS: current, last_good, meta. ARGV: value,
// ttl in ms, fetched_at in ms, fetched_at as RFC 3339, etag, market.
var putScript = redis.NewScript(metaLua + `
if later(KEYS[3], ARGV[3]) then
	return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
record(KEYS[3], ARGV[6], ARGV[4], ARGV[3], ARGV[5])
return 1
`)

// seedScript writes last_good KEYS[1] = ARGV[1] only when it is absent, and
// then records it in meta KEYS[2] as putScript does, unless meta names a
// later snapshot. It returns 1 when it wrote. ARGV: value, fetched_at in ms,
// fetched_at as RFC 3339, etag, market.
var seedScript = redis.NewScript(metaLua + `
if redis.call('EXISTS', KEYS[1]) == 1 then
	return 0
end
redis.call('SET', KEYS[1], ARGV[1])
if not later(KEYS[2], ARGV[2]) then
	record(KEYS[2], ARGV[5], ARGV[3], ARGV[2], ARGV[4])
end
return 1
`)

// unlockScript deletes the lock only when it still holds the caller's token.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// holdScript turns the caller's lock into a backoff marker ARGV[3] that
// expires after ARGV[2] ms, when it still holds the caller's token ARGV[1].
var holdScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
	return 1
end
return 0
`)

// Held describes a refresh lock that another process holds.
type Held struct {
	// Backoff is set when the holder's fetch failed and the lock now stands
	// for the deployment's backoff (see [Store.Hold]); Reason is what the
	// holder gave.
	Backoff bool
	Reason  string
	// Until is when the lock expires at the latest.
	Until time.Time
}

// lockScript takes the lock KEYS[1] with token ARGV[1] for ARGV[2] ms (SET
// NX PX) and returns {1}; or, when the lock is held, {0, value, pttl,
// repaired}, where value is the lock's first 256 bytes ("" if it is not a
// string). A lock without a TTL (a manual SET, a PERSIST) would stop every
// refresh for good: it is given one, ARGV[2] ms, or ARGV[3] ms when it is a
// backoff marker (its value starts with ARGV[4]), and repaired is 1.
var lockScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return {1}
end
local v = redis.pcall('GETRANGE', KEYS[1], 0, 255)
if type(v) ~= 'string' then
	v = ''
end
local ttl = redis.call('PTTL', KEYS[1])
local repaired = 0
if ttl == -1 then
	ttl = tonumber(ARGV[2])
	if string.sub(v, 1, #ARGV[4]) == ARGV[4] then
		ttl = tonumber(ARGV[3])
	end
	redis.call('PEXPIRE', KEYS[1], ttl)
	repaired = 1
end
return {0, v, ttl, repaired}
`)

// strayBackoff is the TTL Lock gives a backoff marker it finds without
// one (at most MaxHold): longer than the usual backoff (a minute at most,
// or a 429's Retry-After), far shorter than a ban. Should Binance still be
// banning then, the next fetch's 418 sets a marker of the right length.
const strayBackoff = 5 * time.Minute

// Lock takes market's refresh lock for lease (SET NX PX with a random
// token). It returns the token when it took the lock, or what holds it.
// Only the holder should ask the upstream; the lease bounds how long a holder
// that died keeps the others waiting. A lock found without a TTL, which would
// never expire, is given one in the same script: lease, or for a backoff
// marker 5 minutes (at most MaxHold); that is logged at Warn and counted as
// "lock_no_ttl", and the lock is reported held as usual. A Redis error is
// returned as is: the caller then goes on without the lock.
func (s *Store) Lock(ctx context.Context, market string, lease time.Duration) (token string, held Held, err error) {
	var b [16]byte
	rand.Read(b[:])
	token = s.holder + "/" + hex.EncodeToString(b[:])
	key := s.prefix + LockKey(market)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	stray := min(strayBackoff, s.maxHold)
	res, err := lockScript.Run(ctx, s.rdb, []string{key}, token, max(lease.Milliseconds(), 1), max(stray.Milliseconds(), 1), backoffMark).Slice()
	if err == nil && len(res) != 1 && len(res) != 4 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		s.fail("lock")
		return "", Held{}, fmt.Errorf("l2 lock %q: %w", market, err)
	}
	if len(res) == 1 {
		return token, Held{}, nil
	}
	value, _ := res[1].(string)
	pttl, _ := res[2].(int64)
	ttl := time.Duration(max(pttl, 0)) * time.Millisecond
	if repaired, _ := res[3].(int64); repaired == 1 {
		s.fail("lock_no_ttl")
		s.log.Warn("l2 refresh lock had no TTL, which would stop refreshing for good; gave it one",
			"market", market, "key", key, "value", truncate(value, 200), "ttl", ttl.String())
	}
	reason, backoff := strings.CutPrefix(value, backoffMark)
	return "", Held{Backoff: backoff, Reason: reason, Until: time.Now().Add(ttl)}, nil
}

// holderName returns name fit for a lock token: printable, without "/",
// at most 64 bytes.
func holderName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '/' {
			return '_'
		}
		return r
	}, name)
	return strings.ToValidUTF8(name[:min(len(name), 64)], "")
}

// lockStateScript returns the lock KEYS[1]'s first 256 bytes ("" when it
// is absent or not a string) and its PTTL.
var lockStateScript = redis.NewScript(`
local v = redis.pcall('GETRANGE', KEYS[1], 0, 255)
if type(v) ~= 'string' then
	v = ''
end
return {v, redis.call('PTTL', KEYS[1])}
`)

// LockHolder says who holds market's refresh lock now, within Timeout:
// the holder's name (its Config.Holder) while a process fetches, or the
// reason of a backoff marker; both empty when the lock is free. until is
// when it expires at the latest. For the status page: it does not take
// the lock.
func (s *Store) LockHolder(ctx context.Context, market string) (holder, backoff string, until time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := lockStateScript.Run(ctx, s.rdb, []string{s.prefix + LockKey(market)}).Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		s.fail("lock")
		return "", "", time.Time{}, fmt.Errorf("l2 lock %q: %w", market, err)
	}
	value, _ := res[0].(string)
	pttl, _ := res[1].(int64)
	if value == "" || pttl == -2 {
		return "", "", time.Time{}, nil
	}
	if pttl > 0 {
		until = time.Now().Add(time.Duration(pttl) * time.Millisecond)
	}
	if reason, ok := strings.CutPrefix(value, backoffMark); ok {
		return "", cmp.Or(reason, "backoff"), until, nil
	}
	holder, _, _ = strings.Cut(value, "/") // "<holder>/<random>"; a token of an older version is all random
	return truncate(holder, 64), "", until, nil
}

// ErrLockLost is what Unlock returns when the lock no longer held the
// caller's token: its lease ran out (the fetch took longer), and another
// process may have taken the lock since.
var ErrLockLost = errors.New("l2: refresh lock lost: its lease ran out")

// Unlock releases market's lock if it still holds token (a Lua compare and
// delete): a holder whose lease ran out never releases someone else's lock,
// and gets ErrLockLost.
func (s *Store) Unlock(ctx context.Context, market, token string) error {
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	n, err := unlockScript.Run(ctx, s.rdb, []string{s.prefix + LockKey(market)}, token).Int()
	if err != nil {
		s.fail("unlock")
		return fmt.Errorf("l2 unlock %q: %w", market, err)
	}
	if n == 0 {
		return fmt.Errorf("l2 unlock %q: %w", market, ErrLockLost)
	}
	return nil
}

// extendScript renews the lock's lease to ARGV[2] ms when it still holds
// the caller's token ARGV[1].
var extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// Extend renews market's lock for lease from now, if it still holds token:
// a holder whose fetch is slow keeps the lock while it works. It returns
// ErrLockLost when the lock is no longer the caller's.
func (s *Store) Extend(ctx context.Context, market, token string, lease time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	n, err := extendScript.Run(ctx, s.rdb, []string{s.prefix + LockKey(market)}, token, max(lease.Milliseconds(), 1)).Int()
	if err != nil {
		s.fail("extend")
		return fmt.Errorf("l2 extend lock %q: %w", market, err)
	}
	if n == 0 {
		return fmt.Errorf("l2 extend lock %q: %w", market, ErrLockLost)
	}
	return nil
}

// backoffMark starts the value of a lock that stands for a backoff.
const backoffMark = "backoff:"

// Hold keeps market's lock, if it still holds token, for d from now as a
// backoff marker: after a failed fetch (Binance's 429 with Retry-After, say)
// no process of the deployment asks again before d has passed. Other
// processes see it, and reason, in Lock's Held. A d longer than MaxHold is
// cut to MaxHold, with a Warn.
func (s *Store) Hold(ctx context.Context, market, token string, d time.Duration, reason string) error {
	if d > s.maxHold {
		s.log.Warn("l2 backoff longer than MaxHold; holding for MaxHold", "market", market, "key", s.prefix+LockKey(market),
			"hold", d.String(), "max_hold", s.maxHold.String())
		d = s.maxHold
	}
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	ms := max(d.Milliseconds(), 1)
	if err := holdScript.Run(ctx, s.rdb, []string{s.prefix + LockKey(market)}, token, ms, backoffMark+truncate(reason, 200)).Err(); err != nil {
		s.fail("hold")
		return fmt.Errorf("l2 hold %q: %w", market, err)
	}
	return nil
}

// clearBackoffScript deletes the lock KEYS[1] when it is a backoff marker
// (its value starts with ARGV[1]) and returns 1; a lock a fetch holds, a
// value of another type, or none, it leaves alone and returns 0.
var clearBackoffScript = redis.NewScript(`
local v = redis.pcall('GETRANGE', KEYS[1], 0, #ARGV[1] - 1)
if v == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// ClearBackoff ends the deployment's backoff for market, for an operator's
// forced refresh: it deletes market's lock only if it is a backoff marker
// (see [Store.Hold]), never the lock of a fetch in progress, and reports
// whether it deleted one. It takes at most WriteTimeout; a Redis error is
// returned, not logged.
func (s *Store) ClearBackoff(ctx context.Context, market string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	n, err := clearBackoffScript.Run(ctx, s.rdb, []string{s.prefix + LockKey(market)}, backoffMark).Int()
	if err != nil {
		s.fail("clear_backoff")
		return false, fmt.Errorf("l2 clear backoff %q: %w", market, err)
	}
	return n == 1, nil
}

// maxMetaBytes bounds each field of a meta key read by Meta, and a whole
// announcement read by Watch: a market name, a time and an ETag are far
// smaller.
const maxMetaBytes = 1 << 10

// metaFields are the fields of a meta key that Meta reads.
var metaFields = []any{"market", "fetched_at_ms", "etag"}

// metaScript returns the fields ARGV[2:] of the hash KEYS[1] (HMGET), or,
// when one is longer than ARGV[1] bytes, its length (an integer), so that
// an oversized field is never sent.
var metaScript = redis.NewScript(`
for i = 2, #ARGV do
	local n = redis.call('HSTRLEN', KEYS[1], ARGV[i])
	if n > tonumber(ARGV[1]) then
		return n
	end
end
return redis.call('HMGET', KEYS[1], unpack(ARGV, 2))
`)

// Meta returns what market's meta key names: the newest stored snapshot.
// It returns ErrMiss itself when there is none. A Redis error, a meta key
// that is unreadable, or one with a field larger than 1 KiB (refused
// before it is sent, counted as "too_large" and logged at Warn), is an
// error matching ErrMiss.
func (s *Store) Meta(ctx context.Context, market string) (Meta, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := MetaKey(market)
	v, err := metaScript.Run(ctx, s.rdb, []string{s.prefix + key}, append([]any{maxMetaBytes}, metaFields...)...).Result()
	if err != nil {
		s.fail("meta")
		return Meta{}, fmt.Errorf("%w: meta %q: %w", ErrMiss, market, err)
	}
	if n, ok := v.(int64); ok {
		return Meta{}, s.unusable(key, market, fmt.Errorf("field of %d bytes, more than %d: %w", n, maxMetaBytes, errTooLarge))
	}
	f, _ := v.([]any)
	if len(f) != len(metaFields) {
		s.fail("meta")
		return Meta{}, fmt.Errorf("%w: meta %q: unexpected reply %T", ErrMiss, market, v)
	}
	h := map[string]string{}
	for i, name := range metaFields {
		if v, ok := f[i].(string); ok {
			h[name.(string)] = v
		}
	}
	if len(h) == 0 {
		return Meta{}, ErrMiss
	}
	ms, err := strconv.ParseInt(h["fetched_at_ms"], 10, 64)
	if err != nil || h["market"] != market {
		return Meta{}, fmt.Errorf("%w: meta %q unreadable: %v", ErrMiss, market, h)
	}
	return Meta{Market: market, FetchedAt: time.UnixMilli(ms).UTC(), ETag: h["etag"]}, nil
}

// Watch subscribes to InvalidateChannel and delivers every announced Meta
// until ctx ends, then closes the channel. go-redis reconnects and
// subscribes again after Redis restarts; announcements made meanwhile are
// lost (readers catch up through Meta). A message larger than 1 KiB, or
// that is not a Meta with a market and a fetched_at, is dropped, counted as
// "watch", and logged at Warn (the first, then at most one a minute).
// go-redis reads a message whole before Watch sees it: Redis' own
// client-output-buffer-limit for pubsub (32 MB by default) bounds that.
func (s *Store) Watch(ctx context.Context) <-chan Meta {
	out := make(chan Meta, 16)
	ps := s.rdb.Subscribe(ctx, s.prefix+InvalidateChannel)
	go func() {
		defer close(out)
		defer ps.Close()
		ch := ps.Channel()
		var warned time.Time // the last Warn about a dropped message
		dropped := 0         // since then
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				m, err := parseAnnouncement(msg.Payload)
				if err != nil {
					s.fail("watch")
					if dropped++; time.Since(warned) >= time.Minute {
						s.log.Warn("l2 ignoring an unreadable announcement", "channel", s.prefix+InvalidateChannel,
							"err", err, "payload", truncate(msg.Payload, 200), "dropped", dropped)
						warned, dropped = time.Now(), 0
					}
					continue
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// parseAnnouncement returns the Meta a message on InvalidateChannel
// announces.
func parseAnnouncement(payload string) (Meta, error) {
	if len(payload) > maxMetaBytes {
		return Meta{}, fmt.Errorf("message of %d bytes, more than %d", len(payload), maxMetaBytes)
	}
	var m Meta
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		return Meta{}, err
	}
	if m.Market == "" || m.FetchedAt.IsZero() {
		return Meta{}, errors.New("no market or fetched_at")
	}
	return m, nil
}

// announce publishes e's Meta on InvalidateChannel. A failure is logged:
// readers catch up through Meta and their own refresh.
func (s *Store) announce(ctx context.Context, e Envelope) {
	msg, _ := json.Marshal(Meta{Market: e.Market, FetchedAt: e.FetchedAt.UTC(), ETag: e.ETag})
	if err := s.rdb.Publish(ctx, s.prefix+InvalidateChannel, msg).Err(); err != nil {
		s.fail("publish")
		s.log.Warn("l2 announcing a new snapshot failed", "market", e.Market, "channel", s.prefix+InvalidateChannel, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
