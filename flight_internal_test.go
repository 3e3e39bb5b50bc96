package symcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestFlight_Do_OneCallForConcurrentCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f flight[int]
		var calls atomic.Int32
		release := make(chan struct{})
		fn := func() (int, error) {
			calls.Add(1)
			<-release
			return 42, nil
		}
		var wg sync.WaitGroup
		results := make([]int, 50)
		shared := make([]bool, 50)
		for i := range results {
			wg.Go(func() {
				v, s, err := f.do(context.Background(), fn)
				if err != nil {
					t.Errorf("do() error = %v, want nil", err)
				}
				results[i], shared[i] = v, s
			})
		}
		synctest.Wait() // every caller waits for the one call
		close(release)
		wg.Wait()
		if n := calls.Load(); n != 1 {
			t.Errorf("fn ran %d times for 50 concurrent callers, want 1", n)
		}
		for i := range results {
			if results[i] != 42 || !shared[i] {
				t.Fatalf("caller %d got %d (shared %v), want 42 (shared true)", i, results[i], shared[i])
			}
		}
	})
}

func TestFlight_Do_CallerThatGivesUpDoesNotEndTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f flight[string]
		done := make(chan struct{})
		fn := func() (string, error) {
			time.Sleep(time.Second) // the call bounds itself, whoever waits
			close(done)
			return "snapshot", nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		first := make(chan error, 1)
		go func() {
			_, _, err := f.do(ctx, fn)
			first <- err
		}()
		synctest.Wait()
		v, _, err := f.do(context.Background(), fn) // joins the call under way
		if err != nil || v != "snapshot" {
			t.Errorf("second caller: do() = %q, %v, want the call's result", v, err)
		}
		if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("caller whose ctx ended: do() error = %v, want context.DeadlineExceeded", err)
		}
		select {
		case <-done:
		default:
			t.Error("the call did not run to its end")
		}
	})
}

func TestFlight_Do_Error(t *testing.T) {
	var f flight[*int]
	want := errors.New("upstream 503")
	v, shared, err := f.do(context.Background(), func() (*int, error) { return nil, want })
	if v != nil || shared || !errors.Is(err, want) {
		t.Errorf("do() = %v, %v, %v, want nil, false, %v", v, shared, err, want)
	}
	// The next call runs again: a failure is not remembered.
	one := 1
	if v, _, err := f.do(context.Background(), func() (*int, error) { return &one, nil }); err != nil || v != &one {
		t.Errorf("do() after a failed call = %v, %v, want a new call's result", v, err)
	}
}
