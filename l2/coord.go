package l2

import (
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
// meta that is not a hash, or names a time more than an hour past Redis' own
// clock, is corrupt and names none (the first is deleted), so it cannot block
// writes. record(meta, market, at, ms, etag) replaces it.
const metaLua = `
local function later(meta, ms)
	local stored = redis.pcall('HGET', meta, 'fetched_at_ms')
	if type(stored) == 'table' and stored.err then
		redis.call('DEL', meta)
		return false
	end
	stored = tonumber(stored)
	local now = redis.call('TIME')
	return stored ~= nil and stored > tonumber(ms) and stored <= now[1] * 1000 + 3600000
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

// Lock takes market's refresh lock for lease (SET NX PX with a random
// token). It returns the token when it took the lock, or what holds it.
// Only the holder should ask the upstream; the lease bounds how long a holder
// that died keeps the others waiting. A Redis error is returned as is: the
// caller then goes on without the lock.
func (s *Store) Lock(ctx context.Context, market string, lease time.Duration) (token string, held Held, err error) {
	var b [16]byte
	rand.Read(b[:])
	token = hex.EncodeToString(b[:])
	key := s.prefix + LockKey(market)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ok, err := s.rdb.SetNX(ctx, key, token, lease).Result()
	if err != nil {
		s.fail("lock")
		return "", Held{}, fmt.Errorf("l2 lock %q: %w", market, err)
	}
	if ok {
		return token, Held{}, nil
	}
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get, ttl = p.Get(ctx, key), p.PTTL(ctx, key)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		s.fail("lock")
		return "", Held{}, fmt.Errorf("l2 lock %q: %w", market, err)
	}
	reason, backoff := strings.CutPrefix(get.Val(), backoffMark)
	held = Held{Backoff: backoff, Reason: reason, Until: time.Now().Add(max(ttl.Val(), 0))}
	return "", held, nil
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
// processes see it, and reason, in Lock's Held.
func (s *Store) Hold(ctx context.Context, market, token string, d time.Duration, reason string) error {
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	ms := max(d.Milliseconds(), 1)
	if err := holdScript.Run(ctx, s.rdb, []string{s.prefix + LockKey(market)}, token, ms, backoffMark+truncate(reason, 200)).Err(); err != nil {
		s.fail("hold")
		return fmt.Errorf("l2 hold %q: %w", market, err)
	}
	return nil
}

// Meta returns what market's meta key names: the newest stored snapshot.
// It returns ErrMiss itself when there is none.
func (s *Store) Meta(ctx context.Context, market string) (Meta, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	h, err := s.rdb.HGetAll(ctx, s.prefix+MetaKey(market)).Result()
	if err != nil {
		s.fail("meta")
		return Meta{}, fmt.Errorf("%w: meta %q: %w", ErrMiss, market, err)
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
// lost (readers catch up through Meta). Unreadable messages are skipped.
func (s *Store) Watch(ctx context.Context) <-chan Meta {
	out := make(chan Meta, 16)
	ps := s.rdb.Subscribe(ctx, s.prefix+InvalidateChannel)
	go func() {
		defer close(out)
		defer ps.Close()
		ch := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-ch:
				if !ok {
					return
				}
				var m Meta
				if err := json.Unmarshal([]byte(msg.Payload), &m); err != nil || m.Market == "" {
					s.log.Warn("l2 ignoring an unreadable announcement", "channel", s.prefix+InvalidateChannel, "payload", truncate(msg.Payload, 200))
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
