package l2

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrMiss means the key is absent, expired, unreadable or corrupt. Test with errors.Is.
var ErrMiss = errors.New("l2: miss")

// DefaultMaxValueBytes is [Config.MaxValueBytes] when zero: 33 MiB, the
// largest body the fetcher accepts (32 MiB) with room for an envelope's
// fields. The 3.7 MB spot envelope and a 15 MB one are far below it.
const DefaultMaxValueBytes = 33 << 20

// DefaultMaxHold is [Config.MaxHold] when zero: 72h, the longest ban
// Binance gives (418 with Retry-After).
const DefaultMaxHold = 72 * time.Hour

// MaxSkew is the clock skew allowed between hosts: how far past Redis' own
// clock a stored snapshot may be dated and still be believed. A meta key
// dated later is corrupt and blocks no write (see [Store.Put]). The root
// package holds snapshots, envelopes and announcements to the same bound.
const MaxSkew = time.Minute

// Config configures a [Store]. Only Client is required.
type Config struct {
	// Client is the Redis connection (a *redis.Client, *redis.ClusterClient, ...).
	// Required. Build it with ContextTimeoutEnabled set: otherwise go-redis bounds
	// socket reads and writes by its own ReadTimeout/WriteTimeout (3s by default),
	// not by Timeout and WriteTimeout.
	Client redis.UniversalClient
	// Prefix is put before every key. If empty, "symcache:".
	Prefix string
	// Encoding is how Put writes envelopes. If zero, JSON. Reads accept both.
	Encoding Encoding
	// Timeout is the budget of each read ([Store.Current], [Store.ReadJSON]) and
	// of [Store.Ping], everything included: waiting for a
	// connection, go-redis' own retries, and the transfer. A read that runs out is
	// a miss, logged at Warn once, and the read path goes on to the next tier, so a
	// slow or stalled Redis costs a request at most this much per read. If zero,
	// 50ms: reading the 3.7 MB spot envelope (STRLEN and EXISTS, then GETRANGE)
	// takes 2 to 5 ms (20 ms under the race detector), its gzip envelope 0.1 ms.
	Timeout time.Duration
	// WriteTimeout is the budget of each write ([Store.Put], [Store.WriteJSON]).
	// Writes happen when a snapshot was fetched, not while a client waits for a
	// hit, and a Put of a 7 MB MULTI/EXEC may take longer than a read: so a
	// separate, larger budget. If zero, 1s.
	WriteTimeout time.Duration
	// LastGoodTimeout is the budget of each [Store.LastGood] read. last_good is
	// read when nothing better is at hand (a process with nothing in memory, or
	// Binance failing), where the alternative to waiting longer is an error
	// answer: so a separate, larger budget than Timeout. If zero, 1s or Timeout,
	// whichever is longer.
	LastGoodTimeout time.Duration
	// MaxValueBytes bounds every value read, and what a gzip value may
	// inflate to. A longer value is refused before it is sent (its STRLEN is
	// asked first, and at most MaxValueBytes+1 bytes are read); a gzip value
	// that inflates past it is refused once that much is inflated. Either is
	// a miss, logged at Warn and counted as "too_large" (see [Store.Errors]).
	// [Store.Put], [Store.SeedLastGood] and [Store.WriteJSON] refuse to write
	// what readers would refuse. If zero, DefaultMaxValueBytes (33 MiB).
	MaxValueBytes int64
	// MaxHold bounds the backoff marker [Store.Hold] sets: a longer one is
	// cut to it, with a Warn. If zero, DefaultMaxHold (72h).
	MaxHold time.Duration
	// Holder names this process in the refresh locks it takes (see
	// [Store.LockHolder]), so that an operator sees which sidecar holds
	// one. If empty, the host name (a Kubernetes pod's name) and the
	// process id. At most 64 bytes are kept, without control characters.
	Holder string
	// Logger receives Warn (a read fell back to a miss) and Error (a write failed)
	// records. If nil, slog.Default().
	Logger *slog.Logger
}

// Store is the Redis tier. It is safe for concurrent use.
type Store struct {
	rdb             redis.UniversalClient
	prefix          string
	enc             Encoding
	timeout         time.Duration // reads
	writeTimeout    time.Duration
	lastGoodTimeout time.Duration
	maxValue        int // bytes
	maxHold         time.Duration
	holder          string // Config.Holder, as lock tokens start with it
	log             *slog.Logger
	errs            [len(ops)]atomic.Uint64 // failed calls, indexed like ops
}

