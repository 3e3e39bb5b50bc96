package compare

import (
	"bytes"
	stdgzip "compress/gzip"
	stdjson "encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// TestReference checks that the typed model really covers the answers: the
// counts and a few values known from testdata/binance/SOURCES.md, and no
// member of a symbol or filter object that fixtures.ExchangeInfo lacks.
func TestReference(t *testing.T) {
	spot := inputs[0].reference(t)
	if got := len(spot.Symbols); got != 2292 {
		t.Errorf("spot: %d symbols, want 2292", got)
	}
	if spot.ServerTime != 1694185561976 || spot.Timezone != "UTC" || len(spot.RateLimits) != 4 {
		t.Errorf("spot: serverTime %d, timezone %q, %d rate limits", spot.ServerTime, spot.Timezone, len(spot.RateLimits))
	}
	if spot.ExchangeFilters == nil || len(spot.ExchangeFilters) != 0 {
		t.Errorf("spot: exchangeFilters = %#v, want an empty, non-nil slice", spot.ExchangeFilters)
	}
	eth := spot.Symbols[0]
	if eth.Symbol != "ETHBTC" || eth.Filters[0].TickSize != "0.00001000" || eth.Filters[4].MaxTrailingBelowDelta != 2000 || !eth.Filters[6].ApplyMinToMarket {
		t.Errorf("spot: first symbol decoded as %+v", eth)
	}
	usdm := inputs[1].reference(t)
	if got := len(usdm.Symbols); got != 660 || usdm.FuturesType != "U_MARGINED" || len(usdm.Assets) != 9 {
		t.Errorf("usdm: %d symbols, futuresType %q, %d assets", got, usdm.FuturesType, len(usdm.Assets))
	}
	if usdm.Symbols[0].ContractType != "PERPETUAL" || usdm.Symbols[0].MarginAsset != "USDT" ||
		!reflect.DeepEqual(usdm.Symbols[0].PermissionSets, []any{"GRID", "COPY", "RPI"}) {
		t.Errorf("usdm: first symbol decoded as %+v", usdm.Symbols[0])
	}
	coinm := inputs[2].reference(t)
	if got := len(coinm.Symbols); got != 62 || coinm.Symbols[0].ContractStatus == "" || coinm.Symbols[0].ContractSize == 0 {
		t.Errorf("coinm: %d symbols, first %+v", got, coinm.Symbols[0])
	}

	// Every member name in the answers must be a field of the model.
	known := func(v any) map[string]bool {
		m := map[string]bool{}
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := bytes.Cut([]byte(typ.Field(i).Tag.Get("json")), []byte(","))
			m[string(name)] = true
		}
		return m
	}
	topKnown, symKnown, filterKnown := known(fixtures.ExchangeInfo{}), known(fixtures.Symbol{}), known(fixtures.Filter{})
	for _, in := range inputs[:3] {
		var top map[string]any
		if err := stdjson.Unmarshal(in.body(t), &top); err != nil {
			t.Fatal(err)
		}
		for k := range top {
			if !topKnown[k] {
				t.Errorf("%s: top-level %q is not in fixtures.ExchangeInfo", in.name, k)
			}
		}
		for _, s := range top["symbols"].([]any) {
			for k, v := range s.(map[string]any) {
				if !symKnown[k] {
					t.Errorf("%s: symbol member %q is not in Symbol", in.name, k)
				}
				if k == "filters" {
					for _, f := range v.([]any) {
						for fk := range f.(map[string]any) {
							if !filterKnown[fk] {
								t.Errorf("%s: filter member %q is not in Filter", in.name, fk)
							}
						}
					}
				}
			}
		}
	}
}

// TestLibrariesAgree decodes every input with every library and requires the
// very value encoding/json decodes.
func TestLibrariesAgree(t *testing.T) {
	for _, in := range inputs {
		want := in.reference(t)
		for _, c := range Codecs[1:] {
			t.Run(c.Name+"/"+in.name, func(t *testing.T) {
				got := new(fixtures.ExchangeInfo)
				if err := c.Unmarshal(in.body(t), got); err != nil {
					t.Fatalf("Unmarshal: %v", err)
				}
				if err := diff(want, got); err != nil {
					t.Fatalf("decodes differently from encoding/json: %v", err)
				}
			})
		}
	}
}

