package l2

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file is the change log of each market: a Redis Stream written in
// the same script as the snapshot whose changes it records, so that no
// reader sees a snapshot without its changes, and two writers never record
// one change twice or skip one.

// ChangesKey is the key, relative to the prefix, of market's change log, a
// Stream. Each entry has one field: "c", a change as the caller encoded it,
// or "reset", why the log starts again there (what came before it is not
// known to the log).
func ChangesKey(market string) string { return "{" + market + "}:changes" }

// Default retention of a change log (see [Config.ChangesMax]).
const (
	DefaultChangesMax = 10000
	DefaultChangesAge = 30 * 24 * time.Hour
)

// MaxChangeBytes bounds one change: Advance refuses a larger one, and a
// larger entry read from a log is refused before it is sent. A change
// carries two values of one symbol's member; Binance's largest symbol
// objects are a few KiB.
const MaxChangeBytes = 1 << 20

// ErrRebase is what Advance returns when the snapshot stored is not the
// base the changes were computed from: nothing was written. The caller
// computes them again from the stored snapshot (see [Advance.Base]).
var ErrRebase = errors.New("l2: the stored snapshot is not the base of the changes")

// Advance is one [Store.Advance]: a new snapshot and its changes from the
// one stored.
type Advance struct {
	Envelope Envelope      // the new snapshot, as Put takes it
	TTL      time.Duration // its TTL in current, as Put takes it
	// Base names the snapshot the changes were computed from. Advance
	// writes only when the meta key names it, else it returns ErrRebase;
	// a zero Base names none, so that a writer that knows no base learns
	// the stored one.
	Base Meta
	// Reset asks for a reset whatever is stored: the snapshot is written
	// with no changes, and the log starts again.
	Reset bool
	// Seen is the newest id of the log the caller knows of, "" for none.
	// A log whose newest id is older lost entries (a Redis restored from an
	// older save): it starts again with a reset rather than give out ids
	// that consumers already hold for other changes.
	Seen string
	// Changes are the changes, encoded, in order; none when the snapshots
	// are equal.
	Changes [][]byte
	// Keep is how much of the log to keep after the write; its zero
	// fields are DefaultChangesMax and DefaultChangesAge.
	Keep Retention
}

// Retention is how much of a change log is kept: an entry is trimmed once
// it is neither among the last Max nor younger than Age, by Redis' clock.
type Retention struct {
	Max int
	Age time.Duration
}