// ops are the operations Errors counts failures of, as Errors documents them.
var ops = [...]string{
	"get", "decode", "too_large", "put", "seed", "write_json", "ping",
	"lock", "lock_no_ttl", "extend", "unlock", "hold", "clear_backoff", "meta", "publish", "watch", "ban", "bans", "changes",
}

// fail counts a failed op.
func (s *Store) fail(op string) {
	for i, o := range ops {
		if o == op {
			s.errs[i].Add(1)
			return
		}
	}
}

// Errors returns the number of failed Redis calls since New by operation:
// get, decode (a value read that was no usable envelope), too_large (a value
// or meta field read that was larger than MaxValueBytes, or a gzip value
// that inflated past it: refused), put, seed, write_json, ping, lock,
// lock_no_ttl (a refresh lock found without a TTL, given one), extend,
// unlock, hold, clear_backoff, meta, publish, watch (a message on the
// invalidate or bans channel that was no usable announcement: dropped), ban
// (Ban or Unban), bans (Bans, a read of the shared bans) and changes (a
// read of a change log; an unreadable reply counts as decode). Every
// operation is in the map, failed or not.
func (s *Store) Errors() map[string]uint64 {
	out := make(map[string]uint64, len(ops))
	for i, o := range ops {
		out[o] = s.errs[i].Load()
	}
	return out
}

// New returns a Store for cfg, with cfg's zero values filled in.
// It panics if cfg.Client is nil or cfg.Encoding is not a known [Encoding]:
// both are programming errors (use [ParseEncoding] on user input).
func New(cfg Config) *Store {
	if cfg.Client == nil {
		panic("l2: New with nil Config.Client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "symcache:"
	}
	if cfg.Encoding == "" {
		cfg.Encoding = JSON
	}
	if _, err := ParseEncoding(string(cfg.Encoding)); err != nil {
		panic(err.Error())
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 50 * time.Millisecond
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = time.Second
	}
	if cfg.LastGoodTimeout <= 0 {
		cfg.LastGoodTimeout = max(time.Second, cfg.Timeout)
	}
	if cfg.MaxValueBytes <= 0 {
		cfg.MaxValueBytes = DefaultMaxValueBytes
	}
	if cfg.MaxHold <= 0 {
		cfg.MaxHold = DefaultMaxHold
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Holder == "" {
		host, _ := os.Hostname()
		cfg.Holder = fmt.Sprintf("%s:%d", cmp.Or(host, "unknown"), os.Getpid())
	}
	return &Store{
		holder:          holderName(cfg.Holder),
		rdb:             cfg.Client,
		prefix:          cfg.Prefix,
		enc:             cfg.Encoding,
		timeout:         cfg.Timeout,
		writeTimeout:    cfg.WriteTimeout,
		lastGoodTimeout: cfg.LastGoodTimeout,
		maxValue:        int(min(cfg.MaxValueBytes, math.MaxInt-1)), // room for limit+1
		maxHold:         cfg.MaxHold,
		log:             cfg.Logger.With("tier", "l2"),
	}
}

// ReadJSON decodes the JSON value at key (relative to the prefix) into v, within
// Timeout. It returns nil on a hit and ErrMiss itself when the key is absent or expired.
// A Redis error or a value that does not decode into v is logged at Warn and
// returned as an error matching ErrMiss that wraps the cause.
// A gzip-compressed value is accepted too.
func (s *Store) ReadJSON(ctx context.Context, key string, v any) error {
	b, err := s.get(ctx, key, "")
	if err != nil {
		return err
	}
	if b, err = gunzipIf(b, s.maxValue); err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return s.unusable(key, "", err)
	}
	return nil
}

// unusable counts, logs at Warn and returns, matching ErrMiss, a value at key
// that was read but cannot be used: "too_large" when err is errTooLarge,
// else "decode".
func (s *Store) unusable(key, market string, err error) error {
	if errors.Is(err, errTooLarge) {
		s.fail("too_large")
		s.warn("l2 value too large, treating as a miss", key, market, err)
		return fmt.Errorf("%w: read %q: %w", ErrMiss, key, err)
	}
	s.fail("decode")
	s.warn("l2 value unreadable, treating as a miss", key, market, err)
	return fmt.Errorf("%w: decode %q: %w", ErrMiss, key, err)
}

// WriteJSON stores v as JSON at key (relative to the prefix) with SET key value
// EX/PX ttl; a ttl of 0 means no expiry, and a negative one is refused.
// It takes at most WriteTimeout. A failure is logged at Error and returned.
func (s *Store) WriteJSON(ctx context.Context, key string, v any, ttl time.Duration) error {
	err := s.writeJSON(ctx, key, v, ttl)
	if err != nil {
		s.fail("write_json")
		s.log.Error("l2 write failed", "key", s.prefix+key, "err", err)
	}
	return err
}

func (s *Store) writeJSON(ctx context.Context, key string, v any, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("l2 set %q: negative ttl %v", key, ttl)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("l2 set %q: %w", key, err)
	}
	if len(b) > s.maxValue {
		return fmt.Errorf("l2 set %q: value of %d bytes, more than %d: %w", key, len(b), s.maxValue, errTooLarge)
	}
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	if err := s.rdb.Set(ctx, s.prefix+key, b, ttl).Err(); err != nil {
		return fmt.Errorf("l2 set %q: %w", key, err)
	}
	return nil
}

