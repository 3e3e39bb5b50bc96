package exchangeinfo

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/fixtures"
)

// checkAgainstReference parses body with Parse and with parseReference and
// fails unless both reject it, or both accept it with the same result.
func checkAgainstReference(t *testing.T, body []byte) {
	t.Helper()
	at := time.Unix(0, 0)
	got, err := Parse(Spot, body, at)
	want, wantErr := parseReference(Spot, body, at)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("Parse(%.200q) = %v, want %v (encoding/json reference)", body, err, wantErr)
	}
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Parse error %v does not match ErrInvalid", err)
		}
		return
	}
	if !got.serverTime.Equal(want.serverTime) || got.arrOpen != want.arrOpen || got.arrClose != want.arrClose || got.ETag() != want.ETag() {
		t.Fatalf("Parse(%.200q): serverTime %v, array [%d,%d], ETag %s; want %v, [%d,%d], %s", body,
			got.serverTime, got.arrOpen, got.arrClose, got.ETag(), want.serverTime, want.arrOpen, want.arrClose, want.ETag())
	}
	if len(got.symbols) != len(want.symbols) || len(got.index) != len(want.index) {
		t.Fatalf("Parse(%.200q): %d symbols, want %d", body, len(got.symbols), len(want.symbols))
	}
	for i, g := range got.symbols {
		w := want.symbols[i]
		if g.Name != w.Name || g.Status != w.Status || g.BaseAsset != w.BaseAsset || g.QuoteAsset != w.QuoteAsset ||
			!slices.Equal(g.Perms, w.Perms) || len(g.Raw) != len(w.Raw) || &g.Raw[0] != &w.Raw[0] {
			t.Fatalf("Parse(%.200q).symbols[%d] = %q %q %q %q %q %.40q, want %q %q %q %q %q %.40q", body, i,
				g.Name, g.Status, g.BaseAsset, g.QuoteAsset, g.Perms, g.Raw,
				w.Name, w.Status, w.BaseAsset, w.QuoteAsset, w.Perms, w.Raw)
		}
		if got.index[g.Name] != i {
			t.Fatalf("index[%q] = %d, want %d", g.Name, got.index[g.Name], i)
		}
	}
}

