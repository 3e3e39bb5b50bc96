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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
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
	etag       string
	symbols    []Symbol
	index      map[string]int

	// The symbols array is body[arrOpen] == '[' … body[arrClose] == ']';
	// Answer keeps the bytes around it as they are.
	arrOpen, arrClose int

	gzipOnce sync.Once
	gzipBody []byte

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
	s.etag = ETag(body)
	return s, nil
}

// ETag returns a strong HTTP entity tag (quoted) for b: a hash of the bytes
// alone, so every process gives the same tag for the same bytes. Parse uses
// it for Body, so the answer to a full Query has the snapshot's ETag.
func ETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// scan walks the top-level object once, keeping serverTime and the span of
// every symbol object within body.
func (s *Snapshot) scan() error {
	dec := json.NewDecoder(bytes.NewReader(s.body))
	dec.UseNumber()
	if err := expectDelim(dec, '{', s.body); err != nil {
		return err
	}
	var (
		sawSymbols, sawServerTime bool
		errCode                   *json.Number
		errMsg                    string
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntaxError(err, s.body)
		}
		key, _ := tok.(string)
		switch key {
		case "symbols":
			if sawSymbols {
				return invalid("symbols appears twice")
			}
			sawSymbols = true
			if err := s.scanSymbols(dec); err != nil {
				return err
			}
		case "serverTime":
			var n json.Number
			if err := dec.Decode(&n); err != nil {
				if isSyntax(err) {
					return syntaxError(err, s.body)
				}
				return invalid("serverTime is not a number")
			}
			ms, err := n.Int64()
			if err != nil || ms <= 0 {
				return invalid("serverTime %s is not a positive integer", n)
			}
			sawServerTime = true
			s.serverTime = time.UnixMilli(ms).UTC()
		case "code":
			var n json.Number
			if err := dec.Decode(&n); err != nil {
				return syntaxError(err, s.body)
			}
			errCode = &n
		case "msg":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return syntaxError(err, s.body)
			}
			_ = json.Unmarshal(raw, &errMsg)
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return syntaxError(err, s.body)
			}
		}
	}
	if err := expectDelim(dec, '}', s.body); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("trailing data after the JSON object")
	}
	switch {
	case errCode != nil && !sawSymbols:
		return invalid("Binance error %s: %.200q", errCode.String(), errMsg)
	case !sawSymbols || s.symbols == nil:
		return invalid("no symbols array")
	case len(s.symbols) == 0:
		return invalid("empty symbols array")
	case !sawServerTime:
		return invalid("no serverTime")
	}
	return nil
}

func (s *Snapshot) scanSymbols(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err, s.body)
	}
	if tok == nil {
		return nil // "symbols": null
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return invalid("symbols is not an array")
	}
	s.arrOpen = int(dec.InputOffset()) - 1 // the offset just after the '[' token
	s.symbols = make([]Symbol, 0, 1024)
	s.index = make(map[string]int, 1024)
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return syntaxError(err, s.body)
		}
		// raw is a copy of the value; the same bytes end at InputOffset in body.
		end := int(dec.InputOffset())
		obj := s.body[end-len(raw) : end : end]
		sym, err := parseSymbol(obj)
		if err != nil {
			return invalid("symbols[%d]: %v", i, err)
		}
		if _, dup := s.index[sym.Name]; dup {
			return invalid("symbols[%d]: duplicate symbol %q", i, sym.Name)
		}
		s.index[sym.Name] = len(s.symbols)
		s.symbols = append(s.symbols, sym)
	}
	if err := expectDelim(dec, ']', s.body); err != nil {
		return err
	}
	s.arrClose = int(dec.InputOffset()) - 1
	return nil
}

func parseSymbol(obj []byte) (Symbol, error) {
	if len(obj) == 0 || obj[0] != '{' {
		return Symbol{}, errors.New("not an object")
	}
	// Only the name is required; the other fields are read when they have
	// the expected shape, so that a change in an optional field's form does
	// not reject a whole snapshot.
	var f struct {
		Symbol         json.RawMessage `json:"symbol"`
		Status         json.RawMessage `json:"status"`
		ContractStatus json.RawMessage `json:"contractStatus"`
		BaseAsset      json.RawMessage `json:"baseAsset"`
		QuoteAsset     json.RawMessage `json:"quoteAsset"`
		Permissions    json.RawMessage `json:"permissions"`
		PermissionSets json.RawMessage `json:"permissionSets"`
	}
	if err := json.Unmarshal(obj, &f); err != nil {
		return Symbol{}, err
	}
	sym := Symbol{Raw: obj}
	if json.Unmarshal(f.Symbol, &sym.Name) != nil || sym.Name == "" {
		return Symbol{}, errors.New("no symbol name")
	}
	_ = json.Unmarshal(f.Status, &sym.Status)
	if sym.Status == "" {
		_ = json.Unmarshal(f.ContractStatus, &sym.Status)
	}
	_ = json.Unmarshal(f.BaseAsset, &sym.BaseAsset)
	_ = json.Unmarshal(f.QuoteAsset, &sym.QuoteAsset)
	_ = json.Unmarshal(f.Permissions, &sym.Perms)
	// permissionSets is [["SPOT","MARGIN"],…] on spot and a flat list on USD-M.
	var sets [][]string
	if json.Unmarshal(f.PermissionSets, &sets) != nil {
		var flat []string
		if json.Unmarshal(f.PermissionSets, &flat) == nil {
			sets = [][]string{flat}
		}
	}
	for _, set := range sets {
		for _, p := range set {
			if !contains(sym.Perms, p) {
				sym.Perms = append(sym.Perms, p)
			}
		}
	}
	return sym, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func expectDelim(dec *json.Decoder, want json.Delim, body []byte) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err, body)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		if want == '{' {
			return invalid("not a JSON object")
		}
		return invalid("expected %q, found %v", want, tok)
	}
	return nil
}

func isSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// syntaxError turns a decoder error into an *InvalidError, telling a body cut
// short apart from one that is not JSON.
func syntaxError(err error, body []byte) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return invalid("body cut short after %d bytes", len(body))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return invalid("not JSON at byte %d: %v", se.Offset, se)
	}
	return invalid("%v", err)
}

// Market is the market the snapshot belongs to.
func (s *Snapshot) Market() Market { return s.market }

// Body is Binance's answer exactly as received. Do not modify it.
func (s *Snapshot) Body() []byte { return s.body }

// ServerTime is Binance's serverTime field.
func (s *Snapshot) ServerTime() time.Time { return s.serverTime }

// FetchedAt is when the body was received from Binance.
func (s *Snapshot) FetchedAt() time.Time { return s.fetchedAt }

// Age is how long before now the body was received from Binance.
func (s *Snapshot) Age(now time.Time) time.Duration { return now.Sub(s.fetchedAt) }

// ETag is a strong HTTP entity tag (quoted) derived from Body alone, so every
// process that holds the same bytes gives the same tag.
func (s *Snapshot) ETag() string { return s.etag }

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

// Gzip returns Body gzip-compressed, computed once on first use.
func (s *Snapshot) Gzip() []byte {
	s.gzipOnce.Do(func() {
		var buf bytes.Buffer
		buf.Grow(len(s.body) / 8)
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(s.body) // writes to a bytes.Buffer do not fail
		zw.Close()
		s.gzipBody = buf.Bytes()
	})
	return s.gzipBody
}
