package l2_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// isUnusable reports whether err is what a read returns for a value it
// refused: a miss, but not ErrMiss itself.
func isUnusable(err error) bool { return errors.Is(err, l2.ErrMiss) && err != l2.ErrMiss }

// allocated returns the bytes f allocated (the change of TotalAlloc), and
// how long it took.
func allocated(f func()) (uint64, time.Duration) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	d := time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, d
}

// TestStore_MaxValueBytes checks values of exactly MaxValueBytes and one
// byte more, stored and (gzip) inflated: the first reads, the second is a
// miss that is not ErrMiss itself, logged at Warn and counted as
// "too_large"; a Store refuses to write what it would refuse to read.
func TestStore_MaxValueBytes(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	const limit = 64 << 10
	// An envelope of limit+d bytes, unencoded, with a body {"pad":"…"}.
	writer := l2.New(l2.Config{Client: rdb, Logger: discard()})
	withPad := func(n int) l2.Envelope { return envelope("spot", []byte(`{"pad":"`+strings.Repeat("x", n)+`"}`)) }
	if err := writer.Put(ctx, withPad(0), time.Minute); err != nil {
		t.Fatal(err)
	}
	overhead := int(rdb.StrLen(ctx, "symcache:{spot}:current").Val())
	sized := func(d int) l2.Envelope { return withPad(limit + d - overhead) }

	for _, enc := range []l2.Encoding{l2.JSON, l2.Gzip} {
		for _, tt := range []struct {
			name string
			size int // minus limit
		}{
			{"limit-1", -1},
			{"limit", 0},
			{"limit+1", 1},
			{"limit+1MiB", 1 << 20},
		} {
			t.Run(string(enc)+"/"+tt.name, func(t *testing.T) {
				logs := new(testutil.LogBuffer)
				writer := l2.New(l2.Config{Client: rdb, Logger: discard(), Encoding: enc})
				s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger(), MaxValueBytes: limit, Encoding: enc})
				want := sized(tt.size)
				if err := writer.Put(ctx, want, time.Minute); err != nil {
					t.Fatal(err)
				}
				if enc == l2.JSON {
					if n := rdb.StrLen(ctx, "symcache:{spot}:current").Val(); n != int64(limit+tt.size) {
						t.Fatalf("STRLEN current = %d, want %d", n, limit+tt.size)
					}
				}
				got, err := s.Current(ctx, "spot")
				if tt.size <= 0 {
					if err != nil {
						t.Fatalf("Current of %d bytes, MaxValueBytes %d = %v, want nil", limit+tt.size, limit, err)
					}
					checkEnvelope(t, "Current", got, want)
					if err := s.Put(ctx, want, time.Minute); err != nil {
						t.Errorf("Put of %d bytes, MaxValueBytes %d = %v, want nil", limit+tt.size, limit, err)
					}
					return
				}
				if !isUnusable(err) {
					t.Errorf("Current of %d bytes, MaxValueBytes %d = %v, want an error matching ErrMiss", limit+tt.size, limit, err)
				}
				if _, err := s.LastGood(ctx, "spot"); !isUnusable(err) {
					t.Errorf("LastGood of %d bytes, MaxValueBytes %d = %v, want an error matching ErrMiss", limit+tt.size, limit, err)
				}
				errs := s.Errors()
				if errs["too_large"] != 2 || errs["decode"] != 0 || errs["get"] != 0 {
					t.Errorf("Errors() = %v, want too_large 2, decode 0, get 0", errs)
				}
				if n := logs.Count(t, "level", "WARN", "market", "spot", "key", "symcache:{spot}:current"); n != 1 {
					t.Errorf("Current logged %d WARN records with market and key, want 1:\n%s", n, logs)
				}
				if err := s.Put(ctx, want, time.Minute); err == nil {
					t.Errorf("Put of %d bytes, MaxValueBytes %d = nil, want an error", limit+tt.size, limit)
				}
				if got := s.Errors()["put"]; got != 1 {
					t.Errorf(`Errors()["put"] after a refused Put = %d, want 1`, got)
				}
			})
		}
	}

	t.Run("ReadJSON", func(t *testing.T) {
		s := l2.New(l2.Config{Client: rdb, Logger: discard(), MaxValueBytes: limit})
		big := strings.Repeat("x", limit) // its JSON, quoted, is limit+2 bytes
		if err := writer.WriteJSON(ctx, "k", big, 0); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := s.ReadJSON(ctx, "k", &v); !isUnusable(err) {
			t.Errorf("ReadJSON of %d bytes, MaxValueBytes %d = %v, want an error matching ErrMiss", limit+2, limit, err)
		}
		rdb.Set(ctx, "symcache:z", testutil.Gzip(t, []byte(`"`+big+`"`)), 0)
		if err := s.ReadJSON(ctx, "z", &v); !isUnusable(err) {
			t.Errorf("ReadJSON of a gzip inflating to %d bytes, MaxValueBytes %d = %v, want an error matching ErrMiss", limit+2, limit, err)
		}
		if got := s.Errors()["too_large"]; got != 2 {
			t.Errorf(`Errors()["too_large"] = %d, want 2`, got)
		}
		if err := s.WriteJSON(ctx, "k", big, 0); err == nil {
			t.Errorf("WriteJSON of %d bytes, MaxValueBytes %d = nil, want an error", limit+2, limit)
		}
		if err := s.WriteJSON(ctx, "k", big[:limit-2], 0); err != nil {
			t.Errorf("WriteJSON of %d bytes, MaxValueBytes %d = %v, want nil", limit, limit, err)
		}
		if err := s.ReadJSON(ctx, "k", &v); err != nil || len(v) != limit-2 {
			t.Errorf("ReadJSON of %d bytes, MaxValueBytes %d = %d bytes, %v, want %d, nil", limit, limit, len(v), err, limit-2)
		}
	})
}

