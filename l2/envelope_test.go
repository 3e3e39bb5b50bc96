package l2

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/fixtures"
)

func TestKeepTrailingSpace(t *testing.T) {
	tests := []struct {
		envelope string
		raw      string // as json.Unmarshal gives it
		want     string
	}{
		{`{"exchange_info":{}}`, `{}`, `{}`},
		{"{\"exchange_info\":{}\n}", `{}`, "{}\n"},
		{"{\"exchange_info\" : {} \t\r\n}  \n", `{}`, "{} \t\r\n"},
		{"{\"exchange_info\":{},\"x\":1 }", `{}`, `{}`},                       // not last
		{"{\"exchange_info\":{},\"x\":{} }", `{}`, `{}`},                      // not last, same bytes
		{"{\"Exchange_Info\":{} }", `{}`, `{}`},                               // another spelling
		{"{\"exchange_info\":{\"a\":{}} }", `{"a":{}}`, "{\"a\":{}} "},        // nested
		{"{\"exchange_info\":{\"a\":{}}, \"b\":{} }", `{"a":{}}`, `{"a":{}}`}, // suffix of another value
	}
	for _, tt := range tests {
		if got := keepTrailingSpace([]byte(tt.envelope), []byte(tt.raw)); string(got) != tt.want {
			t.Errorf("keepTrailingSpace(%q, %q) = %q, want %q", tt.envelope, tt.raw, got, tt.want)
		}
	}
}

func TestGunzipIf_limit(t *testing.T) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(make([]byte, 2<<20)) // 2 MiB of zeros: a 2 KB bomb
	zw.Close()
	if _, err := gunzipIf(buf.Bytes(), 1<<20); err == nil {
		t.Errorf("gunzipIf(2 MiB bomb, 1 MiB) = nil error, want one")
	}
	got, err := gunzipIf(buf.Bytes(), 2<<20)
	if err != nil || len(got) != 2<<20 {
		t.Errorf("gunzipIf(2 MiB, 2 MiB) = %d bytes, %v, want 2 MiB, nil", len(got), err)
	}
	// A lying ISIZE trailer is only a hint.
	b := bytes.Clone(buf.Bytes())
	copy(b[len(b)-4:], []byte{0xff, 0xff, 0xff, 0xff})
	if _, err := gunzipIf(b, 4<<20); err == nil {
		t.Errorf("gunzipIf(wrong ISIZE) = nil error, want one (gzip checks the size)")
	}
}

// TestDecodeEnvelope_layouts checks the fast split against encoding/json on
// envelopes laid out in ways encodeEnvelope does not write.
func TestDecodeEnvelope_layouts(t *testing.T) {
	const info = `{"symbols":[{"symbol":"A"}]}`
	tests := []struct {
		name, in string
		info     string // want, "" for an error
	}{
		{"as written", `{"market":"spot","fetched_at":"2025-12-24T07:49:09Z","server_time":1,"etag":"e","exchange_info":` + info + `}`, info},
		{"spaces", " {\n \"market\" : \"spot\" ,\t\"fetched_at\":\"2025-12-24T07:49:09Z\", \"exchange_info\" :\n" + info + "\n}\n", info + "\n"},
		{"first", `{"exchange_info":` + info + `,"market":"spot","fetched_at":"2025-12-24T07:49:09Z"}`, info},
		{"middle", `{"market":"spot","exchange_info":` + info + `,"fetched_at":"2025-12-24T07:49:09Z"}`, info},
		{"extra fields", `{"market":"spot","v":2,"ok":true,"n":null,"src":"py\"}","fetched_at":"2025-12-24T07:49:09Z","exchange_info":` + info + `}`, info},
		{"nested extra field", `{"market":"spot","meta":{"a":[1]},"fetched_at":"2025-12-24T07:49:09Z","exchange_info":` + info + `}`, info},
		{"key spelled otherwise", `{"market":"spot","fetched_at":"2025-12-24T07:49:09Z","Exchange_Info":` + info + `}`, info},
		{"escaped key", `{"market":"spot","fetched_at":"2025-12-24T07:49:09Z","exchange\u005finfo":` + info + `}`, info},
		{"quote in a value", `{"market":"spot","etag":"a\"exchange_info\":{}","fetched_at":"2025-12-24T07:49:09Z","exchange_info":` + info + `}`, info},
		{"no market", `{"fetched_at":"2025-12-24T07:49:09Z","exchange_info":` + info + `}`, ""},
		{"truncated", `{"market":"spot","fetched_at":"2025-12-24T07:49:09Z","exchange_info":{"symbols":[`, ""},
		{"not an object", `["market","spot"]`, ""},
		{"empty", ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := decodeEnvelope([]byte(tt.in), DefaultMaxValueBytes)
			if tt.info == "" {
				if err == nil {
					t.Fatalf("decodeEnvelope(%s) = %q, want an error", tt.in, e.ExchangeInfo)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeEnvelope(%s) = %v", tt.in, err)
			}
			if e.Market != "spot" || e.FetchedAt.IsZero() || string(e.ExchangeInfo) != tt.info {
				t.Errorf("decodeEnvelope(%s) = {%q %v %q}, want {spot 2025-12-24T07:49:09Z %q}", tt.in, e.Market, e.FetchedAt, e.ExchangeInfo, tt.info)
			}
			if tt.name == "quote in a value" && e.ETag != `a"exchange_info":{}` {
				t.Errorf("etag = %q", e.ETag)
			}
		})
	}
}

