package changes

import (
	"bytes"
	"testing"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// allDifferent returns body with one byte of every tickSize changed, so that
// every symbol of the spot answer differs (in one filter field), and how
// many it changed.
func allDifferent(tb testing.TB, body []byte) ([]byte, int) {
	tb.Helper()
	out := bytes.Clone(body)
	key := []byte(`"tickSize":"`)
	n := 0
	for i := 0; ; n++ {
		j := bytes.Index(out[i:], key)
		if j < 0 {
			break
		}
		i += j + len(key)
		end := i + bytes.IndexByte(out[i:], '"')
		if out[end-1] == '1' { // "0.01000000" becomes "0.01000001"
			out[end-1] = '2'
		} else {
			out[end-1] = '1'
		}
	}
	return out, n
}

// BenchmarkDiff measures Diff on the spot answer (3.7 MB, 2,292 symbols),
// with BenchmarkParse/spot as its yardstick. The targets: two equal
// snapshots at most 0.25 of Parse, two that differ in every symbol at most
// 1. Measured in six rounds of Parse then Diff (go test -bench
// 'BenchmarkParse/spot$|BenchmarkDiff/' -benchtime 1s, each round's ratio
// from its own Parse; two cores shared with CI, so Parse alone ranged 3.6
// to 5.4 ms):
//
//	spot-equal            0.09 ms   0.017 to 0.026 × Parse, median 0.018
//	spot-new-servertime   0.12 ms   0.023 to 0.035 × Parse, median 0.027
//	spot-all-different    3.6 ms    0.65 to 1.07 × Parse, median 0.81
//
// Diff of two different snapshots reads both bodies, twice Parse's bytes,
// and the round over 1 was Parse's fastest. Snapshots compute their ETag
// once and keep it, and the cache has done so before it diffs, so it is
// computed here before the timer starts.
func BenchmarkDiff(b *testing.B) {
	body := fixtures.Read(b, "binance/spot_exchangeinfo.json")
	different, n := allDifferent(b, body)
	newTime := bytes.Replace(body, []byte(`"serverTime":1694185561976`), []byte(`"serverTime":1694185621976`), 1)
	for _, bb := range []struct {
		name    string
		to      []byte
		changes int
	}{
		{"spot-equal", bytes.Clone(body), 0}, // two Parse results of the same bytes
		{"spot-new-servertime", newTime, 0},  // the usual next answer: every symbol the same
		{"spot-all-different", different, n}, // every symbol differs: a tick size
	} {
		b.Run(bb.name, func(b *testing.B) {
			from := parse(b, exchangeinfo.Spot, body, fetched1)
			to := parse(b, exchangeinfo.Spot, bb.to, fetched2)
			from.ETag()
			to.ETag()
			if got := len(Diff(from, to)); got != bb.changes {
				b.Fatalf("Diff = %d changes, want %d", got, bb.changes)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				Diff(from, to)
			}
		})
	}
}

// BenchmarkParse is BenchmarkDiff's yardstick: exchangeinfo.Parse of the
// same answer.
func BenchmarkParse(b *testing.B) {
	body := fixtures.Read(b, "binance/spot_exchangeinfo.json")
	b.Run("spot", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := exchangeinfo.Parse(exchangeinfo.Spot, body, fetched1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