// advanceScript is putScript with a change log: unless meta names a later
// snapshot (then 0), it checks the base and either returns {2, the stored
// fetched_at_ms, the stored etag} without writing, or writes current,
// last_good and meta, appends the changes (or a reset) to the log and
// trims it, and returns {1, reset id or "", change ids...}. A reset is
// written instead of the changes when the caller asks for one, when no
// snapshot is stored or the one stored was not stored by Advance (meta's
// field "logged": Put and SeedLastGood store none), when the log is missing (or not a stream: deleted),
// or when it is older than what the caller has seen.
//
// KEYS: current, last_good, meta, changes. ARGV: value, ttl in ms,
// fetched_at in ms, fetched_at as RFC 3339, etag, market, base
// fetched_at_ms ("" for none), base etag, seen id, max entries, max age in
// ms, "1" to ask for a reset, then the changes.
var advanceScript = redis.NewScript(metaLua + `
local function before(a, b)
	local am, as = string.match(a, '^(%d+)-(%d+)$')
	local bm, bs = string.match(b, '^(%d+)-(%d+)$')
	if not am or not bm then return false end
	am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
	return am < bm or (am == bm and as < bs)
end
local function field(info, name)
	for i = 1, #info, 2 do
		if info[i] == name then return info[i + 1] end
	end
end
if later(KEYS[3], ARGV[3]) then
	return {0}
end
local stored = redis.call('HMGET', KEYS[3], 'fetched_at_ms', 'etag', 'logged')
local reset = false
if not stored[1] then
	reset = 'no snapshot was stored'
elseif not stored[3] then
	reset = 'a snapshot was stored without its changes'
elseif ARGV[12] == '1' then
	reset = 'asked by the writer'
end
local t = redis.call('TYPE', KEYS[4])['ok']
if t ~= 'stream' then
	if t ~= 'none' then redis.call('DEL', KEYS[4]) end
	reset = reset or 'the log was missing'
elseif ARGV[9] ~= '' and before(field(redis.call('XINFO', 'STREAM', KEYS[4]), 'last-generated-id'), ARGV[9]) then
	reset = reset or 'the log lost entries'
end
if not reset and (stored[1] ~= ARGV[7] or (stored[2] or '') ~= ARGV[8]) then
	return {2, stored[1], stored[2] or ''}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
record(KEYS[3], ARGV[6], ARGV[4], ARGV[3], ARGV[5])
redis.call('HSET', KEYS[3], 'logged', '1')
local out = {1, ''}
if reset then
	out[2] = redis.call('XADD', KEYS[4], '*', 'reset', reset)
else
	for i = 13, #ARGV do
		out[#out + 1] = redis.call('XADD', KEYS[4], '*', 'c', ARGV[i])
	end
end
local excess = redis.call('XLEN', KEYS[4]) - tonumber(ARGV[10])
if excess > 0 then
	local now = redis.call('TIME')
	local cut = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[11])
	if cut > 0 then
		local old = redis.call('XRANGE', KEYS[4], '-', string.format('%d', cut), 'COUNT', excess)
		if #old > 0 then
			local last = old[#old][1]
			local ms, seq = string.match(last, '^(%d+)-(%d+)$')
			redis.call('XTRIM', KEYS[4], 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
			local info = redis.call('XINFO', 'STREAM', KEYS[4])
			redis.call('XSETID', KEYS[4], field(info, 'last-generated-id'), 'MAXDELETEDID', last)
		end
	end
end
return out
`)

// Advanced is what a successful [Store.Advance] wrote.
type Advanced struct {
	Reset string   // the id of the reset written instead of the changes, or ""
	IDs   []string // the ids of the changes, in order; none after a reset
}

// Advance writes a.Envelope as Put does, and in the same script appends
// a.Changes to the market's change log, each as one entry, then trims the
// log to what a.Keep keeps. It writes only when the stored
// snapshot is a.Base; else nothing, and it returns ErrRebase with the
// stored snapshot's Meta (its FetchedAt to the millisecond, as stored). A
// snapshot stored that was fetched later is ErrSuperseded, as for Put. When
// the log cannot follow on from what it holds (see advanceScript), the
// snapshot is written with a reset instead of the changes. After a write it
// announces the snapshot. A failure is logged at Error and returned.
func (s *Store) Advance(ctx context.Context, a Advance) (Advanced, Meta, error) {
	done, stored, err := s.advance(ctx, a)
	s.putDone(a.Envelope.Market, err)
	return done, stored, err
}

