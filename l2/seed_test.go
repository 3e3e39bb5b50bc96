package l2_test

import (
	"bytes"
	"context"
	"errors"
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

// TestStore_SeedLastGood_meta checks that a seed records its snapshot in the
// meta key, so that a Put of an older snapshot does not take last_good back
// in time: after Redis restarted empty, the chaos run saw a process seed its
// newer snapshot, then another's Put of an older one (its fetch finished
// later) replace it. A newer Put still goes through; a seed under a meta that
// names a later snapshot leaves the meta alone.
func TestStore_SeedLastGood_meta(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()
	at := func(sec int, sym string) l2.Envelope {
		e := envelope("spot", []byte(`{"serverTime":1,"symbols":[{"symbol":"`+sym+`"}]}`))
		e.FetchedAt = time.Date(2026, 11, 26, 12, 0, sec, 0, time.UTC)
		return e
	}
	older, seeded, newer := at(0, "OLD"), at(1, "SEEDED"), at(2, "NEW")

	if wrote, err := s.SeedLastGood(ctx, seeded); err != nil || !wrote {
		t.Fatalf("SeedLastGood on an empty Redis = %v, %v; want true, nil", wrote, err)
	}
	if m, err := s.Meta(ctx, "spot"); err != nil || !m.FetchedAt.Equal(seeded.FetchedAt) || m.ETag != seeded.ETag {
		t.Fatalf("Meta after a seed = %+v, %v; want the seeded snapshot's", m, err)
	}
	if err := s.Put(ctx, older, time.Minute); !errors.Is(err, l2.ErrSuperseded) {
		t.Errorf("Put of an older snapshot after a seed = %v, want ErrSuperseded", err)
	}
	if got, _ := s.LastGood(ctx, "spot"); !bytes.Equal(got.ExchangeInfo, seeded.ExchangeInfo) {
		t.Errorf("LastGood after an older Put = %s, want the seeded one", got.ExchangeInfo)
	}
	if err := s.Put(ctx, newer, time.Minute); err != nil {
		t.Fatalf("Put of a newer snapshot after a seed = %v, want nil", err)
	}
	checkReads(t, s, "spot", newer, "")

	// last_good gone (evicted), meta still naming the newer snapshot: the
	// seed of an older one restores a fallback, and the meta stays.
	if err := rdb.Del(ctx, "symcache:{spot}:last_good").Err(); err != nil {
		t.Fatal(err)
	}
	if wrote, err := s.SeedLastGood(ctx, older); err != nil || !wrote {
		t.Fatalf("SeedLastGood with last_good gone = %v, %v; want true, nil", wrote, err)
	}
	if m, err := s.Meta(ctx, "spot"); err != nil || !m.FetchedAt.Equal(newer.FetchedAt) {
		t.Errorf("Meta after seeding an older snapshot = %+v, %v; want the newer Put's", m, err)
	}
}