// TestEnvelope_gzipMembers checks the three-member gzip value: any gunzip
// reads it as the JSON envelope, its middle member is a gzip of the body
// that decodeEnvelope hands out as BodyGzip, and a BodyGzip given to
// encodeEnvelope is stored as it is.
func TestEnvelope_gzipMembers(t *testing.T) {
	body := fixtures.Read(t, "binance/usdm_exchangeinfo.json")
	e := Envelope{Market: "usdm", FetchedAt: time.Date(2025, 12, 24, 7, 49, 9, 0, time.UTC), ServerTime: 1, ETag: `"e"`, ExchangeInfo: body}
	v, err := encodeEnvelope(e, Gzip, DefaultMaxValueBytes)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(mustGzipReader(t, v)) // multistream, as gunzip(1)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(plain, &fields); err != nil || !bytes.Equal(fields["exchange_info"], body) {
		t.Fatalf("gunzipped value: %v, exchange_info of %d bytes, want the body's %d", err, len(fields["exchange_info"]), len(body))
	}
	got, err := decodeEnvelope(v, DefaultMaxValueBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.ExchangeInfo, body) {
		t.Fatalf("ExchangeInfo differs from the body")
	}
	if got.BodyGzip == nil {
		t.Fatalf("BodyGzip = nil, want the middle member")
	}
	zr := mustGzipReader(t, got.BodyGzip)
	zr.Multistream(false)
	if inflated, err := io.ReadAll(zr); err != nil || !bytes.Equal(inflated, body) {
		t.Fatalf("BodyGzip inflates to %d bytes (%v), want the body's %d", len(inflated), err, len(body))
	}

	// Given back, the gzip is stored as it is, not compressed again.
	marked := got
	marked.BodyGzip = bytes.Clone(got.BodyGzip)
	marked.BodyGzip[4] ^= 0xff // MTIME: not checked by readers, yet visible in the value
	v2, err := encodeEnvelope(marked, Gzip, DefaultMaxValueBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(v2, marked.BodyGzip) {
		t.Errorf("encodeEnvelope compressed the body again instead of storing BodyGzip")
	}
	if again, err := decodeEnvelope(v2, DefaultMaxValueBytes); err != nil || !bytes.Equal(again.BodyGzip, marked.BodyGzip) {
		t.Errorf("decodeEnvelope(encodeEnvelope(e with BodyGzip)) = %v, BodyGzip equal: %v", err, bytes.Equal(again.BodyGzip, marked.BodyGzip))
	}

	// A value written in one member, as before, reads without BodyGzip.
	var one bytes.Buffer
	zw := gzip.NewWriter(&one)
	zw.Write(plain)
	zw.Close()
	old, err := decodeEnvelope(one.Bytes(), DefaultMaxValueBytes)
	if err != nil || !bytes.Equal(old.ExchangeInfo, body) || old.BodyGzip != nil {
		t.Errorf("one-member value: %v, body equal %v, BodyGzip %d bytes, want nil, true, 0", err, bytes.Equal(old.ExchangeInfo, body), len(old.BodyGzip))
	}

	// Members that do not split as written give no BodyGzip.
	var odd bytes.Buffer
	for _, part := range [][]byte{plain[:10], plain[10 : len(plain)-1], plain[len(plain)-1:]} {
		zw := gzip.NewWriter(&odd)
		zw.Write(part)
		zw.Close()
	}
	if e, err := decodeEnvelope(odd.Bytes(), DefaultMaxValueBytes); err != nil || !bytes.Equal(e.ExchangeInfo, body) || e.BodyGzip != nil {
		t.Errorf("three odd members: %v, body equal %v, BodyGzip %d bytes, want nil, true, 0", err, bytes.Equal(e.ExchangeInfo, body), len(e.BodyGzip))
	}

	// Garbage after the members is an error, as for any gunzip.
	if _, err := decodeEnvelope(append(bytes.Clone(v), 0, 0, 0), DefaultMaxValueBytes); err == nil {
		t.Errorf("value with trailing garbage: no error")
	}
}

