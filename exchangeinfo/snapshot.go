// Package exchangeinfo is symcache's domain: Binance markets, the exchangeInfo
// Snapshot built from Binance's answer bytes as received, Parse, which
// validates an answer and indexes its symbols, and the query semantics of
// Binance's exchangeInfo endpoints: ParseQuery, and Snapshot.Answer, which
// answers a query as Binance would.
//
// A Snapshot never changes once built. Its Body is served as is; lookups and
// answers use the index, whose entries point into Body, so nothing is
// re-encoded.
package exchangeinfo

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInvalid is the sentinel every validation failure matches with errors.Is.
// The error itself is an *InvalidError that says why.
var ErrInvalid = errors.New("invalid exchangeInfo")

// InvalidError says why a body was rejected by Parse.
type InvalidError struct {
	Reason string // e.g. "body cut short after 1024 bytes", "empty symbols array"
}

func (e *InvalidError) Error() string { return "invalid exchangeInfo: " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, args ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, args...)}
}

// MaxSymbols is the most symbols a valid answer may have: Binance lists
// about 3,000 on spot and fewer on futures. An answer with more is invalid
// as soon as the scanner meets one more, before it has indexed them all: an
// index costs a few hundred bytes a symbol, so 400,000 tiny symbols in a
// 29 MB body would take over 100 MB.
const MaxSymbols = 50_000

// Symbol is what lookups need of one entry of the symbols array. Raw is
// Binance's object exactly as received (a sub-slice of the snapshot's Body);
// it must not be modified.
type Symbol struct {
	Name       string   // "symbol"
	Status     string   // "status", or "contractStatus" on COIN-M
	BaseAsset  string   // "baseAsset"
	QuoteAsset string   // "quoteAsset"
	Perms      []string // "permissions" and every entry of "permissionSets", in order, deduplicated
	Raw        []byte
}

// Snapshot is one validated exchangeInfo answer. It is immutable and safe for
// concurrent use; the slices its methods return must not be modified.
type Snapshot struct {
	market     Market
	body       []byte
	serverTime time.Time
	fetchedAt  time.Time
	symbols    []Symbol
	index      map[string]int

	// The symbols array is body[arrOpen] == '[' … body[arrClose] == ']';
	// Answer keeps the bytes around it as they are.
	arrOpen, arrClose int

	etagOnce sync.Once
	etag     string

	gzipOnce  sync.Once
	gzipBody  []byte
	gzipReady atomic.Bool // gzipBody is set

	setsOnce sync.Once
	sets     []span // per symbol: its "permissionSets" value within Raw; see permissionSets
}

// Parse validates body as an exchangeInfo answer of market m and indexes it.
// fetchedAt is when the body was received from Binance. Parse keeps body as
// is: the caller must not modify it afterwards.
//
// It rejects, with an *InvalidError: anything that is not one complete JSON
// object (an HTML page, a body cut short, trailing data), a Binance error body
// ({"code":…,"msg":…}), a missing or non-numeric serverTime, a missing or
// empty symbols array, a second symbols key, and symbol objects without a
// name or with a name seen before.
func Parse(m Market, body []byte, fetchedAt time.Time) (*Snapshot, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("parse exchangeInfo: unknown market %q", string(m))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("empty body")
	}
	if b := bytes.TrimSpace(body); b[0] == '<' {
		return nil, invalid("HTML page, not JSON (%d bytes)", len(body))
	}
	s := &Snapshot{market: m, body: body, fetchedAt: fetchedAt}
	if err := s.scan(); err != nil {
		return nil, err
	}
	return s, nil
}

// ETag returns a strong HTTP entity tag (quoted) for b: a hash of the bytes
// alone, so every process gives the same tag for the same bytes.
// Snapshot.ETag is ETag(Body), so the answer to a full Query has the
// snapshot's ETag.
func ETag(b []byte) string {
	sum := sha256.Sum256(b)
	var tag [2 + 2*16]byte // one allocation: the string
	tag[0], tag[len(tag)-1] = '"', '"'
	hex.Encode(tag[1:len(tag)-1], sum[:16])
	return string(tag[:])
}

