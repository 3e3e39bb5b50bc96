package l2

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/symcache/symcache/internal/bounded"
)

// Encoding is how [Store.Put] writes envelopes. Reads accept both, whichever
// the Store's own Encoding.
type Encoding string

const (
	JSON Encoding = "json" // envelope stored as plain JSON (redis-cli GET shows it readably)
	Gzip Encoding = "gzip" // the same JSON envelope, gzip-compressed
)

// ParseEncoding returns the Encoding named s ("json" or "gzip", as in SYMCACHE_L2_ENCODING).
func ParseEncoding(s string) (Encoding, error) {
	switch e := Encoding(s); e {
	case JSON, Gzip:
		return e, nil
	}
	return "", fmt.Errorf("l2: unknown encoding %q, want %q or %q", s, JSON, Gzip)
}

// gzipLevel trades write time for size. Put runs once per refresh per market,
// while every sidecar's L1 miss reads the value, and inflating costs the same
// at any level: so the smaller value of the default level wins over BestSpeed.
const gzipLevel = gzip.DefaultCompression

// errTooLarge is wrapped by every refusal of a value larger than
// MaxValueBytes, read or inflated (counted as "too_large"), or written.
var errTooLarge = errors.New("l2: value too large")

// Envelope is the value stored for a market snapshot (docs/design.md, "Redis layout").
// ExchangeInfo is Binance's body exactly as received, stored and returned byte
// for byte; it is never modified once cached, by this package or its callers.
type Envelope struct {
	Market       string          `json:"market"`
	FetchedAt    time.Time       `json:"fetched_at"`  // stored as RFC 3339 in UTC
	ServerTime   int64           `json:"server_time"` // Binance serverTime, ms since epoch
	ETag         string          `json:"etag"`
	ExchangeInfo json.RawMessage `json:"exchange_info"` // a JSON object, always the last field

	// BodyGzip is a gzip of ExchangeInfo alone, or nil. Put stores it as it
	// is (it must be a single gzip member inflating to exactly ExchangeInfo)
	// instead of compressing ExchangeInfo again; Current and LastGood set it
	// when the stored value carries one, so a reader can serve gzip without
	// compressing. It is not part of the JSON.
	BodyGzip []byte `json:"-"`
}

// header is an Envelope without ExchangeInfo, which encodeEnvelope appends
// verbatim: json.Marshal would compact it and re-scan megabytes.
type header struct {
	Market     string    `json:"market"`
	FetchedAt  time.Time `json:"fetched_at"`
	ServerTime int64     `json:"server_time"`
	ETag       string    `json:"etag"`
}

// CurrentKey is the key, relative to the prefix, of market's snapshot with a TTL.
func CurrentKey(market string) string { return "{" + market + "}:current" }

// LastGoodKey is the key, relative to the prefix, of market's newest valid
// snapshot, kept without a TTL.
func LastGoodKey(market string) string { return "{" + market + "}:last_good" }

// Current returns market's snapshot, within Timeout. It returns ErrMiss itself
// when there is none (absent or expired). A Redis error (a timeout included) or an
// unreadable or wrong envelope is logged at Warn and returned as an error matching
// ErrMiss that wraps the cause.
func (s *Store) Current(ctx context.Context, market string) (Envelope, error) {
	return s.envelope(ctx, CurrentKey(market), market, s.timeout)
}

// LastGood returns market's newest valid snapshot, with errors as
// [Store.Current], within LastGoodTimeout rather than Timeout.
func (s *Store) LastGood(ctx context.Context, market string) (Envelope, error) {
	return s.envelope(ctx, LastGoodKey(market), market, s.lastGoodTimeout)
}

func (s *Store) envelope(ctx context.Context, key, market string, budget time.Duration) (Envelope, error) {
	b, err := s.getWithin(ctx, key, market, budget)
	if err != nil {
		return Envelope{}, err
	}
	e, err := decodeEnvelope(b, s.maxValue)
	if err == nil && e.Market != market {
		err = fmt.Errorf("envelope of market %q", e.Market)
	}
	if err != nil {
		return Envelope{}, s.unusable(key, market, err)
	}
	return e, nil
}

