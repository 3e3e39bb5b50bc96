package l2_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

func TestStore_DeleteCurrent(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	body := fixtures.Read(t, "binance/usdm_exchangeinfo.json")
	for _, prefix := range []string{"", "app1:"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			s := l2.New(l2.Config{Client: rdb, Prefix: prefix, Logger: discard(), Timeout: time.Second})
			full := prefix
			if full == "" {
				full = "symcache:"
			}
			e := envelope("usdm", body)
			if err := s.Put(ctx, e, time.Hour); err != nil {
				t.Fatalf("Put = %v", err)
			}
			if err := s.Put(ctx, envelope("spot", body), time.Hour); err != nil {
				t.Fatalf("Put(spot) = %v", err)
			}
			if err := s.DeleteCurrent(ctx, "usdm"); err != nil {
				t.Fatalf("DeleteCurrent(usdm) = %v, want nil", err)
			}
			if n := rdb.Exists(ctx, full+"{usdm}:current").Val(); n != 0 {
				t.Errorf("EXISTS %s{usdm}:current after DeleteCurrent = %d, want 0", full, n)
			}
			if _, err := s.Current(ctx, "usdm"); err != l2.ErrMiss {
				t.Errorf("Current(usdm) after DeleteCurrent = %v, want ErrMiss itself", err)
			}
			got, err := s.LastGood(ctx, "usdm")
			if err != nil {
				t.Fatalf("LastGood(usdm) after DeleteCurrent = %v, want the envelope kept", err)
			}
			checkEnvelope(t, "LastGood(usdm) after DeleteCurrent", got, e)
			if m, err := s.Meta(ctx, "usdm"); err != nil || !m.FetchedAt.Equal(e.FetchedAt.Truncate(time.Millisecond)) { // meta keeps milliseconds
				t.Errorf("Meta(usdm) after DeleteCurrent = %+v, %v, want the stored snapshot still named", m, err)
			}
			if _, err := s.Current(ctx, "spot"); err != nil {
				t.Errorf("Current(spot) after DeleteCurrent(usdm) = %v, want the other market untouched", err)
			}
			// Absent already: no error.
			if err := s.DeleteCurrent(ctx, "usdm"); err != nil {
				t.Errorf("DeleteCurrent(usdm) again = %v, want nil", err)
			}
			// The meta key still refuses an older snapshot, and takes a newer one.
			older := e
			older.FetchedAt = e.FetchedAt.Add(-time.Minute)
			if err := s.Put(ctx, older, time.Hour); !errors.Is(err, l2.ErrSuperseded) {
				t.Errorf("Put(older) after DeleteCurrent = %v, want ErrSuperseded", err)
			}
			newer := e
			newer.FetchedAt = e.FetchedAt.Add(time.Minute)
			if err := s.Put(ctx, newer, time.Hour); err != nil {
				t.Errorf("Put(newer) after DeleteCurrent = %v, want nil", err)
			}
			if got, err := s.Current(ctx, "usdm"); err != nil || !got.FetchedAt.Equal(newer.FetchedAt) {
				t.Errorf("Current(usdm) after a new Put = %v, %v, want the new snapshot", got.FetchedAt, err)
			}
		})
	}
}

func TestStore_DeleteCurrent_RedisDown(t *testing.T) {
	srv := l2test.Start(t)
	s := l2.New(l2.Config{Client: srv.Client(t), Logger: discard(), WriteTimeout: 200 * time.Millisecond})
	srv.Stop()
	if err := s.DeleteCurrent(context.Background(), "spot"); err == nil || errors.Is(err, l2.ErrMiss) {
		t.Errorf("DeleteCurrent with Redis down = %v, want an error (not a miss)", err)
	}
}
