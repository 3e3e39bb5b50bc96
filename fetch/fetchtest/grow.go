package fetchtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Grow returns an exchangeInfo answer of size bytes, give or take one symbol,
// made from body
// (a recorded answer such as Fixture(t, "binance/spot_exchangeinfo.json")):
// its symbols repeated, each copy renamed ("BTCUSDT" becomes "BTCUSDTR",
// "BTCUSDTRX", ...) so every name stays unique, and everything around the
// symbols array kept byte for byte. It stands in for Binance's live spot
// answer, which has grown well past the recorded one; benchmarks that scale
// with payload size run on both. Grow calls tb.Fatal if body has no
// non-empty top-level "symbols" array written without spaces.
func Grow(tb testing.TB, body []byte, size int) []byte {
	tb.Helper()
	out, err := grow(body, size)
	if err != nil {
		tb.Fatalf("fetchtest.Grow: %v", err)
	}
	return out
}

func grow(body []byte, size int) ([]byte, error) {
	var top struct {
		Symbols []json.RawMessage `json:"symbols"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	if len(top.Symbols) == 0 {
		return nil, fmt.Errorf("no symbols to repeat")
	}
	// The recorded answers are compact, so the array's elements follow
	// `"symbols":[` joined by commas, exactly as decoded.
	open := bytes.LastIndex(body, []byte(`"symbols":[`))
	if open < 0 {
		return nil, fmt.Errorf(`no "symbols":[ in the body`)
	}
	open += len(`"symbols":[`)
	closeAt := open
	for i, raw := range top.Symbols {
		if i > 0 {
			if closeAt >= len(body) || body[closeAt] != ',' {
				return nil, fmt.Errorf("symbols array is not compact")
			}
			closeAt++
		}
		if !bytes.HasPrefix(body[closeAt:], raw) {
			return nil, fmt.Errorf("symbols array is not compact")
		}
		closeAt += len(raw)
	}
	if closeAt >= len(body) || body[closeAt] != ']' {
		return nil, fmt.Errorf("symbols array is not compact")
	}
	names := make([][]byte, len(top.Symbols))
	for i, raw := range top.Symbols {
		var s struct {
			Symbol string `json:"symbol"`
		}
		if err := json.Unmarshal(raw, &s); err != nil || s.Symbol == "" {
			return nil, fmt.Errorf("symbol %d has no name", i)
		}
		names[i], _ = json.Marshal(s.Symbol)
	}

	var out bytes.Buffer
	out.Grow(size + len(body))
	out.Write(body[:closeAt])
	tail := len(body) - closeAt
	for round := 1; out.Len()+tail < size; round++ {
		suffix := "R" + strings.Repeat("X", round-1)
		for i, raw := range top.Symbols {
			if out.Len()+tail >= size {
				break
			}
			out.WriteByte(',')
			name := names[i]
			renamed := append(append(bytes.Clone(name[:len(name)-1]), suffix...), '"')
			out.Write(bytes.Replace(raw, name, renamed, 1))
		}
	}
	out.Write(body[closeAt:])
	return out.Bytes(), nil
}