// Put writes e as e.Market's current snapshot, expiring after ttl (> 0), as
// its last good one, without expiry, and names it in the market's meta key,
// all at once (a Lua script: all or nothing), unless the stored snapshot was
// fetched later than e: then it writes nothing and returns ErrSuperseded, so
// that a slow writer never sends the shared copy back in time. After a write
// it announces e on InvalidateChannel. Put refuses an envelope that readers
// would refuse (no market, zero FetchedAt, ExchangeInfo not a JSON object) but
// does not re-validate ExchangeInfo: the caller has; nor one larger than
// MaxValueBytes, unencoded. It takes at most
// WriteTimeout. A failure is logged at Error and returned; Redis then holds
// what it held before.
func (s *Store) Put(ctx context.Context, e Envelope, ttl time.Duration) error {
	err := s.put(ctx, e, ttl)
	s.putDone(e.Market, err)
	return err
}

// putDone counts and logs how a write of market's snapshot (Put, Advance)
// ended: superseded at Info, a failure at Error; a rebase is the caller's
// to handle, not logged.
func (s *Store) putDone(market string, err error) {
	switch {
	case errors.Is(err, ErrSuperseded):
		s.log.Info("l2 put skipped: a newer snapshot is stored", "market", market, "key", s.prefix+CurrentKey(market))
	case errors.Is(err, ErrRebase):
	case err != nil:
		s.fail("put")
		s.log.Error("l2 put failed", "market", market, "key", s.prefix+CurrentKey(market), "err", err)
	}
}

