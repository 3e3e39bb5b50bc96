package exchangeinfo_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// reference decodes a fixture with encoding/json, independently of Parse.
type reference struct {
	ServerTime int64             `json:"serverTime"`
	Symbols    []json.RawMessage `json:"symbols"`
}

func TestParse_Fixtures(t *testing.T) {
	tests := []struct {
		file   string
		market exchangeinfo.Market
		count  int // from SOURCES.md
	}{
		{"spot_exchangeinfo.json", exchangeinfo.Spot, 2292},
		{"usdm_exchangeinfo.json", exchangeinfo.USDM, 660},
		{"coinm_exchangeinfo.json", exchangeinfo.COINM, 62},
		{"usdm_exchangeinfo_2024-02-12.json", exchangeinfo.USDM, 276},
		{"spot_testnet_exchangeinfo_2021-07-11.json", exchangeinfo.Spot, 20},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := fixtures.Read(t, "binance/"+tt.file)
			at := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
			s, err := exchangeinfo.Parse(tt.market, body, at)
			if err != nil {
				t.Fatalf("Parse(%s) = %v, want nil", tt.file, err)
			}
			var ref reference
			if err := json.Unmarshal(body, &ref); err != nil {
				t.Fatal(err)
			}
			if s.Len() != tt.count || len(ref.Symbols) != tt.count {
				t.Fatalf("Len() = %d (encoding/json: %d), want %d", s.Len(), len(ref.Symbols), tt.count)
			}
			if !bytes.Equal(s.Body(), body) {
				t.Error("Body() differs from the bytes given to Parse")
			}
			if got, want := s.ServerTime().UnixMilli(), ref.ServerTime; got != want {
				t.Errorf("ServerTime() = %d, want %d", got, want)
			}
			if !s.FetchedAt().Equal(at) || s.Market() != tt.market {
				t.Errorf("FetchedAt(), Market() = %v, %v; want %v, %v", s.FetchedAt(), s.Market(), at, tt.market)
			}
			for i, raw := range ref.Symbols {
				var f struct {
					Symbol, Status, ContractStatus, BaseAsset, QuoteAsset string
				}
				if err := json.Unmarshal(raw, &f); err != nil {
					t.Fatal(err)
				}
				got := s.Symbols()[i]
				// Raw is the object byte for byte as it stands in the body.
				if !bytes.Equal(got.Raw, raw) {
					t.Fatalf("Symbols()[%d].Raw = %.60q…, want %.60q…", i, got.Raw, raw)
				}
				want := f.Status
				if want == "" {
					want = f.ContractStatus
				}
				if got.Name != f.Symbol || got.Status != want || got.BaseAsset != f.BaseAsset || got.QuoteAsset != f.QuoteAsset {
					t.Fatalf("Symbols()[%d] = %s/%s/%s/%s, want %s/%s/%s/%s", i,
						got.Name, got.Status, got.BaseAsset, got.QuoteAsset, f.Symbol, want, f.BaseAsset, f.QuoteAsset)
				}
				if l, ok := s.Lookup(f.Symbol); !ok || l.Name != f.Symbol {
					t.Fatalf("Lookup(%q) = %v, %v; want it found", f.Symbol, l.Name, ok)
				}
			}
		})
	}
}

