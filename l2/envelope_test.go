package l2

import (
	"bytes"
	"compress/gzip"
	"os"
	"testing"
	"time"
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

func FuzzDecodeEnvelope(f *testing.F) {
	// More seeds in testdata/fuzz/FuzzDecodeEnvelope.
	small := []byte(`{"market":"spot","fetched_at":"2025-12-24T07:49:09.558Z","server_time":1,"etag":"e","exchange_info":{"symbols":[]}}`)
	f.Add(small)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return // refusing input is fine; panicking is not
		}
		for _, enc := range []Encoding{JSON, Gzip} {
			out, err := encodeEnvelope(e, enc)
			if err != nil {
				t.Fatalf("encodeEnvelope(decodeEnvelope(b), %s) = %v, want nil", enc, err)
			}
			got, err := decodeEnvelope(out)
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
		}
	})
}

func benchEnvelope(b *testing.B) Envelope {
	body, err := os.ReadFile("../testdata/binance/spot_exchangeinfo.json") // 3.7 MB
	if err != nil {
		b.Fatal(err)
	}
	return Envelope{Market: "spot", FetchedAt: time.Now(), ServerTime: 1766562549558, ETag: `"e"`, ExchangeInfo: body}
}

func BenchmarkEncodeEnvelope(b *testing.B) {
	e := benchEnvelope(b)
	for _, enc := range []Encoding{JSON, Gzip} {
		b.Run(string(enc), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(e.ExchangeInfo)))
			for b.Loop() {
				if _, err := encodeEnvelope(e, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	e := benchEnvelope(b)
	for _, enc := range []Encoding{JSON, Gzip} {
		b.Run(string(enc), func(b *testing.B) {
			v, err := encodeEnvelope(e, enc)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(e.ExchangeInfo)))
			for b.Loop() {
				if _, err := decodeEnvelope(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
