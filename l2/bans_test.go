package l2_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

const bansKey = "symcache:" + l2.BansKey

func TestStore_Ban(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), MaxHold: time.Hour})
	ctx := context.Background()

	if bans, err := s.Bans(ctx); err != nil || len(bans) != 0 {
		t.Fatalf("Bans() of an empty Redis = %v, %v, want none", bans, err)
	}
	mustBan := func(host string, code int, d time.Duration) {
		t.Helper()
		if err := s.Ban(ctx, host, code, d); err != nil {
			t.Fatalf("Ban(%s, %d, %v) = %v", host, code, d, err)
		}
	}
	mustBan("api.binance.com", 429, 30*time.Second)
	mustBan("api.binance.com", 418, 10*time.Second) // ends earlier: the longer ban stays
	mustBan("fapi.binance.com", 418, 3*time.Hour)   // longer than MaxHold: cut to it
	bans := banMap(t, s)
	if b := bans["api.binance.com"]; b.Code != 429 || b.Left <= 29*time.Second || b.Left > 30*time.Second {
		t.Errorf("api.binance.com's ban = %+v, want 429 for ~30s", b)
	}
	if b := bans["fapi.binance.com"]; b.Code != 418 || b.Left <= 59*time.Minute || b.Left > time.Hour {
		t.Errorf("fapi.binance.com's ban = %+v, want 418 for ~1h (MaxHold)", b)
	}
	if pttl := rdb.PTTL(ctx, bansKey).Val(); pttl <= 59*time.Minute || pttl > time.Hour {
		t.Errorf("PTTL %s = %v, want its longest ban's ~1h", bansKey, pttl)
	}

	if err := s.Unban(ctx, "fapi.binance.com"); err != nil {
		t.Fatal(err)
	}
	if bans := banMap(t, s); len(bans) != 1 || bans["api.binance.com"].Code != 429 {
		t.Errorf("Bans() after Unban(fapi) = %v, want api.binance.com's alone", bans)
	}

	// A ban ends by Redis' clock: the next Ban drops it, and the key
	// expires with the last one.
	mustBan("dapi.binance.com", 429, 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if _, ok := banMap(t, s)["dapi.binance.com"]; ok {
		t.Errorf("Bans() lists a ban whose time has passed")
	}
	mustBan("eapi.binance.com", 429, time.Second)
	if rdb.HExists(ctx, bansKey, "dapi.binance.com").Val() {
		t.Errorf("Ban left an ended ban in %s", bansKey)
	}

	for _, host := range []string{"", "a b", "a\r\nb", strings.Repeat("h", 301)} {
		if err := s.Ban(ctx, host, 429, time.Second); err == nil {
			t.Errorf("Ban(%.20q) = nil, want an error", host)
		}
	}
}

// TestStore_Bans_hostile shows that what Redis holds under BansKey is not
// trusted: a key of another type, a hash too large, fields too long or
// unreadable never make a ban, nor a ban longer than MaxHold, nor a panic.
func TestStore_Bans_hostile(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), MaxHold: time.Hour})
	ctx := context.Background()
	farEnd := time.Now().Add(1000 * time.Hour).UnixMilli()

	rdb.Set(ctx, bansKey, "not a hash", 0)
	if _, err := s.Bans(ctx); err == nil {
		t.Errorf("Bans() of a string key = nil error, want one")
	}
	if err := s.Ban(ctx, "api.binance.com", 429, time.Second); err != nil {
		t.Errorf("Ban over a string key = %v, want it replaced", err)
	}
	if b := banMap(t, s); b["api.binance.com"].Code != 429 {
		t.Errorf("Bans() after the replacing Ban = %v", b)
	}

	rdb.Del(ctx, bansKey)
	rdb.HSet(ctx, bansKey,
		"a.example", "soon 429",
		"b.example", "",
		"c.example", strings.Repeat("9", 400)+" 429",
		strings.Repeat("d", 400), "1 429",
		"e.example", fmtInt(farEnd)+" 418",
	)
	bans := banMap(t, s)
	if len(bans) != 1 || bans["e.example"].Code != 418 || bans["e.example"].Left > time.Hour {
		t.Errorf("Bans() of a hostile hash = %v, want e.example's alone, at most MaxHold", bans)
	}

	rdb.Del(ctx, bansKey)
	for i := range 65 {
		rdb.HSet(ctx, bansKey, "h"+fmtInt(int64(i)), fmtInt(farEnd)+" 429")
	}
	if _, err := s.Bans(ctx); err == nil {
		t.Errorf("Bans() of 65 fields = nil error, want one")
	}
	if got := s.Errors()["bans"]; got != 2 {
		t.Errorf(`Errors()["bans"] = %d, want 2`, got)
	}
}

