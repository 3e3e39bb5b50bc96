package exchangeinfo

// The encoding/json-based Parse that the scanner in scan.go replaced, kept as
// the reference the scanner is tested against (FuzzParse_Reference): same
// decision on every input, same serverTime, spans and fields on accept.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// parseReference is Parse as it was, with the scan below.
func parseReference(m Market, body []byte, fetchedAt time.Time) (*Snapshot, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("empty body")
	}
	if b := bytes.TrimSpace(body); b[0] == '<' {
		return nil, invalid("HTML page, not JSON (%d bytes)", len(body))
	}
	s := &Snapshot{market: m, body: body, fetchedAt: fetchedAt}
	if err := s.refScan(); err != nil {
		return nil, err
	}
	return s, nil
}

// refScan walks the top-level object once, keeping serverTime and the span of
// every symbol object within body.
func (s *Snapshot) refScan() error {
	dec := json.NewDecoder(bytes.NewReader(s.body))
	dec.UseNumber()
	if err := refExpectDelim(dec, '{', s.body); err != nil {
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
			return refSyntaxError(err, s.body)
		}
		key, _ := tok.(string)
		switch key {
		case "symbols":
			if sawSymbols {
				return invalid("symbols appears twice")
			}
			sawSymbols = true
			if err := s.refScanSymbols(dec); err != nil {
				return err
			}
		case "serverTime":
			var n json.Number
			if err := dec.Decode(&n); err != nil {
				if refIsSyntax(err) {
					return refSyntaxError(err, s.body)
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
				return refSyntaxError(err, s.body)
			}
			errCode = &n
		case "msg":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return refSyntaxError(err, s.body)
			}
			_ = json.Unmarshal(raw, &errMsg)
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return refSyntaxError(err, s.body)
			}
		}
	}
	if err := refExpectDelim(dec, '}', s.body); err != nil {
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

func (s *Snapshot) refScanSymbols(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return refSyntaxError(err, s.body)
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
			return refSyntaxError(err, s.body)
		}
		// raw is a copy of the value; the same bytes end at InputOffset in body.
		end := int(dec.InputOffset())
		obj := s.body[end-len(raw) : end : end]
		sym, err := refParseSymbol(obj)
		if err != nil {
			return invalid("symbols[%d]: %v", i, err)
		}
		if _, dup := s.index[sym.Name]; dup {
			return invalid("symbols[%d]: duplicate symbol %q", i, sym.Name)
		}
		s.index[sym.Name] = len(s.symbols)
		s.symbols = append(s.symbols, sym)
	}
	if err := refExpectDelim(dec, ']', s.body); err != nil {
		return err
	}
	s.arrClose = int(dec.InputOffset()) - 1
	return nil
}

func refParseSymbol(obj []byte) (Symbol, error) {
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
			if !refContains(sym.Perms, p) {
				sym.Perms = append(sym.Perms, p)
			}
		}
	}
	return sym, nil
}

func refContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func refExpectDelim(dec *json.Decoder, want json.Delim, body []byte) error {
	tok, err := dec.Token()
	if err != nil {
		return refSyntaxError(err, body)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		if want == '{' {
			return invalid("not a JSON object")
		}
		return invalid("expected %q, found %v", want, tok)
	}
	return nil
}

func refIsSyntax(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// syntaxError turns a decoder error into an *InvalidError, telling a body cut
// short apart from one that is not JSON.
func refSyntaxError(err error, body []byte) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return invalid("body cut short after %d bytes", len(body))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return invalid("not JSON at byte %d: %v", se.Offset, se)
	}
	return invalid("%v", err)
}