func mustGzipReader(t *testing.T, b []byte) *gzip.Reader {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

// FuzzDecodeEnvelope_Reference holds the fast split to encoding/json: where
// it accepts an envelope whose exchange_info is valid JSON (what readers go
// on to require), encoding/json reads the same envelope.
func FuzzDecodeEnvelope_Reference(f *testing.F) {
	f.Add([]byte(`{"market":"spot","fetched_at":"2025-12-24T07:49:09.558Z","server_time":1,"etag":"e","exchange_info":{"symbols":[]}}`))
	f.Add([]byte(`{"market":"spot","etag":"a\"exchange_info\":{}","fetched_at":"2025-12-24T07:49:09Z","exchange_info":{} }`))
	f.Add([]byte(`{"market":"spot","fetched_at":"2025-12-24T07:49:09Z","exchange_info":{},"exchange_info":{"a":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ref, refErr := decodeEnvelopeJSON(b)
		got, err := decodeEnvelope(b, DefaultMaxValueBytes)
		if refErr == nil && err != nil {
			t.Fatalf("decodeEnvelope = %v; encoding/json reads it", err)
		}
		if err != nil || !json.Valid(got.ExchangeInfo) {
			return
		}
		if refErr != nil {
			t.Fatalf("decodeEnvelope accepted what encoding/json refuses (%v)", refErr)
		}
		if got.Market != ref.Market || !got.FetchedAt.Equal(ref.FetchedAt) || got.ServerTime != ref.ServerTime || got.ETag != ref.ETag || !bytes.Equal(got.ExchangeInfo, ref.ExchangeInfo) {
			t.Fatalf("decodeEnvelope = {%q %v %d %q %q}, encoding/json {%q %v %d %q %q}",
				got.Market, got.FetchedAt, got.ServerTime, got.ETag, got.ExchangeInfo, ref.Market, ref.FetchedAt, ref.ServerTime, ref.ETag, ref.ExchangeInfo)
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	// More seeds in testdata/fuzz/FuzzDecodeEnvelope.
	small := []byte(`{"market":"spot","fetched_at":"2025-12-24T07:49:09.558Z","server_time":1,"etag":"e","exchange_info":{"symbols":[]}}`)
	f.Add(small)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b, DefaultMaxValueBytes)
		if err != nil {
			return // refusing input is fine; panicking is not
		}
		for _, enc := range []Encoding{JSON, Gzip} {
			out, err := encodeEnvelope(e, enc, DefaultMaxValueBytes)
			if err != nil {
				t.Fatalf("encodeEnvelope(decodeEnvelope(b), %s) = %v, want nil", enc, err)
			}
			got, err := decodeEnvelope(out, DefaultMaxValueBytes)
			if err != nil {
				t.Fatalf("decodeEnvelope(encodeEnvelope(decodeEnvelope(b), %s)) = %v, want nil", enc, err)
			}
			if got.Market != e.Market || !got.FetchedAt.Equal(e.FetchedAt) || got.ServerTime != e.ServerTime || got.ETag != e.ETag {
				t.Fatalf("round trip (%s) = {%q %v %d %q}, want {%q %v %d %q}", enc,
					got.Market, got.FetchedAt, got.ServerTime, got.ETag, e.Market, e.FetchedAt, e.ServerTime, e.ETag)
			}
			if !bytes.Equal(got.ExchangeInfo, e.ExchangeInfo) {
				t.Fatalf("round trip (%s) ExchangeInfo = %q, want %q", enc, got.ExchangeInfo, e.ExchangeInfo)
			}
			if enc == Gzip {
				zr := mustGzipReader(t, got.BodyGzip)
				zr.Multistream(false)
				if inflated, err := io.ReadAll(zr); err != nil || !bytes.Equal(inflated, e.ExchangeInfo) {
					t.Fatalf("round trip (gzip) BodyGzip inflates to %q (%v), want %q", inflated, err, e.ExchangeInfo)
				}
			}
		}
	})
}

func benchEnvelope(b *testing.B) Envelope {
	body := fixtures.Read(b, "binance/spot_exchangeinfo.json") // 3.7 MB
	return Envelope{Market: "spot", FetchedAt: time.Now(), ServerTime: 1766562549558, ETag: `"e"`, ExchangeInfo: body}
}

func BenchmarkEncodeEnvelope(b *testing.B) {
	e := benchEnvelope(b)
	for _, enc := range []Encoding{JSON, Gzip} {
		b.Run(string(enc), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(e.ExchangeInfo)))
			for b.Loop() {
				if _, err := encodeEnvelope(e, enc, DefaultMaxValueBytes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeEnvelope measures reading a stored spot envelope, next to
// encoding/json decoding the same value (how it was read before, and still
// is when laid out otherwise) in the same run.
func BenchmarkDecodeEnvelope(b *testing.B) {
	e := benchEnvelope(b)
	for _, enc := range []Encoding{JSON, Gzip} {
		v, err := encodeEnvelope(e, enc, DefaultMaxValueBytes)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range []struct {
			name   string
			decode func([]byte) (Envelope, error)
		}{
			{"split", func(v []byte) (Envelope, error) { return decodeEnvelope(v, DefaultMaxValueBytes) }},
			{"baseline-encoding-json", func(v []byte) (Envelope, error) {
				v, err := gunzipIf(v, DefaultMaxValueBytes)
				if err != nil {
					return Envelope{}, err
				}
				return decodeEnvelopeJSON(v)
			}},
		} {
			b.Run(string(enc)+"/"+d.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(e.ExchangeInfo)))
				for b.Loop() {
					if _, err := d.decode(v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