// TestStore_MaxValueBytes_default checks that the default bound lets the
// recorded spot answer and one grown to 15 MB through, in both encodings.
func TestStore_MaxValueBytes_default(t *testing.T) {
	srv := l2test.Start(t)
	ctx := context.Background()
	spot := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	for _, body := range [][]byte{spot, fixtures.Grow(t, spot, 15<<20)} {
		for _, enc := range []l2.Encoding{l2.JSON, l2.Gzip} {
			t.Run(fmt.Sprintf("%s/%dMB", enc, len(body)/1e6), func(t *testing.T) {
				s := l2.New(l2.Config{Client: srv.Client(t), Logger: discard(), Encoding: enc, Timeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
				want := envelope("spot", body)
				if err := s.Put(ctx, want, time.Minute); err != nil {
					t.Fatalf("Put = %v, want nil", err)
				}
				checkReads(t, s, "spot", want, "")
			})
		}
	}
}

// gzipBomb returns a gzip value of about 1 MB (1,032:1) that inflates to
// mib MiB of zeros, in one gzip member or in one member per MiB. The single
// member is built without compressing mib MiB: once the window is all
// zeros, each flushed MiB deflates to the same bytes.
func gzipBomb(mib int, members bool) []byte {
	header := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff} // deflate, no name, no time
	zeros := make([]byte, 1<<20)
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestCompression)
	if members {
		zw.Write(zeros)
		zw.Close()
		one := append(bytes.Clone(header), buf.Bytes()...)
		one = binary.LittleEndian.AppendUint32(one, crc32.ChecksumIEEE(zeros))
		one = binary.LittleEndian.AppendUint32(one, 1<<20)
		return bytes.Repeat(one, mib)
	}
	out := header
	var mb []byte // the deflate of the last MiB, flushed
	crc := uint32(0)
	for i := range mib {
		if i < 3 { // from the third MiB on, the bytes repeat
			zw.Write(zeros)
			zw.Flush()
			mb = bytes.Clone(buf.Bytes())
			buf.Reset()
		}
		out = append(out, mb...)
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}
	zw.Close() // the final, empty block
	out = append(out, buf.Bytes()...)
	out = binary.LittleEndian.AppendUint32(out, crc)
	return binary.LittleEndian.AppendUint32(out, uint32(mib<<20))
}