func TestParse_Permissions(t *testing.T) {
	spot, err := exchangeinfo.Parse(exchangeinfo.Spot, fixtures.Read(t, "binance/spot_exchangeinfo.json"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	eth, _ := spot.Lookup("ETHBTC")
	if !contains(eth.Perms, "SPOT") || !contains(eth.Perms, "MARGIN") {
		t.Errorf("ETHBTC perms = %v, want SPOT and MARGIN among them", eth.Perms)
	}
	usdm, err := exchangeinfo.Parse(exchangeinfo.USDM, fixtures.Read(t, "binance/usdm_exchangeinfo.json"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	btc, _ := usdm.Lookup("BTCUSDT")
	// USD-M lists permissionSets as a flat list such as ["GRID","COPY","RPI"].
	if !contains(btc.Perms, "GRID") {
		t.Errorf("usdm BTCUSDT perms = %v, want GRID among them", btc.Perms)
	}
	if _, ok := usdm.Lookup("NOSUCHSYMBOL"); ok {
		t.Error("Lookup(NOSUCHSYMBOL) found, want not found")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestParse_Rejects(t *testing.T) {
	good := fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
	tests := []struct {
		name, body, reason string
	}{
		{"empty", "", "empty body"},
		{"spaces", "  \n", "empty body"},
		{"html", "<html><body><h1>502 Bad Gateway</h1></body></html>", "HTML"},
		{"html after space", "\n <!DOCTYPE html><html></html>", "HTML"},
		{"cut short", string(good[:len(good)/2]), "cut short"},
		{"cut before last brace", string(good[:len(good)-1]), "cut short"},
		{"not json", "exchangeInfo", "not JSON"},
		{"array", `[{"symbol":"BTCUSDT"}]`, "not a JSON object"},
		{"string", `"hello"`, "not a JSON object"},
		{"empty object", `{}`, "no symbols"},
		{"null symbols", `{"serverTime":1,"symbols":null}`, "no symbols"},
		{"empty symbols", `{"serverTime":1,"symbols":[]}`, "empty symbols"},
		{"symbols not array", `{"serverTime":1,"symbols":{"a":1}}`, "not an array"},
		{"symbol not object", `{"serverTime":1,"symbols":["BTCUSDT"]}`, "symbols[0]: not an object"},
		{"symbol without name", `{"serverTime":1,"symbols":[{"symbol":"A"},{"status":"TRADING"}]}`, "symbols[1]: no symbol name"},
		{"symbol name not string", `{"serverTime":1,"symbols":[{"symbol":7}]}`, "symbols[0]"},
		{"duplicate symbol", `{"serverTime":1,"symbols":[{"symbol":"A"},{"symbol":"A"}]}`, "duplicate"},
		{"symbols twice", `{"serverTime":1,"symbols":[{"symbol":"A"}],"symbols":[{"symbol":"B"}]}`, "symbols appears twice"},
		{"no serverTime", `{"symbols":[{"symbol":"A"}]}`, "no serverTime"},
		{"bad serverTime", `{"serverTime":"x","symbols":[{"symbol":"A"}]}`, "serverTime"},
		{"negative serverTime", `{"serverTime":-5,"symbols":[{"symbol":"A"}]}`, "serverTime"},
		{"trailing data", `{"serverTime":1,"symbols":[{"symbol":"A"}]} {}`, "trailing"},
		{"binance error", string(fixtures.Read(t, "binance/error_1121_invalid_symbol.json")), "Binance error -1121"},
		{"restricted location", string(fixtures.Read(t, "binance/error_451_restricted_location.json")), "Binance error 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := exchangeinfo.Parse(exchangeinfo.Spot, []byte(tt.body), time.Now())
			if s != nil || err == nil {
				t.Fatalf("Parse(%.40q) = %v, %v; want nil and an error", tt.body, s, err)
			}
			if !errors.Is(err, exchangeinfo.ErrInvalid) {
				t.Errorf("Parse(%.40q) error %v does not match ErrInvalid", tt.body, err)
			}
			var ie *exchangeinfo.InvalidError
			if !errors.As(err, &ie) || !strings.Contains(ie.Reason, tt.reason) {
				t.Errorf("Parse(%.40q) = %v, want a reason containing %q", tt.body, err, tt.reason)
			}
		})
	}
}

func TestParse_UnknownMarket(t *testing.T) {
	if _, err := exchangeinfo.Parse("options", []byte(`{"serverTime":1,"symbols":[{"symbol":"A"}]}`), time.Now()); err == nil {
		t.Error("Parse(options) = nil error, want an error")
	}
}

func TestSnapshot_ETag(t *testing.T) {
	body := fixtures.Read(t, "binance/coinm_exchangeinfo.json")
	a, _ := exchangeinfo.Parse(exchangeinfo.COINM, body, time.Now())
	b, _ := exchangeinfo.Parse(exchangeinfo.COINM, bytes.Clone(body), time.Now().Add(time.Hour))
	if a.ETag() != b.ETag() {
		t.Errorf("ETag of the same bytes = %s and %s, want equal", a.ETag(), b.ETag())
	}
	if !strings.HasPrefix(a.ETag(), `"`) || !strings.HasSuffix(a.ETag(), `"`) || len(a.ETag()) < 10 {
		t.Errorf("ETag() = %s, want a quoted strong tag", a.ETag())
	}
	changed := bytes.Replace(body, []byte(`"BTCUSD_PERP"`), []byte(`"BTCUSD_PERQ"`), 1)
	c, err := exchangeinfo.Parse(exchangeinfo.COINM, changed, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.ETag() == a.ETag() {
		t.Error("ETag unchanged after a one-byte change of the body")
	}
}

func TestSnapshot_Gzip(t *testing.T) {
	body := fixtures.Read(t, "binance/usdm_exchangeinfo_2024-02-12.json")
	s, _ := exchangeinfo.Parse(exchangeinfo.USDM, body, time.Now())
	z := s.Gzip()
	if len(z) == 0 || len(z) >= len(body) {
		t.Fatalf("len(Gzip()) = %d, want 0 < n < %d", len(z), len(body))
	}
	if got := gunzip(t, z); !bytes.Equal(got, body) {
		t.Error("gunzip(Gzip()) differs from Body()")
	}
	if &s.Gzip()[0] != &z[0] {
		t.Error("Gzip() computed twice, want once")
	}
}

func TestSnapshot_GzipIfReady(t *testing.T) {
	body := fixtures.Read(t, "binance/usdm_exchangeinfo_2024-02-12.json")
	s, _ := exchangeinfo.Parse(exchangeinfo.USDM, body, time.Now())
	if gz, ok := s.GzipIfReady(); ok || gz != nil {
		t.Fatalf("GzipIfReady() before Gzip = %d bytes, %v; want nil, false", len(gz), ok)
	}
	z := s.Gzip()
	if gz, ok := s.GzipIfReady(); !ok || len(gz) == 0 || &gz[0] != &z[0] {
		t.Errorf("GzipIfReady() after Gzip = %d bytes, %v; want Gzip's bytes, true", len(gz), ok)
	}

	given := []byte("given")
	s2, _ := exchangeinfo.Parse(exchangeinfo.USDM, body, time.Now())
	s2.UseGzip(given)
	if gz, ok := s2.GzipIfReady(); !ok || string(gz) != "given" {
		t.Errorf("GzipIfReady() after UseGzip = %q, %v; want the bytes given, true", gz, ok)
	}

	// Concurrent with the compression (run with -race): never a partial answer.
	s3, _ := exchangeinfo.Parse(exchangeinfo.USDM, body, time.Now())
	done := make(chan struct{})
	go func() { s3.Gzip(); close(done) }()
	for {
		gz, ok := s3.GzipIfReady()
		if ok {
			if !bytes.Equal(gunzip(t, gz), body) {
				t.Fatal("GzipIfReady() during Gzip: ok, but not the body's gzip")
			}
			break
		}
		select {
		case <-done:
			if _, ok := s3.GzipIfReady(); !ok {
				t.Fatal("GzipIfReady() after Gzip returned = false, want true")
			}
		default:
		}
	}
}

func TestSnapshot_UseGzip(t *testing.T) {
	body := fixtures.Read(t, "binance/coinm_exchangeinfo.json")
	s, _ := exchangeinfo.Parse(exchangeinfo.COINM, body, time.Now())
	given := []byte("given") // not checked: the caller vouches for it
	if !s.UseGzip(given) {
		t.Fatal("UseGzip before Gzip = false, want true")
	}
	if got := s.Gzip(); &got[0] != &given[0] {
		t.Errorf("Gzip() = %q, want the bytes given to UseGzip", got)
	}

	s2, _ := exchangeinfo.Parse(exchangeinfo.COINM, body, time.Now())
	z := s2.Gzip()
	if s2.UseGzip(given) {
		t.Error("UseGzip after Gzip = true, want false")
	}
	if got := s2.Gzip(); &got[0] != &z[0] {
		t.Error("UseGzip after Gzip replaced the gzip")
	}
}

func TestParseMarket(t *testing.T) {
	tests := []struct {
		in   string
		want exchangeinfo.Market
		ok   bool
	}{
		{"spot", exchangeinfo.Spot, true},
		{" USDM ", exchangeinfo.USDM, true},
		{"coinm", exchangeinfo.COINM, true},
		{"options", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := exchangeinfo.ParseMarket(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseMarket(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	for _, m := range exchangeinfo.Markets() {
		if m.Path() == "" || !strings.HasPrefix(m.DefaultBaseURL(), "https://") {
			t.Errorf("%s: Path() = %q, DefaultBaseURL() = %q", m, m.Path(), m.DefaultBaseURL())
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(fixtures.Read(f, "binance/spot_testnet_exchangeinfo_2021-07-11.json"))
	f.Add(fixtures.Read(f, "binance/error_1121_invalid_symbol.json"))
	f.Add([]byte(`{"serverTime":1,"symbols":[{"symbol":"A","status":"TRADING","permissionSets":[["SPOT"]]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := exchangeinfo.Parse(exchangeinfo.Spot, b, time.Unix(0, 0))
		if err != nil {
			if !errors.Is(err, exchangeinfo.ErrInvalid) {
				t.Fatalf("Parse error %v does not match ErrInvalid", err)
			}
			return // rejecting input is fine; panicking is not
		}
		if !json.Valid(b) {
			t.Fatalf("Parse accepted invalid JSON %q", b)
		}
		for i, sym := range s.Symbols() {
			if !json.Valid(sym.Raw) || sym.Name == "" {
				t.Fatalf("Symbols()[%d] = %q (Raw %q): want a name and valid JSON", i, sym.Name, sym.Raw)
			}
			if got, ok := s.Lookup(sym.Name); !ok || got.Name != sym.Name {
				t.Fatalf("Lookup(%q) = %v, %v", sym.Name, got.Name, ok)
			}
		}
		// Every accepted snapshot can answer a query that rewrites objects.
		hidden, err := s.Answer(exchangeinfo.Query{HidePermissionSets: true})
		if err != nil || !json.Valid(hidden) {
			t.Fatalf("Answer(showPermissionSets=false) = %.100q, %v; want valid JSON", hidden, err)
		}
		// A snapshot survives a round trip through its own bytes.
		again, err := exchangeinfo.Parse(exchangeinfo.Spot, bytes.Clone(s.Body()), time.Unix(0, 0))
		if err != nil {
			t.Fatalf("Parse(Body()) = %v, want nil", err)
		}
		if again.ETag() != s.ETag() || again.Len() != s.Len() {
			t.Fatalf("Parse(Body()) has %d symbols, ETag %s; want %d, %s", again.Len(), again.ETag(), s.Len(), s.ETag())
		}
	})
}

func gunzip(t *testing.T, z []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