func TestStore_WatchBans(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	a := l2.New(l2.Config{Client: rdb, Logger: discard()})
	b := l2.New(l2.Config{Client: srv.Client(t), Logger: discard()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A ban recorded before the watch starts is delivered at once.
	if err := a.Ban(ctx, "api.binance.com", 418, time.Minute); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	w := b.WatchBans(ctx, time.Hour) // no poll in this test: announcements alone
	next := func(what string) l2.Ban {
		t.Helper()
		select {
		case ban := <-w:
			return ban
		case <-time.After(5 * time.Second):
			t.Fatalf("no ban delivered for %s", what)
			return l2.Ban{}
		}
	}
	if got := next("the recorded ban"); got.Host != "api.binance.com" || got.Code != 418 || got.Left <= 0 {
		t.Errorf("first ban = %+v, want api.binance.com's 418", got)
	} else if got.Seen.Before(before) || got.Seen.After(time.Now()) {
		t.Errorf("first ban seen at %v, want the time of the read, after %v", got.Seen, before)
	}
	if err := a.Ban(ctx, "fapi.binance.com", 429, time.Minute); err != nil {
		t.Fatal(err)
	}
	// An announcement delivers all the bans in force.
	seen := map[string]int{}
	for range 2 {
		ban := next("the announced ban")
		seen[ban.Host] = ban.Code
	}
	if seen["api.binance.com"] != 418 || seen["fapi.binance.com"] != 429 {
		t.Errorf("bans after the announcement = %v, want both", seen)
	}
	if err := a.Unban(ctx, "api.binance.com"); err != nil {
		t.Fatal(err)
	}
	if got := next("the lift"); got.Host != "api.binance.com" || got.Left != 0 {
		t.Errorf("after Unban: %+v, want api.binance.com lifted", got)
	}

	// An unreadable announcement is dropped and counted.
	rdb.Publish(ctx, "symcache:"+l2.BansChannel, "ban ")
	rdb.Publish(ctx, "symcache:"+l2.BansChannel, "shout api.binance.com")
	testutil.WaitFor(t, 5*time.Second, "two dropped announcements", func() bool { return b.Errors()["watch"] == 2 })

	cancel()
	for range w { // closed when ctx ends
	}
}

func TestStore_WatchBans_poll(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := s.WatchBans(ctx, 20*time.Millisecond)
	// Written behind the announcements' back, as after a lost message.
	end := time.Now().Add(time.Minute).UnixMilli()
	rdb.HSet(ctx, bansKey, "api.binance.com", fmtInt(end)+" 429")
	select {
	case ban := <-w:
		if ban.Host != "api.binance.com" || ban.Code != 429 {
			t.Errorf("polled ban = %+v", ban)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the poll delivered no ban")
	}
}

func banMap(t *testing.T, s *l2.Store) map[string]l2.Ban {
	t.Helper()
	bans, err := s.Bans(context.Background())
	if err != nil {
		t.Fatalf("Bans() = %v", err)
	}
	m := map[string]l2.Ban{}
	for _, b := range bans {
		m[b.Host] = b
	}
	return m
}

func fmtInt(n int64) string { return strconv.FormatInt(n, 10) }