// Ping checks the connection within Timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.fail("ping")
		return fmt.Errorf("l2 ping: %w", err)
	}
	return nil
}

// get returns the raw value at key (relative to the prefix) within Timeout:
// ErrMiss itself when absent; a Redis error logged at Warn, once per call, and
// wrapped in ErrMiss; a value longer than MaxValueBytes, refused before it is
// sent, counted as "too_large", logged at Warn and wrapped in ErrMiss. The
// deadline bounds go-redis' command retries and the wait for a connection
// too: go-redis dials in a goroutine of its own, which may go on retrying
// after get gave up, but get does not wait for it. The bytes may share
// memory with an immutable string: never modify them.
func (s *Store) get(ctx context.Context, key, market string) ([]byte, error) {
	return s.getWithin(ctx, key, market, s.timeout)
}

// getWithin is get with a budget of its own. It reads in two round trips:
// STRLEN and EXISTS, then, unless the value is absent, empty or longer than
// MaxValueBytes, GETRANGE of at most MaxValueBytes+1 bytes. So a value too
// long is never sent, and one that grew in between is sent only up to the
// bound, then refused. (A Lua script that returns the value when its STRLEN
// is small enough would be one round trip, but Redis makes a script's reply
// of megabytes five times slower than GET's.) Both go to the node that owns
// key, on a Redis Cluster too.
func (s *Store) getWithin(ctx context.Context, key, market string, budget time.Duration) ([]byte, error) {
	gctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	b, err := s.getBounded(gctx, s.prefix+key)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, redis.Nil):
		return nil, ErrMiss // the driver's sentinel stops here
	case errors.Is(err, errTooLarge):
		return nil, s.unusable(key, market, err)
	}
	s.fail("get")
	// A caller that gave up (client gone) is not news; Redis being slow or down is.
	if ctx.Err() == nil {
		s.warn("l2 read failed, treating as a miss", key, market, err)
	}
	return nil, fmt.Errorf("%w: get %q: %w", ErrMiss, key, err)
}

// getBounded returns the value at key (the full key) as getWithin reads it:
// redis.Nil when absent, an error wrapping errTooLarge when longer than
// MaxValueBytes.
func (s *Store) getBounded(ctx context.Context, key string) ([]byte, error) {
	var n, exists *redis.IntCmd
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		n, exists = p.StrLen(ctx, key), p.Exists(ctx, key)
		return nil
	}); err != nil {
		return nil, err
	}
	switch {
	case exists.Val() == 0:
		return nil, redis.Nil
	case n.Val() > int64(s.maxValue):
		return nil, fmt.Errorf("value of %d bytes, more than %d: %w", n.Val(), s.maxValue, errTooLarge)
	case n.Val() == 0:
		return []byte{}, nil // empty: not worth a second trip
	}
	b, err := s.rdb.GetRange(ctx, key, 0, int64(s.maxValue)).Bytes()
	switch {
	case err != nil:
		return nil, err
	case len(b) > s.maxValue: // it grew in between
		return nil, fmt.Errorf("value of more than %d bytes: %w", s.maxValue, errTooLarge)
	case len(b) == 0: // it was deleted in between (GETRANGE cannot tell)
		return nil, redis.Nil
	}
	return b, nil
}

// warn logs msg at Warn for key (relative to the prefix), with market when known.
func (s *Store) warn(msg, key, market string, err error) {
	if market != "" {
		s.log.Warn(msg, "market", market, "key", s.prefix+key, "err", err)
		return
	}
	s.log.Warn(msg, "key", s.prefix+key, "err", err)
}