// TestStore_gzipBomb checks that a 1 MB gzip value inflating to 1 GiB is
// refused once MaxValueBytes (the default, 33 MiB) is inflated, allocating
// about that much rather than the whole: before the bound, a read took
// 500 to 770 MiB, and a cold sidecar reached 1.4 GB RSS.
func TestStore_gzipBomb(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	for _, members := range []bool{false, true} {
		bomb := gzipBomb(1024, members)
		t.Run(fmt.Sprintf("members=%t", members), func(t *testing.T) {
			// The bomb is what it claims: its first MiB inflates to zeros.
			if len(bomb) > 1100_000 {
				t.Fatalf("the bomb is %d bytes, want about 1 MB", len(bomb))
			}
			if head, err := gunzipPrefix(bomb, 1<<20); err != nil || !bytes.Equal(head, make([]byte, 1<<20)) {
				t.Fatalf("the bomb's first MiB: %v", err)
			}
			logs := new(testutil.LogBuffer)
			s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger(), Timeout: time.Minute, LastGoodTimeout: time.Minute})
			rdb.Set(ctx, "symcache:{spot}:current", bomb, 0)
			rdb.Set(ctx, "symcache:bomb", bomb, 0)
			const bound = 2*l2.DefaultMaxValueBytes + 16<<20
			var err error
			n, d := allocated(func() { _, err = s.Current(ctx, "spot") })
			t.Logf("Current of a %d-byte gzip bomb: %d MiB allocated in %v", len(bomb), n>>20, d)
			if !isUnusable(err) {
				t.Errorf("Current of a gzip bomb = %v, want an error matching ErrMiss", err)
			}
			if n > bound {
				t.Errorf("Current of a gzip bomb allocated %d MiB, want at most %d MiB", n>>20, bound>>20)
			}
			var v any
			n, d = allocated(func() { err = s.ReadJSON(ctx, "bomb", &v) })
			t.Logf("ReadJSON of a %d-byte gzip bomb: %d MiB allocated in %v", len(bomb), n>>20, d)
			if !isUnusable(err) {
				t.Errorf("ReadJSON of a gzip bomb = %v, want an error matching ErrMiss", err)
			}
			if n > bound {
				t.Errorf("ReadJSON of a gzip bomb allocated %d MiB, want at most %d MiB", n>>20, bound>>20)
			}
			if got := s.Errors()["too_large"]; got != 2 {
				t.Errorf(`Errors()["too_large"] = %d, want 2`, got)
			}
			if n := logs.Count(t, "level", "WARN", "msg", "l2 value too large, treating as a miss"); n != 2 {
				t.Errorf("2 reads of a bomb logged %d WARN records about a value too large, want 2:\n%s", n, logs)
			}
		})
	}
}

// gunzipPrefix returns the first n bytes b inflates to.
func gunzipPrefix(b []byte, n int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	_, err = io.ReadFull(zr, out)
	return out, err
}

// TestStore_tooLarge_notSent checks that a value far over MaxValueBytes is
// refused before it is sent: reading a 100 MiB value allocates nothing like
// it (before the bound: 100 MiB, in 350ms).
func TestStore_tooLarge_notSent(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := rdb.SetRange(ctx, "symcache:{spot}:current", 100<<20-1, "}").Err(); err != nil { // 100 MiB, made by Redis
		t.Fatal(err)
	}
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	var err error
	n, d := allocated(func() { _, err = s.Current(ctx, "spot") })
	t.Logf("Current of a 100 MiB value: %d bytes allocated in %v", n, d)
	if !isUnusable(err) || !strings.Contains(err.Error(), "104857600 bytes") {
		t.Errorf("Current of a 100 MiB value = %v, want an error matching ErrMiss that gives the size", err)
	}
	if n > 1<<20 {
		t.Errorf("Current of a 100 MiB value allocated %d bytes, want less than 1 MiB (the value not sent)", n)
	}
	if got := s.Errors()["too_large"]; got != 1 {
		t.Errorf(`Errors()["too_large"] = %d, want 1`, got)
	}
}

// TestStore_Meta_tooLarge checks that a meta field over 1 KiB is refused
// before it is sent, as a value over MaxValueBytes is.
func TestStore_Meta_tooLarge(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	if err := s.Put(ctx, envelope("spot", []byte(`{}`)), time.Minute); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, "symcache:{spot}:meta", "etag", strings.Repeat("e", 1<<10))
	if m, err := s.Meta(ctx, "spot"); err != nil || len(m.ETag) != 1<<10 {
		t.Errorf("Meta with a 1 KiB etag = %d bytes of etag, %v, want 1024, nil", len(m.ETag), err)
	}
	rdb.HSet(ctx, "symcache:{spot}:meta", "etag", strings.Repeat("e", 1<<10+1))
	if _, err := s.Meta(ctx, "spot"); !isUnusable(err) {
		t.Errorf("Meta with a 1025-byte etag = %v, want an error matching ErrMiss", err)
	}
	if got := s.Errors(); got["too_large"] != 1 || got["meta"] != 0 {
		t.Errorf("Errors() = %v, want too_large 1, meta 0", got)
	}
}