func TestParse_MatchesReference(t *testing.T) {
	for _, file := range []string{
		"spot_exchangeinfo.json", "usdm_exchangeinfo.json", "coinm_exchangeinfo.json",
		"usdm_exchangeinfo_2024-02-12.json", "spot_testnet_exchangeinfo_2021-07-11.json",
		"error_1121_invalid_symbol.json", "error_451_restricted_location.json",
	} {
		t.Run(file, func(t *testing.T) {
			checkAgainstReference(t, fixtures.Read(t, "binance/"+file))
		})
	}
	const head = `{"serverTime":1,"symbols":[`
	tests := []struct{ name, body string }{
		{"escaped names", head + `{"symbol":"A\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t","status":"TR\u0041DING"}]}`},
		{"lone surrogate", head + `{"symbol":"A\ud800B","baseAsset":"\udc00\ud800\u0041"}]}`},
		{"bad utf8", head + "{\"symbol\":\"A\xff\xc3\",\"quoteAsset\":\"\xe2\x82\"}]}"},
		{"folded member names", head + `{"SYMBOL":"A","Status":"HALT","BASEasset":"X","\u017fymbol":"B"}]}`},
		{"escaped member name", head + `{"symbo\u006c":"A","permi\u0073sions":["P"]}]}`},
		{"escaped top-level keys", `{"server\u0054ime":1,"symbol\u0073":[{"symbol":"A"}],"symbols\u0000":[]}`},
		{"last member wins", head + `{"symbol":"A","status":"X","symbol":"B","status":null}]}`},
		{"contractStatus", head + `{"symbol":"A","status":"","contractStatus":"TRADING"},{"symbol":"B","status":7,"contractStatus":"X"}]}`},
		{"null name", head + `{"symbol":null}]}`},
		{"empty name", head + `{"symbol":""}]}`},
		{"non-string fields", head + `{"symbol":"A","status":{},"baseAsset":[1],"quoteAsset":true,"permissions":"SPOT"}]}`},
		{"odd permissions", head + `{"symbol":"A","permissions":["SPOT",1,null,{"a":[]},"SPOT",[]]}]}`},
		{"nested sets", head + `{"symbol":"A","permissions":["SPOT"],"permissionSets":[["SPOT","MARGIN"],null,["X",null,2]]}]}`},
		{"flat sets", head + `{"symbol":"A","permissionSets":["GRID",null,"COPY","GRID"]}]}`},
		{"mixed sets", head + `{"symbol":"A","permissionSets":[["P"],"Q"]},{"symbol":"B","permissionSets":["Q",["P"]]},{"symbol":"C","permissionSets":[{},"Q"]}]}`},
		{"sets not array", head + `{"symbol":"A","permissionSets":{"a":["P"]}},{"symbol":"B","permissionSets":"P"}]}`},
		{"empty sets", head + `{"symbol":"A","permissions":[],"permissionSets":[]},{"symbol":"B","permissionSets":[[]]}]}`},
		{"spaces", " \t\r\n{ \"serverTime\" : 1 , \"symbols\" : [ { \"symbol\" : \"A\" , \"permissions\" : [ \"P\" , \"Q\" ] } , { } ] } \n"},
		{"spaces in symbol", ` {"serverTime":1,"symbols":[ {"symbol":"A"} , {"symbol" : "B" , "x" : [ ] }] } `},
		{"numbers", head + `{"symbol":"A","n":[0,-0,1.5,-2e10,3E+2,4e-3,12345678901234567890]}]}`},
		{"bad numbers", head + `{"symbol":"A","n":[01]}]}`},
		{"bad fraction", head + `{"symbol":"A","n":1.}]}`},
		{"bad exponent", head + `{"symbol":"A","n":1e}]}`},
		{"minus alone", head + `{"symbol":"A","n":-}]}`},
		{"bad literal", head + `{"symbol":"A","n":tru}]}`},
		{"bad escape", head + `{"symbol":"A\x"}]}`},
		{"short u escape", head + `{"symbol":"A\u12"}]}`},
		{"control char", head + "{\"symbol\":\"A\x01\"}]}"},
		{"trailing comma in object", head + `{"symbol":"A",}]}`},
		{"trailing comma in array", head + `{"symbol":"A"},]}`},
		{"trailing comma at top", `{"serverTime":1,"symbols":[{"symbol":"A"}],}`},
		{"missing comma", head + `{"symbol":"A" "b":1}]}`},
		{"missing colon", head + `{"symbol" "A"}]}`},
		{"wrong close", head + `{"symbol":"A"}}}`},
		{"string serverTime", `{"serverTime":"1700000000000","symbols":[{"symbol":"A"}]}`},
		{"bad string serverTime", `{"serverTime":"01","symbols":[{"symbol":"A"}]}`},
		{"float serverTime", `{"serverTime":1.5,"symbols":[{"symbol":"A"}]}`},
		{"null serverTime", `{"serverTime":null,"symbols":[{"symbol":"A"}]}`},
		{"huge serverTime", `{"serverTime":99999999999999999999,"symbols":[{"symbol":"A"}]}`},
		{"serverTime twice", `{"serverTime":1,"symbols":[{"symbol":"A"}],"serverTime":2}`},
		{"code and symbols", `{"code":0,"serverTime":1,"symbols":[{"symbol":"A"}]}`},
		{"bad code", `{"code":true,"serverTime":1,"symbols":[{"symbol":"A"}]}`},
		{"string code", `{"code":"-1","msg":5}`},
		{"null code", `{"code":null,"msg":"x"}`},
		{"symbols then null", `{"serverTime":1,"symbols":null,"symbols":[{"symbol":"A"}]}`},
		{"symbols string", `{"serverTime":1,"symbols":"x"}`},
		{"trailing space", `{"serverTime":1,"symbols":[{"symbol":"A"}]}` + " \n\t"},
		{"trailing vertical tab", `{"serverTime":1,"symbols":[{"symbol":"A"}]}` + "\v"},
		{"leading nbsp", "\u00a0" + `{"serverTime":1,"symbols":[{"symbol":"A"}]}`},
		{"deep", `{"serverTime":1,"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `,"symbols":[{"symbol":"A","y":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}]}`},
		{"too deep at top", `{"serverTime":1,"x":` + strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1) + `,"symbols":[{"symbol":"A"}]}`},
		{"too deep in symbol", `{"serverTime":1,"symbols":[{"symbol":"A","y":` + strings.Repeat("{\"a\":", maxDepth) + "1" + strings.Repeat("}", maxDepth) + `}]}`},
		// Values that start as the previous symbol's did (see skipMember).
		{"repeated values", head + `{"symbol":"A","f":[{"t":1},{"u":[2]}],"o":["X","Y"]},{"symbol":"B","f":[{"t":1},{"u":[2]}],"o":["X","Y"]},{"symbol":"C","f":[{"t":1},{"u":[3]}],"o":["X"]}]}`},
		{"repeated then cut", head + `{"symbol":"A","f":[{"t":1},{"u":2}]},{"symbol":"B","f":[{"t":1},{"u":2}` + "\x00" + `]}]}`},
		{"repeated then more", head + `{"symbol":"A","f":[{"t":1}]},{"symbol":"B","f":[{"t":1}]]}]}`},
		{"repeated element then junk", head + `{"symbol":"A","f":[{"t":1},{"u":2}]},{"symbol":"B","f":[{"t":1}x,{"u":2}]}]}`},
		{"repeated whole then junk", head + `{"symbol":"A","f":{"t":[1]}},{"symbol":"B","f":{"t":[1]}}x]}`},
		{"repeated at another member", head + `{"symbol":"A","f":[{"t":1}],"g":[[1]]},{"g":[{"t":1}],"symbol":"B","f":[[1]]}]}`},
		{"repeated too deep", `{"serverTime":1,"symbols":[{"symbol":"A","y":[` + strings.Repeat("[", maxDepth-2) + strings.Repeat("]", maxDepth-2) + `]},{"symbol":"B","y":[` + strings.Repeat("[", maxDepth-2) + strings.Repeat("]", maxDepth-2) + `,` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAgainstReference(t, []byte(tt.body))
		})
	}
}

// FuzzParse_Reference holds the scanner to the encoding/json-based Parse it
// replaced, on any bytes.
func FuzzParse_Reference(f *testing.F) {
	f.Add(fixtures.Read(f, "binance/spot_testnet_exchangeinfo_2021-07-11.json"))
	f.Add(fixtures.Read(f, "binance/error_451_restricted_location.json"))
	f.Add([]byte(`{"serverTime":1,"symbols":[{"symbol":"A\u00e9","status":"TRADING","permissions":["SPOT"],"permissionSets":[["SPOT","MARGIN"]]}]}`))
	f.Add([]byte(`{"serverTime":"2","symbols":[{"SYMBOL":"A","permissionSets":["GRID",null]},{"symbol":"B","permissionSets":[["X"],"Y"]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAgainstReference(t, b)
	})
}

// spot15MB is the spot fixture grown to about 15 MB (see fixtures.Grow).
func spot15MB(tb testing.TB) []byte {
	return fixtures.Grow(tb, fixtures.Read(tb, "binance/spot_exchangeinfo.json"), 15<<20)
}

// BenchmarkParse measures Parse on each market's answer and on a generated
// 15 MB spot answer, next to its two bounds on the same bytes: encoding/json
// decoding the whole answer into typed structs (fixtures.ExchangeInfo: what
// Parse must beat), and bytes.Clone (what no parser can beat). Also
// there: the encoding/json-based Parse it replaced, and Parse followed by
// ETag, which Parse used to compute.
func BenchmarkParse(b *testing.B) {
	bodies := []struct {
		name string
		m    Market
		body []byte
	}{
		{"spot", Spot, fixtures.Read(b, "binance/spot_exchangeinfo.json")},
		{"usdm", USDM, fixtures.Read(b, "binance/usdm_exchangeinfo.json")},
		{"coinm", COINM, fixtures.Read(b, "binance/coinm_exchangeinfo.json")},
		{"spot-15MB", Spot, spot15MB(b)},
	}
	for _, bb := range bodies {
		b.Run(bb.name, func(b *testing.B) {
			b.Run("parse", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(bb.body)))
				for b.Loop() {
					if _, err := Parse(bb.m, bb.body, time.Now()); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("before-encoding-json-parse", func(b *testing.B) { // parseReference, Parse as it was
				b.ReportAllocs()
				b.SetBytes(int64(len(bb.body)))
				for b.Loop() {
					if _, err := parseReference(bb.m, bb.body, time.Now()); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parse-and-etag", func(b *testing.B) { // what Parse cost when it hashed Body
				b.ReportAllocs()
				b.SetBytes(int64(len(bb.body)))
				for b.Loop() {
					s, err := Parse(bb.m, bb.body, time.Now())
					if err != nil {
						b.Fatal(err)
					}
					_ = s.ETag()
				}
			})
			b.Run("baseline-encoding-json-full-decode", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(bb.body)))
				for b.Loop() {
					var info fixtures.ExchangeInfo
					if err := json.Unmarshal(bb.body, &info); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("limit-bytes-clone", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(bb.body)))
				for b.Loop() {
					_ = bytes.Clone(bb.body)
				}
			})
		})
	}
}

// TestPlainEnd checks the word-at-a-time search against the byte table: every
// byte value at every offset of a word, after plain bytes and before any.
func TestPlainEnd(t *testing.T) {
	slow := func(b []byte, j int) int {
		for j < len(b) && plainByte[b[j]] {
			j++
		}
		return j
	}
	for c := 0; c < 256; c++ {
		for at := 0; at < 20; at++ {
			for _, after := range []byte{'a', '"', 0x00, 0xff, 0x1f, 0x80} {
				b := bytes.Repeat([]byte{'x'}, at)
				b = append(b, byte(c))
				b = append(b, bytes.Repeat([]byte{after}, 9)...)
				for j := 0; j <= min(at, 3); j++ {
					if got, want := plainEnd(b, j), slow(b, j); got != want {
						t.Fatalf("plainEnd(%q, %d) = %d, want %d", b, j, got, want)
					}
				}
			}
		}
	}
}
