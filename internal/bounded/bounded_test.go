package bounded

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

// ReadAll returns every byte below the limit, whatever the first buffer's
// size and however the reader splits its bytes, and ErrTooLarge at the
// limit, having read no more.
func TestReadAll(t *testing.T) {
	const limit = 1000
	readers := map[string]func([]byte) io.Reader{
		"whole":                   func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte":                func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"half":                    func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		"EOF with data":           func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		"empty reads":             func(b []byte) io.Reader { return &emptyReads{r: bytes.NewReader(b)} },
		"one byte, EOF with data": func(b []byte) io.Reader { return iotest.DataErrReader(iotest.OneByteReader(bytes.NewReader(b))) },
	}
	for _, n := range []int{0, 1, 99, 100, 101, 500, limit - 2, limit - 1, limit, limit + 1, 10 * limit} {
		for _, size := range []int64{1, 100, limit - 1, limit, 10 * limit} {
			for name, r := range readers {
				t.Run(fmt.Sprintf("%d bytes, first buffer %d, %s", n, size, name), func(t *testing.T) {
					in := bytes.Repeat([]byte("0123456789"), n/10+1)[:n]
					got, read, err := ReadAll(r(in), size, limit)
					if n >= limit {
						if !errors.Is(err, ErrTooLarge) || read != limit {
							t.Fatalf("ReadAll() = %d bytes, %d, %v, want %v after %d", len(got), read, err, ErrTooLarge, limit)
						}
						return
					}
					if err != nil || !bytes.Equal(got, in) || read != int64(n) {
						t.Fatalf("ReadAll() = %d bytes, %d, %v, want the %d bytes", len(got), read, err, n)
					}
					if int64(n) >= size && cap(got) != n {
						t.Errorf("cap(ReadAll()) = %d, want %d: a body read into several buffers is copied into one of its size", cap(got), n)
					}
				})
			}
		}
	}
}

func TestReadAll_CutShort(t *testing.T) {
	cut := errors.New("unexpected EOF")
	r := io.MultiReader(bytes.NewReader(make([]byte, 300)), iotest.ErrReader(cut))
	got, n, err := ReadAll(r, 100, 1000)
	if !errors.Is(err, cut) || n != 300 || got != nil {
		t.Errorf("ReadAll() = %d bytes, %d, %v, want nil, 300, %v", len(got), n, err, cut)
	}
}

// emptyReads returns 0, nil every other Read.
type emptyReads struct {
	r    io.Reader
	skip bool
}

func (e *emptyReads) Read(p []byte) (int, error) {
	if e.skip = !e.skip; e.skip {
		return 0, nil
	}
	return e.r.Read(p)
}