func (s *Store) put(ctx context.Context, e Envelope, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("l2 put %q: ttl %v, want > 0", e.Market, ttl)
	}
	b, err := encodeEnvelope(e, s.enc, s.maxValue)
	if err != nil {
		return fmt.Errorf("l2 put %q: %w", e.Market, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	keys := []string{s.prefix + CurrentKey(e.Market), s.prefix + LastGoodKey(e.Market), s.prefix + MetaKey(e.Market)}
	at := e.FetchedAt.UTC()
	// EVALSHA, then EVAL when the script is not cached yet: the value is sent
	// once either way (go-redis retries with EVAL only on NOSCRIPT).
	wrote, err := putScript.Run(ctx, s.rdb, keys, b, max(ttl.Milliseconds(), 1), at.UnixMilli(), at.Format(time.RFC3339Nano), e.ETag, e.Market).Int()
	if err != nil {
		return fmt.Errorf("l2 put %q: %w", e.Market, err)
	}
	if wrote == 0 {
		return fmt.Errorf("l2 put %q fetched at %s: %w", e.Market, at.Format(time.RFC3339Nano), ErrSuperseded)
	}
	s.announce(ctx, e)
	return nil
}

// exchangeInfoField joins the header and ExchangeInfo in an encoded envelope.
const exchangeInfoField = `,"exchange_info":`

// encodeEnvelope returns e as stored in Redis with enc: the header fields as JSON,
// then exchange_info, appended byte for byte, last. An envelope of more than
// limit bytes (before compression) is an error wrapping errTooLarge: readers
// would refuse it.
func encodeEnvelope(e Envelope, enc Encoding, limit int) ([]byte, error) {
	if err := checkEnvelope(e); err != nil {
		return nil, err
	}
	h, err := json.Marshal(header{
		Market:     e.Market,
		FetchedAt:  e.FetchedAt.UTC(),
		ServerTime: e.ServerTime,
		ETag:       e.ETag,
	})
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	h = h[:len(h)-1] // reopen the object: exchange_info comes last
	n := len(h) + len(exchangeInfoField) + len(e.ExchangeInfo) + 1
	if n > limit {
		return nil, fmt.Errorf("envelope of %d bytes, more than %d: %w", n, limit, errTooLarge)
	}
	if enc != Gzip {
		b := make([]byte, 0, n)
		b = append(b, h...)
		b = append(b, exchangeInfoField...)
		b = append(b, e.ExchangeInfo...)
		return append(b, '}'), nil
	}
	// Three gzip members, which any gunzip reads as one stream: the header,
	// exchange_info alone (so that a reader gets a gzip of the body for
	// free), and the closing brace.
	var buf bytes.Buffer
	buf.Grow(len(h) + len(exchangeInfoField) + len(e.BodyGzip) + 128)
	if err := gzipTo(&buf, h, []byte(exchangeInfoField)); err != nil {
		return nil, err
	}
	if e.BodyGzip != nil {
		buf.Write(e.BodyGzip)
	} else if err := gzipTo(&buf, e.ExchangeInfo); err != nil {
		return nil, err
	}
	if err := gzipTo(&buf, []byte("}")); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipTo appends one gzip member holding parts to buf.
func gzipTo(buf *bytes.Buffer, parts ...[]byte) error {
	zw, err := gzip.NewWriterLevel(buf, gzipLevel)
	if err != nil {
		return err
	}
	for _, p := range parts {
		zw.Write(p) // a bytes.Buffer does not fail; Close reports anything else
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gzip envelope: %w", err)
	}
	return nil
}

// decodeEnvelope returns the envelope in b, gzip-compressed or not; a gzip
// value inflating to more than limit bytes is an error wrapping errTooLarge.
// It never returns an envelope that checkEnvelope refuses. ExchangeInfo is checked
// only to be braces-delimited: validating megabytes is the reader's job
// (exchangeinfo.Parse), and the fast path below leaves it to it.
//
// Envelopes laid out as encodeEnvelope writes them (exchange_info last) are
// split without scanning exchange_info, and a gzip value written in three
// members gives its middle one as BodyGzip; anything else, such as a value
// another writer laid out differently, is decoded by encoding/json.
func decodeEnvelope(b []byte, limit int) (Envelope, error) {
	var members []member
	if isGzip(b) {
		var err error
		if b, members, err = gunzipMembers(b, limit); err != nil {
			return Envelope{}, err
		}
	}
	e, at, ok := splitEnvelope(b)
	if !ok || checkEnvelope(e) != nil {
		return decodeEnvelopeJSON(b) // another layout; or broken, and this says how
	}
	// The middle of three members is a gzip of exchange_info alone when it
	// starts where exchange_info starts and holds exactly its bytes.
	if len(members) == 3 && at == len(members[0].plain) && len(e.ExchangeInfo) == len(members[1].plain) {
		e.BodyGzip = members[1].raw
	}
	return e, nil
}

// splitEnvelope decodes b when it is a JSON object whose members before
// exchange_info have only strings, numbers or literals as values, and
// exchange_info is its last member: then exchange_info is everything from its
// value's first byte to the envelope's closing brace (the whitespace before
// that brace included, so Binance's body comes back byte for byte) and is
// not scanned. It also returns where exchange_info starts in b. ok is false
// when b is laid out otherwise; the caller then decodes it in full.
func splitEnvelope(b []byte) (e Envelope, at int, ok bool) {
	end := len(bytes.TrimRight(b, jsonSpace)) - 1 // the envelope's closing brace
	i := skipSpace(b, 0)
	if end <= i || b[i] != '{' || b[end] != '}' {
		return Envelope{}, 0, false
	}
	i++
	for {
		i = skipSpace(b, i)
		keyStart := i
		keyEnd, ok := skipString(b, i)
		if !ok {
			return Envelope{}, 0, false
		}
		i = skipSpace(b, keyEnd)
		if i >= end || b[i] != ':' {
			return Envelope{}, 0, false
		}
		i = skipSpace(b, i+1)
		if string(b[keyStart:keyEnd]) == `"exchange_info"` {
			if i >= end {
				return Envelope{}, 0, false
			}
			// The header: the members before this one, as an object of their own.
			h := bytes.TrimRight(b[:keyStart], jsonSpace)
			head := make([]byte, 0, len(h)+1)
			head = append(append(head, bytes.TrimSuffix(h, []byte(","))...), '}')
			var hd header
			if err := json.Unmarshal(head, &hd); err != nil {
				return Envelope{}, 0, false
			}
			return Envelope{
				Market:       hd.Market,
				FetchedAt:    hd.FetchedAt,
				ServerTime:   hd.ServerTime,
				ETag:         hd.ETag,
				ExchangeInfo: b[i:end:end],
			}, i, true
		}
		// Any other member's value: a string, or a number or literal.
		switch {
		case i >= end:
			return Envelope{}, 0, false
		case b[i] == '"':
			if i, ok = skipString(b, i); !ok {
				return Envelope{}, 0, false
			}
		case b[i] == '{' || b[i] == '[':
			return Envelope{}, 0, false
		default:
			for i < end && b[i] != ',' && b[i] != '}' && !isSpace(b[i]) {
				i++
			}
		}
		i = skipSpace(b, i)
		if i >= end || b[i] != ',' {
			return Envelope{}, 0, false // the end, without exchange_info
		}
		i++
	}
}

// skipString returns the index just past the JSON string starting at b[i].
func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decodeEnvelopeJSON decodes an envelope in any layout with encoding/json,
// which scans (and so validates) all of it.
func decodeEnvelopeJSON(b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	if err := checkEnvelope(e); err != nil {
		return Envelope{}, err
	}
	e.ExchangeInfo = keepTrailingSpace(b, e.ExchangeInfo)
	return e, nil
}

// checkEnvelope refuses what no reader should be given: cheap checks only, as
// a full validation of ExchangeInfo would scan megabytes.
func checkEnvelope(e Envelope) error {
	switch raw := e.ExchangeInfo; {
	case e.Market == "":
		return errors.New("envelope without market")
	case e.FetchedAt.IsZero():
		return errors.New("envelope without fetched_at")
	case e.FetchedAt.UTC().Year() < 1 || e.FetchedAt.UTC().Year() > 9999:
		return fmt.Errorf("fetched_at %v out of range", e.FetchedAt)
	case len(raw) == 0:
		return errors.New("envelope without exchange_info")
	case raw[0] != '{':
		return errors.New("exchange_info is not a JSON object")
	case !bytes.HasSuffix(bytes.TrimRight(raw, jsonSpace), []byte("}")):
		return errors.New("exchange_info is not a JSON object (truncated?)")
	}
	return nil
}

// jsonSpace is the whitespace of JSON (RFC 8259).
const jsonSpace = " \t\n\r"

// keepTrailingSpace returns raw, the exchange_info that json.Unmarshal found in the
// envelope b, followed by the whitespace that followed it in b when it is the last
// field. json.RawMessage drops that whitespace, yet Binance's body must come back
// byte for byte, even if it ended with a newline.
func keepTrailingSpace(b, raw []byte) []byte {
	b = bytes.TrimRight(b, jsonSpace)
	if !bytes.HasSuffix(b, []byte("}")) {
		return raw
	}
	b = b[:len(b)-1] // the envelope's closing brace
	end := len(bytes.TrimRight(b, jsonSpace))
	if end == len(b) || !bytes.HasSuffix(b[:end], raw) {
		return raw
	}
	before := bytes.TrimRight(b[:end-len(raw)], jsonSpace)
	if !bytes.HasSuffix(before, []byte(":")) ||
		!bytes.HasSuffix(bytes.TrimRight(before[:len(before)-1], jsonSpace), []byte(`"exchange_info"`)) {
		return raw
	}
	return append(raw, b[end:]...)
}

// gunzipIf returns b inflated if it starts with gzip's magic bytes (which JSON
// never does), else b itself. Inflating past limit bytes is an error wrapping
// errTooLarge.
func gunzipIf(b []byte, limit int) ([]byte, error) {
	if !isGzip(b) {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	// The trailer's ISIZE (the size mod 2^32) saves regrowing the buffer; it is
	// only a hint, capped by what deflate can expand (about 1032:1) and the limit.
	hint := 0
	if len(b) >= 4 {
		hint = min(int(binary.LittleEndian.Uint32(b[len(b)-4:])), 1032*len(b), limit/2)
	}
	plain, _, err := bounded.ReadAll(zr, int64(hint)+1, int64(limit)+1)
	if errors.Is(err, bounded.ErrTooLarge) {
		return nil, fmt.Errorf("gunzip: more than %d bytes: %w", limit, errTooLarge)
	}
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	return plain, nil
}

// readAtMost appends what r gives to buf until r ends. More than limit bytes
// in buf is an error wrapping errTooLarge, found as soon as buf holds
// limit+1. buf grows by doubling, and once past half the limit straight to
// limit+1 bytes, never more: however much a decompression bomb would
// inflate to, reading it allocates at most about twice the limit.
func readAtMost(buf []byte, r io.Reader, limit int) ([]byte, error) {
	for {
		if len(buf) > limit {
			return nil, fmt.Errorf("more than %d bytes: %w", limit, errTooLarge)
		}
		if len(buf) == cap(buf) {
			c := max(2*cap(buf), 512)
			if c > limit/2 {
				c = limit + 1
			}
			grown := make([]byte, len(buf), c)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF && len(buf) <= limit {
			return buf, nil
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
	}
}

func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// A member is one gzip member of a value: its compressed bytes and what they
// inflate to.
type member struct{ raw, plain []byte }

// gunzipMembers inflates the gzip value b member by member into one buffer,
// plain, which is what a multistream gzip reader gives; members' plain bytes
// are slices of it. Inflating past limit bytes in all is an error wrapping
// errTooLarge.
func gunzipMembers(b []byte, limit int) (plain []byte, members []member, err error) {
	r := bytes.NewReader(b) // an io.ByteReader: gzip reads no further than each member's end
	var zr gzip.Reader
	// Binance's JSON deflates about 40:1; the buffer grows if it is more.
	// At most half the limit at first: growing it to the limit then holds
	// 1.5 times the limit at the worst, whatever a bomb claims.
	plain = make([]byte, 0, min(48*len(b), limit/2)+1)
	var ends []int
	for r.Len() > 0 {
		start := len(b) - r.Len()
		if err := zr.Reset(r); err != nil {
			return nil, nil, fmt.Errorf("gunzip: member %d: %w", len(members)+1, err)
		}
		zr.Multistream(false)
		if plain, err = readAtMost(plain, &zr, limit); err != nil {
			return nil, nil, fmt.Errorf("gunzip: member %d: %w", len(members)+1, err)
		}
		members = append(members, member{raw: b[start : len(b)-r.Len() : len(b)-r.Len()]})
		ends = append(ends, len(plain))
	}
	if len(members) == 0 {
		return nil, nil, errors.New("gunzip: empty value")
	}
	if cap(plain) > len(plain)+len(plain)/4 { // a snapshot keeps these bytes: no room to spare
		plain = bytes.Clone(plain)
	}
	from := 0
	for i, end := range ends {
		members[i].plain = plain[from:end:end]
		from = end
	}
	return plain, members, nil
}

// SeedLastGood writes e as the market's last good envelope only when there is
// none (after Redis lost its data, say), so that other processes have
// something valid to fall back on before the next successful fetch. It never
// replaces an existing value. Unless the meta key names a later snapshot, it
// records e there as [Store.Put] does, so that a Put of an older snapshot,
// from a process whose fetch finished later, does not replace the seeded one
// (it gets ErrSuperseded). It reports whether it wrote.
func (s *Store) SeedLastGood(ctx context.Context, e Envelope) (bool, error) {
	key := s.prefix + LastGoodKey(e.Market)
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	// EXISTS first: the script would be sent megabytes for nothing when the key is there.
	if n, err := s.rdb.Exists(ctx, key).Result(); err != nil || n == 1 {
		if err != nil {
			s.fail("seed")
			return false, fmt.Errorf("l2 seed %q: %w", e.Market, err)
		}
		return false, nil
	}
	b, err := encodeEnvelope(e, s.enc, s.maxValue)
	if err != nil {
		return false, fmt.Errorf("l2 seed %q: %w", e.Market, err)
	}
	at := e.FetchedAt.UTC()
	keys := []string{key, s.prefix + MetaKey(e.Market)}
	wrote, err := seedScript.Run(ctx, s.rdb, keys, b, at.UnixMilli(), at.Format(time.RFC3339Nano), e.ETag, e.Market).Int()
	if err != nil {
		s.fail("seed")
		return false, fmt.Errorf("l2 seed %q: %w", e.Market, err)
	}
	return wrote == 1, nil
}