func (s *Store) advance(ctx context.Context, a Advance) (Advanced, Meta, error) {
	e := a.Envelope
	if a.TTL <= 0 {
		return Advanced{}, Meta{}, fmt.Errorf("l2 put %q: ttl %v, want > 0", e.Market, a.TTL)
	}
	b, err := encodeEnvelope(e, s.enc, s.maxValue)
	if err != nil {
		return Advanced{}, Meta{}, fmt.Errorf("l2 put %q: %w", e.Market, err)
	}
	size := 0
	for _, c := range a.Changes {
		if len(c) > MaxChangeBytes {
			return Advanced{}, Meta{}, fmt.Errorf("l2 put %q: a change of %d bytes, more than %d", e.Market, len(c), MaxChangeBytes)
		}
		size += len(c)
	}
	if len(b)+size > s.maxValue {
		return Advanced{}, Meta{}, fmt.Errorf("l2 put %q: %d bytes with its changes, more than %d: %w", e.Market, len(b)+size, s.maxValue, errTooLarge)
	}
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	keys := []string{s.prefix + CurrentKey(e.Market), s.prefix + LastGoodKey(e.Market), s.prefix + MetaKey(e.Market), s.prefix + ChangesKey(e.Market)}
	at := e.FetchedAt.UTC()
	base := ""
	if !a.Base.FetchedAt.IsZero() {
		base = strconv.FormatInt(a.Base.FetchedAt.UnixMilli(), 10)
	}
	keep, reset := a.Keep, ""
	if keep.Max <= 0 {
		keep.Max = DefaultChangesMax
	}
	if keep.Age <= 0 {
		keep.Age = DefaultChangesAge
	}
	if a.Reset {
		reset = "1"
	}
	args := make([]any, 0, 12+len(a.Changes))
	args = append(args, b, max(a.TTL.Milliseconds(), 1), at.UnixMilli(), at.Format(time.RFC3339Nano), e.ETag, e.Market,
		base, a.Base.ETag, a.Seen, keep.Max, max(keep.Age.Milliseconds(), 1), reset)
	for _, c := range a.Changes {
		args = append(args, c)
	}
	v, err := advanceScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return Advanced{}, Meta{}, fmt.Errorf("l2 put %q: %w", e.Market, err)
	}
	status, _ := v[0].(int64)
	switch {
	case status == 0:
		return Advanced{}, Meta{}, fmt.Errorf("l2 put %q fetched at %s: %w", e.Market, at.Format(time.RFC3339Nano), ErrSuperseded)
	case status == 2 && len(v) == 3:
		m := Meta{Market: e.Market}
		if ms, err := strconv.ParseInt(fmt.Sprint(v[1]), 10, 64); err == nil {
			m.FetchedAt = time.UnixMilli(ms).UTC()
		}
		m.ETag, _ = v[2].(string)
		return Advanced{}, m, fmt.Errorf("l2 put %q: %w", e.Market, ErrRebase)
	case status != 1 || len(v) < 2:
		return Advanced{}, Meta{}, fmt.Errorf("l2 put %q: unexpected reply %v", e.Market, v)
	}
	var done Advanced
	done.Reset, _ = v[1].(string)
	for _, id := range v[2:] {
		s, _ := id.(string)
		done.IDs = append(done.IDs, s)
	}
	s.announce(ctx, e)
	return done, Meta{}, nil
}

// changesScript reads a change log: {0} when it is missing (or not a
// stream), else {1, last-generated-id, max-deleted-entry-id, entries}, the
// entries being at most ARGV[2] after the id ARGV[1] or, when ARGV[1] is
// empty, the last ARGV[2], newest first. A field name or value longer than
// ARGV[3] bytes is replaced by its length, so that it is never sent.
var changesScript = redis.NewScript(`
if redis.call('TYPE', KEYS[1])['ok'] ~= 'stream' then
	return {0}
end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, deleted = '0-0', '0-0'
for i = 1, #info, 2 do
	if info[i] == 'last-generated-id' then last = info[i + 1] end
	if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
end
local entries
if ARGV[1] == '' then
	entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[2])
else
	entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
for _, e in ipairs(entries) do
	local f = e[2]
	for j = 1, #f do
		if #f[j] > tonumber(ARGV[3]) then f[j] = #f[j] end
	end
end
return {1, last, deleted, entries}
`)

// LogEntry is one entry of a change log: a change or a reset.
type LogEntry struct {
	ID     string
	Reset  string // why the log starts again here; "" for a change
	Change []byte // the change as Advance was given it
}

// LogWindow is what [Store.Changes] read.
type LogWindow struct {
	Exists  bool       // false: the market has no log
	Last    string     // the log's newest id, even if trimmed since
	Trimmed string     // the newest id trimmed or deleted, "0-0" if none
	Entries []LogEntry // the first entries after the cursor, in order
}

