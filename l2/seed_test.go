package l2_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

func TestStore_SeedLastGood(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()
	older := envelope("spot", []byte(`{"serverTime":1,"symbols":[{"symbol":"A"}]}`))
	newer := envelope("spot", []byte(`{"serverTime":2,"symbols":[{"symbol":"B"}]}`))
	newer.FetchedAt = older.FetchedAt.Add(time.Minute)

	wrote, err := s.SeedLastGood(ctx, older)
	if err != nil || !wrote {
		t.Fatalf("SeedLastGood on an empty Redis = %v, %v; want true, nil", wrote, err)
	}
	if got, err := s.LastGood(ctx, "spot"); err != nil || !bytes.Equal(got.ExchangeInfo, older.ExchangeInfo) {
		t.Fatalf("LastGood after a seed = %s, %v; want the seeded envelope", got.ExchangeInfo, err)
	}
	if _, err := s.Current(ctx, "spot"); err != l2.ErrMiss {
		t.Errorf("Current after a seed = %v, want ErrMiss: a seed writes only last_good", err)
	}
	// A seed never replaces a value, not even an older one.
	if err := s.Put(ctx, newer, time.Minute); err != nil {
		t.Fatal(err)
	}
	if wrote, err := s.SeedLastGood(ctx, older); err != nil || wrote {
		t.Errorf("SeedLastGood over an existing value = %v, %v; want false, nil", wrote, err)
	}
	if got, _ := s.LastGood(ctx, "spot"); !bytes.Equal(got.ExchangeInfo, newer.ExchangeInfo) {
		t.Errorf("LastGood after a refused seed = %s, want the Put's", got.ExchangeInfo)
	}
	srv.Stop()
	if _, err := s.SeedLastGood(ctx, older); err == nil {
		t.Error("SeedLastGood with Redis down = nil error, want one")
	}
}