// TestValid checks each library's validity-only pass on every input and on
// the same input cut short.
func TestValid(t *testing.T) {
	for _, in := range inputs {
		body := in.body(t)
		for _, c := range Codecs {
			if c.Valid == nil {
				continue
			}
			if !c.Valid(body) {
				t.Errorf("%s: %s says the answer is not valid JSON", c.Name, in.name)
			}
			if c.Valid(body[:len(body)-1]) {
				t.Errorf("%s: %s cut short by one byte passes as valid", c.Name, in.name)
			}
		}
	}
}

// TestEncodeRoundTrip encodes the reference value with every library and
// requires encoding/json to decode each output back to that value, and the
// output to be the bytes encoding/json writes.
func TestEncodeRoundTrip(t *testing.T) {
	for _, in := range inputs {
		want := in.reference(t)
		stdOut, err := Codecs[0].Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range Codecs {
			t.Run(c.Name+"/"+in.name, func(t *testing.T) {
				out, err := c.Marshal(want)
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				got := new(fixtures.ExchangeInfo)
				if err := Codecs[0].Unmarshal(out, got); err != nil {
					t.Fatalf("encoding/json cannot decode the output: %v", err)
				}
				if err := diff(want, got); err != nil {
					t.Fatalf("round trip changes the value: %v", err)
				}
				// The answers hold no '<', '>' or '&', so escaping HTML
				// or not makes no difference: every library must write
				// the same bytes, or the encode benchmarks would compare
				// different work.
				if !bytes.Equal(out, stdOut) {
					t.Errorf("%d bytes, not the same as encoding/json's %d", len(out), len(stdOut))
				}
			})
		}
	}
}

// TestParseAgrees checks the project's scanner against the decoded value:
// the same symbols in the same order, with the same status, assets and
// permissions.
func TestParseAgrees(t *testing.T) {
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			want := in.reference(t)
			snap, err := exchangeinfo.Parse(in.market, in.body(t), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if snap.Len() != len(want.Symbols) || snap.ServerTime().UnixMilli() != want.ServerTime {
				t.Fatalf("Parse: %d symbols, serverTime %v; encoding/json: %d, %d",
					snap.Len(), snap.ServerTime(), len(want.Symbols), want.ServerTime)
			}
			for i, got := range snap.Symbols() {
				w := want.Symbols[i]
				status := w.Status
				if in.market == exchangeinfo.COINM {
					status = w.ContractStatus
				}
				perms := slices.Clone(w.Permissions)
				for _, p := range flatten(w.PermissionSets) {
					if !slices.Contains(perms, p) {
						perms = append(perms, p)
					}
				}
				if got.Name != w.Symbol || got.Status != status || got.BaseAsset != w.BaseAsset ||
					got.QuoteAsset != w.QuoteAsset || !slices.Equal(got.Perms, perms) {
					t.Fatalf("symbol %d: Parse %+v; encoding/json %q %q %q %q %q", i,
						got, w.Symbol, status, w.BaseAsset, w.QuoteAsset, perms)
				}
			}
		})
	}
}

// TestComparisonCatchesDifference makes sure diff is not blind: one changed
// filter field, one missing element, one nil-versus-empty slice.
func TestComparisonCatchesDifference(t *testing.T) {
	want := inputs[0].reference(t)
	for name, change := range map[string]func(*fixtures.ExchangeInfo){
		"filter field":        func(v *fixtures.ExchangeInfo) { v.Symbols[100].Filters[2].Limit++ },
		"missing symbol":      func(v *fixtures.ExchangeInfo) { v.Symbols = v.Symbols[:len(v.Symbols)-1] },
		"nil exchangeFilters": func(v *fixtures.ExchangeInfo) { v.ExchangeFilters = nil },
	} {
		got := new(fixtures.ExchangeInfo)
		if err := Codecs[0].Unmarshal(inputs[0].body(t), got); err != nil {
			t.Fatal(err)
		}
		if err := diff(want, got); err != nil {
			t.Fatalf("%s: a fresh decode differs: %v", name, err)
		}
		change(got)
		if diff(want, got) == nil {
			t.Errorf("%s: diff misses the change", name)
		}
	}
}

