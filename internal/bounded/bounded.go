// Package bounded reads what comes from outside (a Binance body, a file,
// an inflated Redis value) without ever holding more than a limit: one
// reader, so that every place that reads outside input bounds it the same
// way. It imports only the standard library.
package bounded

import (
	"errors"
	"io"
)

// ErrTooLarge is ReadAll's error for a reader with limit bytes or more.
var ErrTooLarge = errors.New("too large")

// ReadAll reads r to EOF into a buffer of size bytes (a hint: a Content-Length, a file's size) and, if that fills,
// into further buffers, each as large as everything read before it. Those
// hold limit bytes in all, at most: a reader with that many or more is
// ErrTooLarge. A body that fits the first buffer is returned in it; else it
// is copied once into one of its exact size. The int64 is the number of
// bytes read, also on error.
func ReadAll(r io.Reader, size, limit int64) ([]byte, int64, error) {
	buf := make([]byte, 0, min(size, limit))
	var (
		full [][]byte // buffers filled before buf
		n    int64    // bytes in full
	)
	for {
		if len(buf) == cap(buf) {
			n += int64(len(buf))
			if n >= limit {
				return nil, n, ErrTooLarge
			}
			full = append(full, buf)
			buf = make([]byte, 0, min(n, limit-n))
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, n + int64(len(buf)), err
		}
	}
	if n += int64(len(buf)); n >= limit { // EOF came with the limit's last byte
		return nil, n, ErrTooLarge
	}
	if full == nil {
		return buf, n, nil
	}
	body := make([]byte, 0, n)
	for _, b := range full {
		body = append(body, b...)
	}
	return append(body, buf...), n, nil
}
