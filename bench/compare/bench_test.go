package compare

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// Every benchmark runs on each of inputs, reports allocations and sets the
// bytes processed to the size of the JSON answer (the uncompressed one for
// gzip), so MB/s is comparable across all of them. Names are
// Benchmark<What>/lib=<library>/in=<input> (gzip: /level=<n> too), which
// benchstat and cmd/tables read as configuration keys.

// sink keeps results alive so the compiler cannot drop the work.
var sink any

// BenchmarkDecode decodes the whole answer into fixtures.ExchangeInfo with each
// library; lib=parse is the project's exchangeinfo.Parse (validate and
// index, no full decode) and lib=clone is bytes.Clone of the same bytes, the
// floor for anything that reads every byte once and allocates its size.
func BenchmarkDecode(b *testing.B) {
	for _, in := range inputs {
		body := in.body(b)
		for _, c := range Codecs {
			b.Run("lib="+c.Name+"/in="+in.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					v := new(fixtures.ExchangeInfo)
					if err := c.Unmarshal(body, v); err != nil {
						b.Fatal(err)
					}
					sink = v
				}
			})
		}
		b.Run("lib=parse/in="+in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				s, err := exchangeinfo.Parse(in.market, body, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				sink = s
			}
		})
		b.Run("lib=clone/in="+in.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				sink = bytes.Clone(body)
			}
		})
	}
}

// BenchmarkValid runs each library's validity-only pass (json.Valid and its
// equivalents; jsontext.Value.IsValid for v2).
func BenchmarkValid(b *testing.B) {
	for _, in := range inputs {
		body := in.body(b)
		for _, c := range Codecs {
			if c.Valid == nil {
				continue
			}
			b.Run("lib="+c.Name+"/in="+in.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if !c.Valid(body) {
						b.Fatal("not valid")
					}
				}
			})
		}
	}
}

// BenchmarkEncode encodes the value encoding/json decoded from the answer
// with each library. Every library writes the same bytes
// (TestEncodeRoundTrip); out-bytes is their size.
func BenchmarkEncode(b *testing.B) {
	for _, in := range inputs {
		body, v := in.body(b), in.reference(b)
		for _, c := range Codecs {
			b.Run("lib="+c.Name+"/in="+in.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				var n int
				for b.Loop() {
					out, err := c.Marshal(v)
					if err != nil {
						b.Fatal(err)
					}
					n = len(out)
					sink = out
				}
				b.ReportMetric(float64(n), "out-bytes")
			})
		}
	}
}

// BenchmarkGzip compresses the answer once per op, with a fresh writer as
// Snapshot.Gzip does, and reports the compressed size (gz-bytes) and
// ratio = input size ÷ compressed size.
func BenchmarkGzip(b *testing.B) {
	for _, in := range inputs {
		body := in.body(b)
		for _, z := range gzippers {
			for _, level := range gzipLevels {
				b.Run("lib="+z.name+"/level="+strconv.Itoa(level)+"/in="+in.name, func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(len(body)))
					var n int
					for b.Loop() {
						gz := z.compress(body, level)
						n = len(gz)
						sink = gz
					}
					b.ReportMetric(float64(n), "gz-bytes")
					b.ReportMetric(float64(len(body))/float64(n), "ratio")
				})
			}
		}
	}
}

// BenchmarkGunzip decompresses, with each library, the stream compress/gzip
// writes at DefaultCompression (the level of the L2 envelope, the one place
// the sidecar reads gzip).
func BenchmarkGunzip(b *testing.B) {
	for _, in := range inputs {
		body := in.body(b)
		gz := gzippers[0].compress(body, 6)
		for _, r := range gunzippers {
			b.Run("lib="+r.name+"/in="+in.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					out, err := r.decompress(gz, len(body))
					if err != nil {
						b.Fatal(err)
					}
					sink = out
				}
			})
		}
	}
}