// TestGzipRoundTrip compresses every input with both libraries at every
// level benchmarked and requires both readers to give back the input.
func TestGzipRoundTrip(t *testing.T) {
	for _, in := range inputs {
		body := in.body(t)
		for _, z := range gzippers {
			for _, level := range gzipLevels {
				gz := z.compress(body, level)
				for _, r := range gunzippers {
					out, err := r.decompress(gz, len(body))
					if err != nil {
						t.Fatalf("%s level %d on %s, read by %s: %v", z.name, level, in.name, r.name, err)
					}
					if !bytes.Equal(out, body) {
						t.Fatalf("%s level %d on %s, read by %s: %d bytes back, not the %d-byte input",
							z.name, level, in.name, r.name, len(out), len(body))
					}
				}
				t.Logf("%s %s level %d: %d -> %d bytes", in.name, z.name, level, len(body), len(gz))
			}
		}
	}
	// And a corrupt stream must not pass.
	gz := gzippers[0].compress(inputs[2].body(t), 6)
	gz[len(gz)/2] ^= 0xff
	for _, r := range gunzippers {
		if out, err := r.decompress(gz, 0); err == nil && bytes.Equal(out, inputs[2].body(t)) {
			t.Errorf("%s: a corrupted stream decompresses to the input", r.name)
		}
	}
}

// diff reports the first difference between want and got (its path, such
// as Symbols[5].Filters[1].MinQty, and both values), or nil.
func diff(want, got *fixtures.ExchangeInfo) error {
	if reflect.DeepEqual(want, got) {
		return nil
	}
	if where := firstDiff("", reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()); where != "" {
		return fmt.Errorf("%s", where)
	}
	return fmt.Errorf("values differ")
}

func firstDiff(path string, w, g reflect.Value) string {
	if reflect.DeepEqual(w.Interface(), g.Interface()) {
		return ""
	}
	switch w.Kind() {
	case reflect.Struct:
		for i := range w.NumField() {
			if d := firstDiff(path+"."+w.Type().Field(i).Name, w.Field(i), g.Field(i)); d != "" {
				return d
			}
		}
	case reflect.Slice:
		if w.IsNil() == g.IsNil() && w.Len() == g.Len() {
			for i := range w.Len() {
				if d := firstDiff(fmt.Sprintf("%s[%d]", path, i), w.Index(i), g.Index(i)); d != "" {
					return d
				}
			}
		}
	}
	return fmt.Sprintf("%s: want %s, got %s", strings.TrimPrefix(path, "."), short(w.Interface()), short(g.Interface()))
}

func short(v any) string {
	s := fmt.Sprintf("%#v", v)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// flatten returns the strings of a permissionSets value: a flat list
// (USD-M) or a list of lists (spot).
func flatten(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, e := range v {
			out = append(out, flatten(e)...)
		}
	}
	return out
}

// gzipper compresses with one library.
type gzipper struct {
	name     string
	compress func(body []byte, level int) []byte
}

// gunzipper decompresses with one library; size is a hint for the buffer.
type gunzipper struct {
	name       string
	decompress func(gz []byte, size int) ([]byte, error)
}

// gzipLevels are BestSpeed, DefaultCompression (6) and BestCompression.
var gzipLevels = []int{1, 6, 9}

// The writers are made the way Snapshot.Gzip makes its one: a fresh writer
// into a buffer grown beforehand (here to an eighth of the body, which every
// output fits in, so the buffer never grows again).
var gzippers = []gzipper{
	{"stdgzip", func(body []byte, level int) []byte {
		var buf bytes.Buffer
		buf.Grow(len(body) / 8)
		zw, err := stdgzip.NewWriterLevel(&buf, level)
		if err != nil {
			panic(err)
		}
		zw.Write(body)
		zw.Close()
		return buf.Bytes()
	}},
	{"klauspost", func(body []byte, level int) []byte {
		var buf bytes.Buffer
		buf.Grow(len(body) / 8)
		zw, err := kgzip.NewWriterLevel(&buf, level)
		if err != nil {
			panic(err)
		}
		zw.Write(body)
		zw.Close()
		return buf.Bytes()
	}},
}

var gunzippers = []gunzipper{
	{"stdgzip", func(gz []byte, size int) ([]byte, error) {
		zr, err := stdgzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return nil, err
		}
		return readAll(zr, size)
	}},
	{"klauspost", func(gz []byte, size int) ([]byte, error) {
		zr, err := kgzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return nil, err
		}
		return readAll(zr, size)
	}},
}

// readAll reads r to the end into a buffer of size bytes (io.Copy uses the
// reader's WriteTo where it has one, as klauspost's does).
func readAll(r io.ReadCloser, size int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(size)
	if _, err := io.Copy(&buf, r); err != nil {
		return nil, err
	}
	return buf.Bytes(), r.Close()
}
