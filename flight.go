package symcache

import (
	"context"

	"golang.org/x/sync/singleflight"
)

// flight runs one call at a time and gives its result to every caller that
// asked while it ran: a singleflight.Group of one key, typed. A market has
// one flight per kind of work.
type flight[T any] struct {
	g singleflight.Group
}

// do runs fn, or joins the call of fn already under way, and waits for its
// result or for ctx to end, whichever comes first. fn runs on its own: a
// caller that gives up does not end it, so fn must bound itself. shared
// reports whether the result went to other callers too.
func (f *flight[T]) do(ctx context.Context, fn func() (T, error)) (v T, shared bool, err error) {
	ch := f.g.DoChan("", func() (any, error) { return fn() })
	select {
	case <-ctx.Done():
		return v, false, ctx.Err()
	case r := <-ch:
		return r.Val.(T), r.Shared, r.Err // fn returned a T, even with an error
	}
}
