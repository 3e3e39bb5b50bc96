package fetch

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// BenchmarkReadBody reads the recorded spot answer (3.7 MB) as a Client
// does, and a chunked body far larger than MaxBodyBytes, with readBody
// ("new") and with readBodyBefore ("old"), the code it replaced, for a
// comparison in the same run. retained-B is the capacity of the slice
// returned: what the snapshot holds for as long as it is cached.
func BenchmarkReadBody(b *testing.B) {
	body := fixtures.Read(b, "binance/spot_exchangeinfo.json")
	n := int64(len(body))
	for _, tt := range []struct {
		name          string
		contentLength int64 // -1: unknown (chunked, or gzip decompressed by the transport)
		lastSize      int64 // the last valid body's length; 0: none yet
		maxBody       int64
		src           func() io.Reader
		wantErr       bool
	}{
		{"Content-Length", n, n, DefaultMaxBodyBytes, func() io.Reader { return bytes.NewReader(body) }, false},
		{"unknown length, last size known", -1, n, DefaultMaxBodyBytes, func() io.Reader { return bytes.NewReader(body) }, false},
		{"unknown length, first read", -1, 0, DefaultMaxBodyBytes, func() io.Reader { return bytes.NewReader(body) }, false},
		{"100 MB chunked, MaxBodyBytes 32 MiB", -1, 0, DefaultMaxBodyBytes, func() io.Reader { return io.LimitReader(repeat(body), 100e6) }, true},
	} {
		for _, impl := range []string{"old", "new"} {
			b.Run(fmt.Sprintf("%s/%s", tt.name, impl), func(b *testing.B) {
				c := &Client{maxBody: tt.maxBody}
				read := func(resp *http.Response) ([]byte, error) {
					c.lastSize.Store(tt.lastSize)
					return c.readBody(resp)
				}
				if impl == "old" {
					var hint atomic.Int64
					read = func(resp *http.Response) ([]byte, error) {
						hint.Store(tt.lastSize)
						return readBodyBefore(resp, tt.maxBody, &hint)
					}
				}
				var retained int
				b.ReportAllocs()
				if tt.wantErr {
					b.SetBytes(tt.maxBody + 1) // read before giving up
				} else {
					b.SetBytes(n)
				}
				for b.Loop() {
					resp := &http.Response{ContentLength: tt.contentLength, Body: io.NopCloser(chunks{tt.src()})}
					got, err := read(resp)
					if (err != nil) != tt.wantErr {
						b.Fatalf("readBody() = %v, want error: %v", err, tt.wantErr)
					}
					if err == nil && len(got) != len(body) {
						b.Fatalf("readBody() = %d bytes, want %d", len(got), len(body))
					}
					retained = cap(got)
				}
				b.ReportMetric(float64(retained), "retained-B")
			})
		}
	}
}

// chunks reads from r at most 32 KiB at a time, as a socket would give them.
type chunks struct{ r io.Reader }

func (c chunks) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), 32<<10)]) }

// repeat reads b over and over, without end.
func repeat(b []byte) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		n := 0
		for n < len(p) {
			n += copy(p[n:], b)
		}
		return n, nil
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// readBodyBefore is readBody as it was before reads were bounded: a
// bytes.Buffer that doubles as it reads, up to maxBody+1 bytes read (so
// 2 x maxBody of capacity), its first size from the Content-Length or the
// last body read plus an eighth. The baseline of BenchmarkReadBody.
func readBodyBefore(resp *http.Response, maxBody int64, sizeHint *atomic.Int64) ([]byte, error) {
	if resp.ContentLength > maxBody {
		return nil, &exchangeinfo.InvalidError{Reason: fmt.Sprintf("body of %d bytes is larger than the limit of %d", resp.ContentLength, maxBody)}
	}
	hint := resp.ContentLength // -1 when unknown, e.g. decompressed by the transport
	if hint < 0 {
		hint = sizeHint.Load()
		hint += hint / 8
	}
	var buf bytes.Buffer
	buf.Grow(int(min(hint, maxBody)) + bytes.MinRead) // room to read EOF without growing
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &exchangeinfo.InvalidError{Reason: fmt.Sprintf("body cut short after %d bytes: %v", n, err)}
	}
	if n > maxBody {
		return nil, &exchangeinfo.InvalidError{Reason: fmt.Sprintf("body larger than the limit of %d bytes", maxBody)}
	}
	sizeHint.Store(n)
	return buf.Bytes(), nil
}