// Changes reads market's change log after the id after ("0-0" for its
// start), at most n entries (1 to 10,000), in one script, within
// LastGoodTimeout: a page of thousands of changes takes longer than
// Timeout allows a snapshot read on the request path.
// An entry that is neither a change nor a reset (a field of another name,
// a value larger than 1 MiB) is read as a reset, so that consumers reload
// rather than skip what it stood for. A Redis error, or a reply that is no
// log, is logged at Warn and returned, matching ErrMiss.
func (s *Store) Changes(ctx context.Context, market, after string, n int) (LogWindow, error) {
	if n < 1 || n > 10000 {
		return LogWindow{}, fmt.Errorf("l2 changes %q: count %d, want 1 to 10000", market, n)
	}
	if after == "" {
		after = "0-0"
	}
	return s.readLog(ctx, market, after, n)
}

// readLog reads market's change log with changesScript (after "": the
// last n entries), within LastGoodTimeout.
func (s *Store) readLog(ctx context.Context, market, after string, n int) (LogWindow, error) {
	ctx, cancel := context.WithTimeout(ctx, s.lastGoodTimeout)
	defer cancel()
	key := ChangesKey(market)
	v, err := changesScript.Run(ctx, s.rdb, []string{s.prefix + key}, after, n, MaxChangeBytes).Slice()
	if err != nil {
		s.fail("changes")
		if ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded) {
			s.warn("l2 change log read failed", key, market, err)
		}
		return LogWindow{}, fmt.Errorf("%w: changes %q: %w", ErrMiss, market, err)
	}
	if st, _ := v[0].(int64); st == 0 {
		return LogWindow{}, nil
	}
	w, err := readWindow(v)
	if err != nil {
		s.fail("decode")
		s.warn("l2 change log unreadable", key, market, err)
		return LogWindow{}, fmt.Errorf("%w: changes %q: %w", ErrMiss, market, err)
	}
	return w, nil
}

// readEntry reads one entry of a change log. One that is neither a change
// nor a reset (a field of another name, or more than one, a value larger
// than MaxChangeBytes) is read as a reset: the log cannot vouch for what
// it stands for.
func readEntry(id string, fields any) LogEntry {
	f, _ := fields.([]any)
	if len(f) == 2 {
		name, _ := f[0].(string)
		val, ok := f[1].(string)
		switch {
		case ok && name == "c":
			return LogEntry{ID: id, Change: []byte(val)}
		case ok && name == "reset" && val != "":
			return LogEntry{ID: id, Reset: truncate(val, 200)}
		}
	}
	return LogEntry{ID: id, Reset: "an entry that is no change"}
}

// readWindow reads changesScript's reply for a log that exists.
func readWindow(v []any) (LogWindow, error) {
	w := LogWindow{Exists: true}
	var entries []any
	if len(v) == 4 {
		w.Last, _ = v[1].(string)
		w.Trimmed, _ = v[2].(string)
		entries, _ = v[3].([]any)
	}
	if w.Last == "" || w.Trimmed == "" {
		return w, fmt.Errorf("unexpected reply %v", v)
	}
	for _, x := range entries {
		e, _ := x.([]any)
		if len(e) != 2 {
			return w, fmt.Errorf("unexpected entry %v", x)
		}
		id, _ := e[0].(string)
		w.Entries = append(w.Entries, readEntry(id, e[1]))
	}
	return w, nil
}

// LatestChanges reads the last n entries (1 to 10,000) of market's change
// log, oldest first, as Changes reads entries after a cursor.
func (s *Store) LatestChanges(ctx context.Context, market string, n int) (LogWindow, error) {
	if n < 1 || n > 10000 {
		return LogWindow{}, fmt.Errorf("l2 changes %q: count %d, want 1 to 10000", market, n)
	}
	w, err := s.readLog(ctx, market, "", n)
	slices.Reverse(w.Entries)
	return w, err
}
