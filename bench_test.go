package symcache_test

import (
	"context"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// BenchmarkCache_Get_L1Hit is the composed Get when L1 holds a fresh snapshot.
func BenchmarkCache_Get_L1Hit(b *testing.B) {
	c := newWorld(b).process(symcache.Config{TTL: time.Hour}, markets(exchangeinfo.Spot))
	if _, err := c.Get(context.Background(), exchangeinfo.Spot); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(spotFixture(b))))
	for b.Loop() {
		if r, err := c.Get(context.Background(), exchangeinfo.Spot); err != nil || r.Source != symcache.HitL1 {
			b.Fatalf("Get = %v, %v; want HIT-L1", r.Source, err)
		}
	}
}

// BenchmarkPromotion measures what an L2 hit costs a process with an empty
// L1 — the Redis GET, envelope decoding, Parse (validate and index) and the
// gzip of the body — against the bare Redis GET of the same value, in the
// same run, for both L2 encodings. A gzip value carries the body's gzip
// (l2.Envelope.BodyGzip); from a JSON value, Get serves as soon as Parse is
// done and compresses in the background ("servable"), and "with-gzip"
// counts that compression too.
func BenchmarkPromotion(b *testing.B) {
	srv := l2test.Start(b)
	rdb := srv.Client(b)
	body := spotFixture(b)
	snap, err := exchangeinfo.Parse(exchangeinfo.Spot, body, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	promote := func(b *testing.B, store *l2.Store, gzip bool) {
		e, err := store.Current(context.Background(), "spot")
		if err != nil {
			b.Fatal(err)
		}
		s, err := exchangeinfo.Parse(exchangeinfo.Spot, e.ExchangeInfo, e.FetchedAt)
		if err != nil {
			b.Fatal(err)
		}
		if e.BodyGzip != nil {
			s.UseGzip(e.BodyGzip)
		}
		if gzip {
			s.Gzip()
		}
	}
	for _, enc := range []l2.Encoding{l2.JSON, l2.Gzip} {
		store := l2.New(l2.Config{Client: rdb, Encoding: enc, Timeout: 10 * time.Second, Logger: discard()})
		env := l2.Envelope{Market: "spot", FetchedAt: snap.FetchedAt(), ServerTime: snap.ServerTime().UnixMilli(), ETag: snap.ETag(), ExchangeInfo: body}
		if err := store.Put(context.Background(), env, time.Hour); err != nil {
			b.Fatal(err)
		}
		b.Run(string(enc)+"/redis-get", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := rdb.Get(context.Background(), "symcache:{spot}:current").Bytes(); err != nil {
					b.Fatal(err)
				}
			}
		})
		if enc == l2.JSON {
			b.Run(string(enc)+"/get-decode-parse-servable", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					promote(b, store, false)
				}
			})
		}
		b.Run(string(enc)+"/get-decode-parse-with-gzip", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				promote(b, store, true)
			}
		})
	}
}