// TestStore_Put_futureMeta checks the clock skew Put allows a meta key: one
// dated MaxSkew or less past Redis' clock names a later snapshot (the Put
// of an older one is superseded); one dated later is corrupt and blocks
// nothing.
func TestStore_Put_futureMeta(t *testing.T) {
	if l2.MaxSkew != time.Minute {
		t.Fatalf("MaxSkew = %v, want 1m", l2.MaxSkew)
	}
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	for _, tt := range []struct {
		ahead   time.Duration
		blocked bool
	}{
		{30 * time.Second, true},
		{2 * time.Minute, false},
		{time.Hour, false}, // believed before MaxSkew
	} {
		t.Run(tt.ahead.String(), func(t *testing.T) {
			now, err := rdb.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			rdb.Del(ctx, "symcache:{spot}:meta")
			rdb.HSet(ctx, "symcache:{spot}:meta", "market", "spot", "fetched_at_ms", now.Add(tt.ahead).UnixMilli())
			e := envelope("spot", []byte(`{}`))
			e.FetchedAt = now
			err = s.Put(ctx, e, time.Minute)
			if tt.blocked && !errors.Is(err, l2.ErrSuperseded) {
				t.Errorf("Put under a meta %v ahead = %v, want ErrSuperseded", tt.ahead, err)
			}
			if !tt.blocked && err != nil {
				t.Errorf("Put under a meta %v ahead = %v, want nil", tt.ahead, err)
			}
		})
	}
}

// TestStore_Lock_noTTL checks that Lock gives a lock found without a TTL
// one, in the same script: the lease for a lock, 5 minutes (at most
// MaxHold) for a backoff marker; logs it at Warn once and counts it; and
// reports it held. Once it expires, Lock takes it.
func TestStore_Lock_noTTL(t *testing.T) {
	const lease = 300 * time.Millisecond
	tests := []struct {
		name     string
		make     func(context.Context, *l2.Store, *redis.Client) error
		maxHold  time.Duration
		backoff  bool
		wantTTL  time.Duration // at most
		expireOK bool          // wait for it to expire, and Lock again
	}{
		{"SET by hand", func(ctx context.Context, _ *l2.Store, r *redis.Client) error {
			return r.Set(ctx, "symcache:{spot}:lock", "someone", 0).Err()
		}, 0, false, lease, true},
		{"backoff marker SET by hand", func(ctx context.Context, _ *l2.Store, r *redis.Client) error {
			return r.Set(ctx, "symcache:{spot}:lock", "backoff:manual", 0).Err()
		}, 0, true, 5 * time.Minute, false},
		{"backoff marker SET by hand, MaxHold 1s", func(ctx context.Context, _ *l2.Store, r *redis.Client) error {
			return r.Set(ctx, "symcache:{spot}:lock", "backoff:manual", 0).Err()
		}, time.Second, true, time.Second, true},
		{"Hold, then PERSIST", func(ctx context.Context, s *l2.Store, r *redis.Client) error {
			tok, _, err := s.Lock(ctx, "spot", lease)
			if err == nil {
				err = s.Hold(ctx, "spot", tok, time.Minute, "upstream 429")
			}
			if err == nil {
				err = r.Persist(ctx, "symcache:{spot}:lock").Err()
			}
			return err
		}, 0, true, 5 * time.Minute, false},
		{"another type", func(ctx context.Context, _ *l2.Store, r *redis.Client) error {
			return r.HSet(ctx, "symcache:{spot}:lock", "a", "b").Err()
		}, 0, false, lease, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := l2test.Start(t)
			rdb := srv.Client(t)
			ctx := context.Background()
			logs := new(testutil.LogBuffer)
			s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger(), MaxHold: tt.maxHold})
			if err := tt.make(ctx, s, rdb); err != nil {
				t.Fatal(err)
			}
			if pttl := rdb.PTTL(ctx, "symcache:{spot}:lock").Val(); pttl != -1 {
				t.Fatalf("PTTL lock = %v, want -1 (no TTL)", pttl)
			}
			for i := range 2 {
				tok, held, err := s.Lock(ctx, "spot", lease)
				if err != nil || tok != "" || held.Backoff != tt.backoff {
					t.Errorf("Lock #%d over a lock without a TTL = %q, %+v, %v, want it held, Backoff %t", i, tok, held, err, tt.backoff)
				}
				if until := time.Until(held.Until); until <= 0 || until > tt.wantTTL {
					t.Errorf("Lock #%d: Held.Until in %v, want in (0, %v]", i, until, tt.wantTTL)
				}
			}
			if pttl := rdb.PTTL(ctx, "symcache:{spot}:lock").Val(); pttl <= 0 || pttl > tt.wantTTL {
				t.Errorf("PTTL lock after Lock = %v, want in (0, %v]", pttl, tt.wantTTL)
			}
			if got := s.Errors()["lock_no_ttl"]; got != 1 {
				t.Errorf(`Errors()["lock_no_ttl"] after 2 Locks = %d, want 1`, got)
			}
			if got := s.Errors()["lock"]; got != 0 {
				t.Errorf(`Errors()["lock"] = %d, want 0`, got)
			}
			if n := logs.Count(t, "level", "WARN", "market", "spot", "key", "symcache:{spot}:lock"); n != 1 {
				t.Errorf("2 Locks logged %d WARN records, want 1:\n%s", n, logs)
			}
			if !tt.expireOK {
				return
			}
			waitLock(t, s, lease) // it was given a TTL of at most tt.wantTTL
		})
	}
}

