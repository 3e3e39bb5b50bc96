package fetchtest

import (
	"encoding/json"
	"testing"
)

func TestGrow(t *testing.T) {
	body := Fixture(t, "binance/spot_exchangeinfo.json")
	const size = 15 << 20
	big := Grow(t, body, size)
	if len(big) < size || len(big) > size+8<<10 {
		t.Fatalf("len = %d, want in [%d, %d]", len(big), size, size+8<<10)
	}
	type answer struct {
		Timezone   string `json:"timezone"`
		ServerTime int64  `json:"serverTime"`
		Symbols    []struct {
			Symbol string `json:"symbol"`
			Status string `json:"status"`
		} `json:"symbols"`
	}
	var small, large answer
	if err := json.Unmarshal(body, &small); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(big, &large); err != nil {
		t.Fatalf("grown body is not JSON: %v", err)
	}
	if large.Timezone != small.Timezone || large.ServerTime != small.ServerTime {
		t.Errorf("top-level fields changed: %q %d", large.Timezone, large.ServerTime)
	}
	if len(large.Symbols) <= 3*len(small.Symbols) {
		t.Fatalf("%d symbols, want > 3 × %d", len(large.Symbols), len(small.Symbols))
	}
	seen := make(map[string]bool, len(large.Symbols))
	for i, s := range large.Symbols {
		if seen[s.Symbol] {
			t.Fatalf("symbol %d: %q repeated", i, s.Symbol)
		}
		seen[s.Symbol] = true
		if want := small.Symbols[i%len(small.Symbols)].Status; s.Status != want {
			t.Fatalf("symbol %d (%s): status %q, want %q", i, s.Symbol, s.Status, want)
		}
	}
	if got := large.Symbols[len(small.Symbols)].Symbol; got != small.Symbols[0].Symbol+"R" {
		t.Errorf("first copy named %q, want %q", got, small.Symbols[0].Symbol+"R")
	}
	if got := string(big[len(big)-10:]); got != string(body[len(body)-10:]) {
		t.Errorf("tail %q, want %q", got, body[len(body)-10:])
	}
}

func TestGrow_rejects(t *testing.T) {
	for _, body := range []string{
		`not json`,
		`{"symbols":[]}`,
		`{"symbols": [{"symbol":"A"}]}`,
		`{"symbols":[{"symbol":"A"} ,{"symbol":"B"}]}`,
		`{"symbols":[{"status":"TRADING"}]}`,
	} {
		if _, err := grow([]byte(body), 1000); err == nil {
			t.Errorf("grow(%s): no error", body)
		}
	}
}
