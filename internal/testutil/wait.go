package testutil

import (
	"testing"
	"time"
)

// WaitFor polls ok every few milliseconds until it holds, and fails tb,
// naming what, if it still does not after within: for what another
// goroutine or process does in its own time (an announcement heard, a
// connection closed), never to measure that time.
func WaitFor(tb testing.TB, within time.Duration, what string, ok func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %v for %s", within, what)
		}
	}
}