// TestStore_Hold_MaxHold checks that Hold never sets a backoff marker
// longer than MaxHold, 72h by default, and says so.
func TestStore_Hold_MaxHold(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	for _, tt := range []struct {
		maxHold, hold, want time.Duration
		warn                bool
	}{
		{0, time.Minute, time.Minute, false},
		{0, 72 * time.Hour, 72 * time.Hour, false},
		{0, 1000 * time.Hour, 72 * time.Hour, true},
		{10 * time.Second, time.Minute, 10 * time.Second, true},
	} {
		t.Run(fmt.Sprintf("MaxHold=%v/Hold=%v", tt.maxHold, tt.hold), func(t *testing.T) {
			logs := new(testutil.LogBuffer)
			s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger(), MaxHold: tt.maxHold})
			rdb.Del(ctx, "symcache:{spot}:lock")
			tok, _, err := s.Lock(ctx, "spot", time.Second)
			if err != nil || tok == "" {
				t.Fatal(tok, err)
			}
			if err := s.Hold(ctx, "spot", tok, tt.hold, "upstream 418"); err != nil {
				t.Fatal(err)
			}
			if pttl := rdb.PTTL(ctx, "symcache:{spot}:lock").Val(); pttl > tt.want || pttl < tt.want-5*time.Second {
				t.Errorf("PTTL lock after Hold(%v) = %v, want about %v", tt.hold, pttl, tt.want)
			}
			if n := logs.Count(t, "level", "WARN", "market", "spot"); (n == 1) != tt.warn {
				t.Errorf("Hold(%v) with MaxHold %v logged %d WARN records, want a Warn: %t", tt.hold, tt.maxHold, n, tt.warn)
			}
		})
	}
}

// TestStore_ClearBackoff checks that ClearBackoff deletes a backoff marker,
// and nothing else: not a fetch's lock, nor a key of another type.
func TestStore_ClearBackoff(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), WriteTimeout: 200 * time.Millisecond})
	const key = "symcache:{spot}:lock"
	if ok, err := s.ClearBackoff(ctx, "spot"); err != nil || ok {
		t.Errorf("ClearBackoff without a lock = %v, %v, want false, nil", ok, err)
	}
	tok, _, err := s.Lock(ctx, "spot", time.Minute)
	if err != nil || tok == "" {
		t.Fatal(tok, err)
	}
	if ok, err := s.ClearBackoff(ctx, "spot"); err != nil || ok {
		t.Errorf("ClearBackoff of a fetch's lock = %v, %v, want false, nil", ok, err)
	}
	if err := s.Hold(ctx, "spot", tok, time.Hour, "upstream 418"); err != nil { // the token still held it
		t.Fatal(err)
	}
	if ok, err := s.ClearBackoff(ctx, "spot"); err != nil || !ok {
		t.Errorf("ClearBackoff of a backoff marker = %v, %v, want true, nil", ok, err)
	}
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Errorf("ClearBackoff left the backoff marker")
	}
	if tok, _, err := s.Lock(ctx, "spot", time.Minute); err != nil || tok == "" {
		t.Errorf("Lock after ClearBackoff = %q, %v, want a token", tok, err)
	}
	rdb.Del(ctx, key)
	rdb.HSet(ctx, key, "backoff:", "x")
	if ok, err := s.ClearBackoff(ctx, "spot"); err != nil || ok {
		t.Errorf("ClearBackoff of a hash = %v, %v, want false, nil", ok, err)
	}
	if n := rdb.Exists(ctx, key).Val(); n != 1 {
		t.Errorf("ClearBackoff deleted a hash")
	}
	srv.Stop()
	if _, err := s.ClearBackoff(ctx, "spot"); err == nil {
		t.Errorf("ClearBackoff with Redis down = nil error, want one")
	}
	if got := s.Errors()["clear_backoff"]; got != 1 {
		t.Errorf(`Errors()["clear_backoff"] = %d, want 1`, got)
	}
}

