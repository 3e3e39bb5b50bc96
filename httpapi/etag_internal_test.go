package httpapi

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// TestDerivedETag checks that derivedETag is exchangeinfo.ETag of the
// snapshot's ETag, a NUL and the request URI, as clients' cached tags
// expect, for every form of URI, long ones included.
func TestDerivedETag(t *testing.T) {
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, target := range []string{
		"/api/v3/exchangeInfo?symbol=BTCUSDT",
		"/api/v3/exchangeInfo?symbols=%5B%22BTCUSDT%22,%22ETHBTC%22%5D",
		"/api/v3/exchangeInfo?",
		"/v1/symbols/spot/BTCUSDT",
		"/v1/symbols/spot/BTC%20USDT/rules",
		"/v1/symbols/spot?limit=10&cursor=" + strings.Repeat("x", 2000),
	} {
		r := httptest.NewRequest("GET", target, nil)
		want := exchangeinfo.ETag([]byte(s.ETag() + "\x00" + r.URL.RequestURI()))
		got := derivedETag(s, r)
		if got != want {
			t.Errorf("derivedETag(%.60s) = %s, want %s", target, got, want)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("derivedETag(%.60s) = derivedETag(%.60s)", target, other)
		}
		seen[got] = target
	}
}

func BenchmarkDerivedETag(b *testing.B) {
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, fixtures.Read(b, "binance/spot_testnet_exchangeinfo_2021-07-11.json"), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api/v3/exchangeInfo?symbol=BTCUSDT", nil)
	b.Run("stack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			derivedETag(s, r)
		}
	})
	// The same tag made by concatenation, as before: the baseline.
	b.Run("concat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = exchangeinfo.ETag([]byte(s.ETag() + "\x00" + r.URL.RequestURI()))
		}
	})
}

// TestDerivedAnswers_bounds fills a snapshot's derived answers with URIs
// made up to fill it: the entries, their bytes, the size of an answer and
// of a key kept are bounded, and an answer not kept is still made and
// right, every time.
func TestDerivedAnswers_bounds(t *testing.T) {
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := &snapshotHeaders{snap: s}
	made := 0
	ask := func(target string, body []byte) payload {
		t.Helper()
		r := httptest.NewRequest("GET", target, nil)
		got, err := p.derived(r, func() ([]byte, error) { made++; return body, nil })
		if err != nil {
			t.Fatal(err)
		}
		if string(got.body) != string(body) || got.etag[0] != derivedETag(s, r) || got.length[0] != strconv.Itoa(len(body)) {
			t.Fatalf("derived(%.60s) = %.40q %v %v, want the bytes made, their tag and length", target, got.body, got.etag, got.length)
		}
		return got
	}
	small := []byte(`{"symbol":"X"}`)
	for i := range maxDerivedAnswers + 100 {
		ask(fmt.Sprintf("/v1/symbols/spot/S%d", i), small)
	}
	if n := len(p.answers.m); n != maxDerivedAnswers {
		t.Errorf("%d answers kept, want the bound %d", n, maxDerivedAnswers)
	}
	made = 0
	ask("/v1/symbols/spot/S1", small)                                 // kept
	ask("/v1/symbols/spot/S"+fmt.Sprint(maxDerivedAnswers+50), small) // not kept: made again
	if made != 1 {
		t.Errorf("%d answers made for one kept and one not, want 1", made)
	}

	p = &snapshotHeaders{snap: s}
	big := make([]byte, maxDerivedSize+1)
	made = 0
	ask("/big", big)
	ask("/big", big)
	ask("/"+strings.Repeat("k", maxDerivedKey+1), small)
	ask("/"+strings.Repeat("k", maxDerivedKey+1), small)
	if made != 4 || len(p.answers.m) != 0 {
		t.Errorf("an answer over %d bytes or a key over %d: made %d times in 4 requests, %d kept; want 4 and none", maxDerivedSize, maxDerivedKey, made, len(p.answers.m))
	}
	mid := make([]byte, maxDerivedSize/2)
	for i := range 2 * maxDerivedBytes / len(mid) {
		ask(fmt.Sprintf("/mid/%d", i), mid)
	}
	if p.answers.bytes > maxDerivedBytes || p.answers.bytes < maxDerivedBytes-len(mid)-maxDerivedKey-derivedOverhead {
		t.Errorf("%d bytes kept, want at most %d and close to it", p.answers.bytes, maxDerivedBytes)
	}
}

// piecesWriter records the size of each Write.
type piecesWriter struct {
	sizes []int
	got   []byte
}

func (w *piecesWriter) Write(b []byte) (int, error) {
	w.sizes = append(w.sizes, len(b))
	w.got = append(w.got, b...)
	return len(b), nil
}

// TestWriteYielding: a large answer goes in pieces of writeChunk, in order,
// all of it; a small one in one write.
func TestWriteYielding(t *testing.T) {
	body := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	for _, b := range [][]byte{body, body[:writeChunk], body[:writeChunk+1], body[:100], nil} {
		w := &piecesWriter{}
		if err := writeYielding(w, b); err != nil {
			t.Fatal(err)
		}
		if string(w.got) != string(b) {
			t.Fatalf("%d bytes written as %d other bytes", len(b), len(w.got))
		}
		want := max(1, (len(b)+writeChunk-1)/writeChunk)
		if len(w.sizes) != want {
			t.Errorf("%d bytes in %d writes %v, want %d", len(b), len(w.sizes), w.sizes, want)
		}
		for i, n := range w.sizes[:len(w.sizes)-1] {
			if n != writeChunk {
				t.Errorf("%d bytes: write %d of %d bytes, want %d", len(b), i, n, writeChunk)
			}
		}
	}
}
