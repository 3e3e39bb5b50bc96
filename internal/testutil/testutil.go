// Package testutil holds the small helpers that tests of several packages
// share, so that each lives once: a [LogBuffer] that a logger's goroutines
// write to while the test reads it, and a [Clock] that a test moves by hand
// and hands to a Config.Now.
//
// It imports only the standard library, and only tests (and test-support
// packages such as l2test) import it.
package testutil

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"log/slog"
	"reflect"
	"sync"
	"testing"
)

// LogBuffer is a log sink for concurrent writers: a bytes.Buffer behind a
// mutex, which a server's goroutines write to while the test reads it. The
// zero value is empty and ready to use. A LogBuffer must not be copied after
// first use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer. It never fails.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written since the start or the last Reset.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reset empties the buffer.
func (b *LogBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// Logger returns a logger that writes JSON records, one a line, at every
// level from Debug up, to b.
func (b *LogBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Records returns the JSON records written so far, one map a line, in order.
// It calls tb.Fatal if a line is not a JSON object.
func (b *LogBuffer) Records(tb testing.TB) []map[string]any {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var recs []map[string]any
	for line := range bytes.Lines(b.buf.Bytes()) {
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			tb.Fatalf("testutil: log line %q is not a JSON object: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// Count returns how many records have every key and value of attrs, given
// as pairs like slog's: Count(t, "level", "WARN", "msg", "serving stale").
// Keys are top-level members; a value matches a member that encodes to the
// same JSON, so 503 matches "status":503. Count calls tb.Fatal if a line is
// not a JSON object, or if attrs is not pairs of a string key and a value
// that encodes as JSON.
func (b *LogBuffer) Count(tb testing.TB, attrs ...any) int {
	tb.Helper()
	if len(attrs)%2 != 0 {
		tb.Fatalf("testutil: Count(%v): attrs must be key, value pairs", attrs)
	}
	want := make(map[string]any, len(attrs)/2)
	for i := 0; i < len(attrs); i += 2 {
		k, ok := attrs[i].(string)
		if !ok {
			tb.Fatalf("testutil: Count(%v): key %v is not a string", attrs, attrs[i])
		}
		v, err := asJSON(attrs[i+1])
		if err != nil {
			tb.Fatalf("testutil: Count(%v): value of %q: %v", attrs, k, err)
		}
		want[k] = v
	}
	n := 0
	for _, r := range b.Records(tb) {
		if matches(r, want) {
			n++
		}
	}
	return n
}

// asJSON returns v as encoding/json would decode its encoding into an any.
func asJSON(v any) (any, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(j, &out)
	return out, err
}

func matches(r, want map[string]any) bool {
	for k, v := range want {
		got, ok := r[k]
		if !ok || !reflect.DeepEqual(got, v) {
			return false
		}
	}
	return true
}

// Gzip returns b gzipped at the default level. It calls tb.Fatal if
// compressing fails.
func Gzip(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b) // writes to a bytes.Buffer do not fail
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