// TestStore_Watch_drops checks that a message on the invalidate channel
// larger than 1 KiB, or that is no Meta with a market and a fetch time, is
// dropped and counted, and the Warn is not repeated for each.
func TestStore_Watch_drops(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: srv.Client(t), Logger: logs.Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := s.Watch(ctx)
	const channel = "symcache:invalidate"
	at := `"fetched_at":"2025-12-24T07:49:09.558Z"`
	good := func(etag string) string { return `{"market":"spot",` + at + `,"etag":"` + etag + `"}` }
	// The subscription starts in the background: announce until it is heard.
	for deadline := time.Now().Add(5 * time.Second); ; {
		rdb.Publish(ctx, channel, good("ready"))
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no announcement within 5s")
			}
			continue
		}
		break
	}
	bad := []string{
		good(strings.Repeat("e", 1<<10)), // over 1 KiB
		`{"market":"spot","etag":"e"}`,   // no fetched_at
		`{` + at + `}`,                   // no market
		`not json`,
	}
	for _, m := range bad {
		rdb.Publish(ctx, channel, m)
	}
	rdb.Publish(ctx, channel, good(strings.Repeat("e", 900))) // under 1 KiB
	for m := (l2.Meta{}); len(m.ETag) != 900; {
		select {
		case m = <-ch:
			if m.ETag != "ready" && len(m.ETag) != 900 {
				t.Errorf("announcement after %d bad ones = %+v, want the good one", len(bad), m)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no announcement within 5s")
		}
	}
	if got := s.Errors()["watch"]; got != uint64(len(bad)) {
		t.Errorf(`Errors()["watch"] = %d, want %d`, got, len(bad))
	}
	if n := logs.Count(t, "level", "WARN", "msg", "l2 ignoring an unreadable announcement"); n != 1 {
		t.Errorf("%d bad messages logged %d WARN records, want 1 (at most one a minute):\n%s", len(bad), n, logs)
	}
}

// beforeGetRange is a go-redis hook that calls f once, before the first
// GETRANGE the client sends.
type beforeGetRange struct {
	f    func()
	done bool
}

func (h *beforeGetRange) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *beforeGetRange) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *beforeGetRange) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "getrange" && !h.done {
			h.done = true
			h.f()
		}
		return next(ctx, cmd)
	}
}

// TestStore_read_changedBetween checks a value replaced between the size
// check and the read: one that grew past MaxValueBytes is sent only up to
// the bound, then refused; one deleted is a plain miss.
func TestStore_read_changedBetween(t *testing.T) {
	srv := l2test.Start(t)
	other := srv.Client(t)
	ctx := context.Background()
	const limit = 64 << 10
	small := envelope("spot", []byte(`{"symbols":[]}`))
	for _, tt := range []struct {
		name   string
		change func()
		check  func(t *testing.T, s *l2.Store, err error)
	}{
		{"grew past the bound", func() {
			other.SetRange(ctx, "symcache:{spot}:current", 100<<20-1, "}")
		}, func(t *testing.T, s *l2.Store, err error) {
			if !isUnusable(err) || s.Errors()["too_large"] != 1 {
				t.Errorf("Current = %v, too_large %d; want an error matching ErrMiss, counted", err, s.Errors()["too_large"])
			}
		}},
		{"deleted", func() {
			other.Del(ctx, "symcache:{spot}:current")
		}, func(t *testing.T, s *l2.Store, err error) {
			if err != l2.ErrMiss {
				t.Errorf("Current = %v, want ErrMiss itself", err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rdb := srv.Client(t)
			s := l2.New(l2.Config{Client: rdb, Logger: discard(), MaxValueBytes: limit, Timeout: 5 * time.Second}) // time for the change
			if err := s.Put(ctx, small, time.Minute); err != nil {
				t.Fatal(err)
			}
			rdb.AddHook(&beforeGetRange{f: tt.change})
			var err error
			n, _ := allocated(func() { _, err = s.Current(ctx, "spot") })
			tt.check(t, s, err)
			if n > limit+1<<20 {
				t.Errorf("Current allocated %d bytes, want at most MaxValueBytes (%d) and 1 MiB", n, limit)
			}
		})
	}
}