// Market is the market the snapshot belongs to.
func (s *Snapshot) Market() Market { return s.market }

// Body is Binance's answer exactly as received. Do not modify it.
func (s *Snapshot) Body() []byte { return s.body }

// ServerTime is Binance's serverTime field.
func (s *Snapshot) ServerTime() time.Time { return s.serverTime }

// FetchedAt is when the body was received from Binance.
func (s *Snapshot) FetchedAt() time.Time { return s.fetchedAt }

// Age is how long before now the body was received from Binance; never
// negative (a snapshot dated after now, by another host's clock, is age 0).
func (s *Snapshot) Age(now time.Time) time.Duration { return max(now.Sub(s.fetchedAt), 0) }

// ETag is a strong HTTP entity tag (quoted) derived from Body alone, so every
// process that holds the same bytes gives the same tag. It is computed on
// first use, once: hashing the body costs about as much as Parse itself.
func (s *Snapshot) ETag() string {
	s.etagOnce.Do(func() { s.etag = ETag(s.body) })
	return s.etag
}

// Len is the number of symbols.
func (s *Snapshot) Len() int { return len(s.symbols) }

// Symbols lists the symbols in Binance's order. Do not modify the slice.
func (s *Snapshot) Symbols() []Symbol { return s.symbols }

// Lookup returns the symbol with the exact name (Binance names are upper case).
func (s *Snapshot) Lookup(name string) (Symbol, bool) {
	i, ok := s.index[name]
	if !ok {
		return Symbol{}, false
	}
	return s.symbols[i], true
}

// Size estimates the snapshot's memory in bytes: the body, the index, and
// room for the gzip copy (about an eighth of the body for exchangeInfo).
func (s *Snapshot) Size() int64 {
	const perSymbol = 256 // Symbol struct, map entry, field strings
	return int64(len(s.body)) + int64(len(s.body))/8 + int64(len(s.symbols))*perSymbol
}

// GzipLevel is the compression level of [Snapshot.Gzip]. A snapshot is
// compressed once and served many times, so the smallest answer wins:
// measured in bench/compare (spot, same run), compress/gzip level 9 gives
// 79,872 bytes in 23 ms, level 6 85,046 in 13 ms, level 1 184,747 in 6 ms;
// klauspost/compress is no smaller at any level. l2 stores the same bytes.
const GzipLevel = gzip.BestCompression

// Gzip returns Body gzip-compressed (one gzip member, at GzipLevel),
// computed once on first use unless UseGzip gave it.
func (s *Snapshot) Gzip() []byte {
	s.gzipOnce.Do(func() {
		var buf bytes.Buffer
		buf.Grow(len(s.body) / 16)
		zw, _ := gzip.NewWriterLevel(&buf, GzipLevel)
		zw.Write(s.body) // writes to a bytes.Buffer do not fail
		zw.Close()
		s.gzipBody = bytes.Clone(buf.Bytes()) // not the room Grow guessed
		s.gzipReady.Store(true)
	})
	return s.gzipBody
}

// GzipIfReady returns what Gzip returns if it is ready (computed, or given
// by UseGzip), without waiting or compressing; ok is false while it is not.
func (s *Snapshot) GzipIfReady() (gz []byte, ok bool) {
	if !s.gzipReady.Load() {
		return nil, false
	}
	return s.gzipBody, true
}

// UseGzip makes gz what Gzip returns, saving the compression, unless Gzip
// has run already; it reports whether gz was taken. gz must be one gzip
// member that inflates to exactly Body, such as l2.Envelope.BodyGzip, which
// was checked so when it was read; UseGzip does not check it again.
func (s *Snapshot) UseGzip(gz []byte) bool {
	used := false
	s.gzipOnce.Do(func() {
		s.gzipBody, used = gz, true
		s.gzipReady.Store(true)
	})
	return used
}
