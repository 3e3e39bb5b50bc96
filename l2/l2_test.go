package l2_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// logged reports whether logs hold a record at level about key, with tier
// "l2" and an err.
func logged(t *testing.T, logs *testutil.LogBuffer, level, key string) bool {
	t.Helper()
	for _, r := range logs.Records(t) {
		if r["level"] == level && r["key"] == key && r["tier"] == "l2" && r["err"] != nil && r["err"] != "" {
			return true
		}
	}
	return false
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// envelope returns a valid envelope of market around body.
func envelope(market string, body []byte) l2.Envelope {
	return l2.Envelope{
		Market:       market,
		FetchedAt:    time.Date(2025, 12, 24, 8, 49, 9, 558123456, time.FixedZone("CET", 3600)),
		ServerTime:   1766562549558,
		ETag:         `"3f2a-usdm"`,
		ExchangeInfo: body,
	}
}

// checkReads checks that both Current and LastGood of market on s return
// want; where, if not empty, says which server s reads (in messages).
func checkReads(t *testing.T, s *l2.Store, market string, want l2.Envelope, where string) {
	t.Helper()
	if where != "" {
		where = " " + where
	}
	for name, read := range map[string]func(context.Context, string) (l2.Envelope, error){"Current": s.Current, "LastGood": s.LastGood} {
		got, err := read(context.Background(), market)
		if err != nil {
			t.Fatalf("%s(%q)%s = %v, want nil", name, market, where, err)
		}
		checkEnvelope(t, fmt.Sprintf("%s(%q)%s", name, market, where), got, want)
	}
}

func checkEnvelope(t *testing.T, op string, got, want l2.Envelope) {
	t.Helper()
	if got.Market != want.Market || !got.FetchedAt.Equal(want.FetchedAt) || got.ServerTime != want.ServerTime || got.ETag != want.ETag {
		t.Errorf("%s = {%q %v %d %q}, want {%q %v %d %q}", op,
			got.Market, got.FetchedAt, got.ServerTime, got.ETag, want.Market, want.FetchedAt, want.ServerTime, want.ETag)
	}
	if !bytes.Equal(got.ExchangeInfo, want.ExchangeInfo) {
		t.Errorf("%s: ExchangeInfo = %d bytes %.40q…, want %d bytes %.40q… (byte for byte)", op,
			len(got.ExchangeInfo), got.ExchangeInfo, len(want.ExchangeInfo), want.ExchangeInfo)
	}
}

func TestParseEncoding(t *testing.T) {
	tests := []struct {
		in      string
		want    l2.Encoding
		wantErr bool
	}{
		{"json", l2.JSON, false},
		{"gzip", l2.Gzip, false},
		{"", "", true},
		{"JSON", "", true},
		{"zstd", "", true},
	}
	for _, tt := range tests {
		got, err := l2.ParseEncoding(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseEncoding(%q) = %q, %v, want %q, error %t", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestNew_panics(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	tests := map[string]l2.Config{
		"nil client":       {},
		"unknown encoding": {Client: rdb, Encoding: "zstd"},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", cfg)
				}
			}()
			l2.New(cfg)
		})
	}
}

func TestKeys(t *testing.T) {
	if got, want := l2.CurrentKey("spot"), "{spot}:current"; got != want {
		t.Errorf("CurrentKey(%q) = %q, want %q", "spot", got, want)
	}
	if got, want := l2.LastGoodKey("spot"), "{spot}:last_good"; got != want {
		t.Errorf("LastGoodKey(%q) = %q, want %q", "spot", got, want)
	}
}

func TestStore_WriteJSON_ReadJSON(t *testing.T) {
	type symbol struct {
		Symbol string   `json:"symbol"`
		Tick   float64  `json:"tick"`
		Tags   []string `json:"tags"`
	}
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()

	tests := []struct {
		name string
		key  string
		v    any // a pointer, so that reading into a new value of its type compares
		ttl  time.Duration
	}{
		{"struct with ttl in seconds", "symbols:BTCUSDT", &symbol{"BTCUSDT", 0.01, []string{"spot", "margin"}}, 30 * time.Second},
		{"map with ttl in milliseconds", "m", &map[string]int{"a": 1}, 1500 * time.Millisecond},
		{"string without ttl", "s", ptr("héllo \u2028 <&>"), 0},
		{"number without ttl", "n", ptr(42.5), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.WriteJSON(ctx, tt.key, tt.v, tt.ttl); err != nil {
				t.Fatalf("WriteJSON(%q) = %v, want nil", tt.key, err)
			}
			got := reflect.New(reflect.TypeOf(tt.v).Elem())
			if err := s.ReadJSON(ctx, tt.key, got.Interface()); err != nil {
				t.Fatalf("ReadJSON(%q) = %v, want nil", tt.key, err)
			}
			if !reflect.DeepEqual(got.Interface(), tt.v) {
				t.Errorf("ReadJSON(%q) = %+v, want %+v", tt.key, got.Elem(), reflect.ValueOf(tt.v).Elem())
			}
			pttl, err := rdb.PTTL(ctx, "symcache:"+tt.key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if tt.ttl == 0 && pttl != -1 {
				t.Errorf("PTTL(%q) = %v, want -1ns (no expiry)", tt.key, pttl)
			}
			if tt.ttl > 0 && (pttl <= 0 || pttl > tt.ttl) {
				t.Errorf("PTTL(%q) = %v, want in (0, %v]", tt.key, pttl, tt.ttl)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestStore_ReadJSON_miss(t *testing.T) {
	srv := l2test.Start(t)
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: srv.Client(t), Logger: logs.Logger()})
	var v any
	if err := s.ReadJSON(context.Background(), "absent", &v); err != l2.ErrMiss {
		t.Errorf("ReadJSON(%q) = %v, want exactly ErrMiss", "absent", err)
	}
	if logs.String() != "" {
		t.Errorf("ReadJSON(%q) logged %s, want nothing for a plain miss", "absent", logs)
	}
}

func TestStore_ReadJSON_corrupt(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		value []byte
	}{
		{"not JSON", []byte("hello")},
		{"truncated JSON", []byte(`{"symbol":"BTC`)},
		{"wrong type", []byte(`["a"]`)},
		{"truncated gzip", testutil.Gzip(t, []byte(`{"symbol":"BTCUSDT"}`))[:12]},
		{"gzip of garbage", testutil.Gzip(t, []byte("<html>"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := new(testutil.LogBuffer)
			s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger()})
			if err := rdb.Set(ctx, "symcache:bad", tt.value, 0).Err(); err != nil {
				t.Fatal(err)
			}
			var v struct{ Symbol string }
			err := s.ReadJSON(ctx, "bad", &v)
			if !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
				t.Errorf("ReadJSON(%q) = %v, want an error matching ErrMiss that wraps the cause", "bad", err)
			}
			if !logged(t, logs, "WARN", "symcache:bad") {
				t.Errorf("ReadJSON(%q) logged %q, want a WARN with key symcache:bad", "bad", logs)
			}
		})
	}
	t.Run("gzip of JSON reads", func(t *testing.T) {
		s := l2.New(l2.Config{Client: rdb, Logger: discard()})
		rdb.Set(ctx, "symcache:z", testutil.Gzip(t, []byte(`{"Symbol":"ETHBTC"}`)), 0)
		var v struct{ Symbol string }
		if err := s.ReadJSON(ctx, "z", &v); err != nil || v.Symbol != "ETHBTC" {
			t.Errorf("ReadJSON(%q) = %+v, %v, want {ETHBTC}, nil", "z", v, err)
		}
	})
}

func TestStore_WriteJSON_errors(t *testing.T) {
	srv := l2test.Start(t)
	tests := []struct {
		name string
		v    any
		ttl  time.Duration
	}{
		{"not marshalable", make(chan int), 0},
		{"negative ttl", 1, -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := new(testutil.LogBuffer)
			s := l2.New(l2.Config{Client: srv.Client(t), Logger: logs.Logger()})
			if err := s.WriteJSON(context.Background(), "k", tt.v, tt.ttl); err == nil {
				t.Errorf("WriteJSON(%q, %T, %v) = nil, want an error", "k", tt.v, tt.ttl)
			}
			if !logged(t, logs, "ERROR", "symcache:k") {
				t.Errorf("WriteJSON logged %q, want an ERROR with key symcache:k", logs)
			}
		})
	}
}

// TestStore_redisDown checks that every call fails fast and visibly without
// Redis, that reads are misses, and that the Store recovers when Redis returns.
func TestStore_redisDown(t *testing.T) {
	srv := l2test.Start(t)
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: srv.Client(t), Logger: logs.Logger(), Timeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	body := fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
	if err := s.Put(ctx, envelope("spot", body), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	start := time.Now()
	var v any
	if err := s.ReadJSON(ctx, "k", &v); !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
		t.Errorf("ReadJSON(%q) with Redis down = %v, want an error matching ErrMiss that wraps the cause", "k", err)
	}
	if !logged(t, logs, "WARN", "symcache:k") {
		t.Errorf("ReadJSON with Redis down logged %q, want a WARN with key symcache:k", logs)
	}
	for _, read := range []func(context.Context, string) (l2.Envelope, error){s.Current, s.LastGood} {
		if _, err := read(ctx, "spot"); !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
			t.Errorf("Current/LastGood(%q) with Redis down = %v, want an error matching ErrMiss", "spot", err)
		}
	}
	if !logged(t, logs, "WARN", "symcache:{spot}:last_good") {
		t.Errorf("LastGood with Redis down logged %q, want a WARN with its key", logs)
	}
	if err := s.WriteJSON(ctx, "k", 1, 0); err == nil || errors.Is(err, l2.ErrMiss) {
		t.Errorf("WriteJSON(%q) with Redis down = %v, want an error, not a miss", "k", err)
	}
	if !logged(t, logs, "ERROR", "symcache:k") {
		t.Errorf("WriteJSON with Redis down logged %q, want an ERROR with key symcache:k", logs)
	}
	if err := s.Put(ctx, envelope("spot", body), time.Minute); err == nil {
		t.Errorf("Put with Redis down = nil, want an error")
	}
	if !logged(t, logs, "ERROR", "symcache:{spot}:current") {
		t.Errorf("Put with Redis down logged %q, want an ERROR with key symcache:{spot}:current", logs)
	}
	if err := s.Ping(ctx); err == nil {
		t.Errorf("Ping with Redis down = nil, want an error")
	}
	if d := time.Since(start); d > 6*300*time.Millisecond+time.Second {
		t.Errorf("7 calls with Redis down took %v, want each within Timeout (300ms)", d)
	}

	srv.Restart(t)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after Restart = %v, want nil", err)
	}
	if _, err := s.Current(ctx, "spot"); err != l2.ErrMiss {
		t.Errorf("Current(%q) on an empty Redis = %v, want exactly ErrMiss", "spot", err)
	}
}

// TestStore_Timeout checks that Timeout bounds a call Redis does not answer.
func TestStore_Timeout(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	s := l2.New(l2.Config{Client: srv.Client(t), Logger: discard(), Timeout: 100 * time.Millisecond})
	if err := s.Ping(ctx); err != nil { // connect before the pause
		t.Fatal(err)
	}
	if err := rdb.ClientPause(ctx, time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var v any
	err := s.ReadJSON(ctx, "k", &v)
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Errorf("ReadJSON during CLIENT PAUSE took %v, want about Timeout (100ms)", d)
	}
	if !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
		t.Errorf("ReadJSON during CLIENT PAUSE = %v, want an error matching ErrMiss", err)
	}
}

// TestStore_ReadJSON_canceled checks that a caller giving up is a miss, but not logged.
func TestStore_ReadJSON_canceled(t *testing.T) {
	srv := l2test.Start(t)
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: srv.Client(t), Logger: logs.Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var v any
	if err := s.ReadJSON(ctx, "k", &v); !errors.Is(err, l2.ErrMiss) || !errors.Is(err, context.Canceled) {
		t.Errorf("ReadJSON with a canceled ctx = %v, want an error matching ErrMiss and context.Canceled", err)
	}
	if logs.String() != "" {
		t.Errorf("ReadJSON with a canceled ctx logged %s, want nothing", logs)
	}
}

// TestStore_noPassword checks that a Redis password appears in no error or log.
func TestStore_noPassword(t *testing.T) {
	srv := l2test.Start(t)
	if err := srv.Client(t).ConfigSet(context.Background(), "requirepass", "the-right-one").Err(); err != nil {
		t.Fatal(err)
	}
	const password = "hunter2-s3cret"
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: password, ContextTimeoutEnabled: true})
	defer rdb.Close()
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger(), Timeout: 300 * time.Millisecond})
	ctx := context.Background()
	var errs []error
	var v any
	errs = append(errs, s.ReadJSON(ctx, "k", &v), s.WriteJSON(ctx, "k", 1, 0), s.Ping(ctx))
	_, err := s.Current(ctx, "spot")
	errs = append(errs, err, s.Put(ctx, envelope("spot", []byte("{}")), time.Minute))
	for _, err := range errs {
		if err == nil {
			t.Fatal("a call with a wrong password succeeded, want an AUTH error")
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("error %q contains the password", err)
		}
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("logs %q contain the password", logs)
	}
}

func TestStore_Put(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	// 1.7 MB of JSON: a GET takes about 10ms under -race, near the 50ms default on a busy machine.
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), Timeout: time.Second})
	ctx := context.Background()
	body := fixtures.Read(t, "binance/usdm_exchangeinfo.json") // pretty-printed, with \u escapes
	if !bytes.Contains(body, []byte("\n    ")) || !bytes.Contains(body, []byte(`\u`)) {
		t.Fatal("usdm_exchangeinfo.json is no longer pretty-printed with \\u escapes")
	}
	want := envelope("usdm", body)
	const ttl = 5 * time.Minute
	if err := s.Put(ctx, want, ttl); err != nil {
		t.Fatalf("Put = %v, want nil", err)
	}

	checkReads(t, s, "usdm", want, "")

	if n, err := rdb.Exists(ctx, "symcache:{usdm}:current", "symcache:{usdm}:last_good").Result(); n != 2 || err != nil {
		t.Errorf("Exists(symcache:{usdm}:current, symcache:{usdm}:last_good) = %d, %v, want 2, nil", n, err)
	}
	if d, err := rdb.PTTL(ctx, "symcache:{usdm}:current").Result(); err != nil || d <= 0 || d > ttl {
		t.Errorf("PTTL(current) = %v, %v, want in (0, %v]", d, err, ttl)
	}
	if d, err := rdb.TTL(ctx, "symcache:{usdm}:last_good").Result(); err != nil || d != -1 {
		t.Errorf("TTL(last_good) = %v, %v, want -1 (no expiry)", d, err)
	}

	// The raw value, decoded independently of l2: the documented layout (docs/design.md).
	raw, err := rdb.Get(ctx, "symcache:{usdm}:current").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("GET symcache:{usdm}:current is not JSON: %v", err)
	}
	var (
		market, fetchedAt, etag string
		serverTime              int64
	)
	for name, dst := range map[string]any{"market": &market, "fetched_at": &fetchedAt, "etag": &etag, "server_time": &serverTime} {
		if err := json.Unmarshal(fields[name], dst); err != nil {
			t.Errorf("raw envelope field %q = %s: %v", name, fields[name], err)
		}
	}
	at, err := time.Parse(time.RFC3339, fetchedAt)
	if err != nil || !at.Equal(want.FetchedAt) || !strings.HasSuffix(fetchedAt, "Z") {
		t.Errorf("raw fetched_at = %q, want %v as RFC 3339 in UTC", fetchedAt, want.FetchedAt)
	}
	if market != "usdm" || serverTime != want.ServerTime || etag != want.ETag {
		t.Errorf("raw envelope = {%q %d %q}, want {%q %d %q}", market, serverTime, etag, "usdm", want.ServerTime, want.ETag)
	}
	if !bytes.Equal(fields["exchange_info"], body) {
		t.Errorf("raw exchange_info differs from the body (%d bytes, want %d)", len(fields["exchange_info"]), len(body))
	}
}

// TestStore_Put_bytes checks bodies that re-marshaling would change.
func TestStore_Put_bytes(t *testing.T) {
	srv := l2test.Start(t)
	ctx := context.Background()
	tests := []struct {
		name string
		body []byte
	}{
		{"empty object", []byte(`{}`)},
		{"escapes", []byte(`{"msg":"caf\u00e9 \u003c \/ \"q\"","n":1.50e+3}`)},
		{"pretty with trailing newline", []byte("{\n  \"symbols\": [ ]\n}\n")},
		{"trailing spaces and tabs", []byte("{\"a\":{}} \t\r\n")},
		{"raw UTF-8 and HTML", []byte(`{"name":"币安 <b>&amp;</b>"}`)},
	}
	for _, enc := range []l2.Encoding{l2.JSON, l2.Gzip} {
		s := l2.New(l2.Config{Client: srv.Client(t), Logger: discard(), Encoding: enc})
		for _, tt := range tests {
			t.Run(string(enc)+"/"+tt.name, func(t *testing.T) {
				want := envelope("coinm", tt.body)
				if err := s.Put(ctx, want, time.Minute); err != nil {
					t.Fatalf("Put = %v, want nil", err)
				}
				got, err := s.Current(ctx, "coinm")
				if err != nil {
					t.Fatalf("Current(%q) = %v, want nil", "coinm", err)
				}
				checkEnvelope(t, `Current("coinm")`, got, want)
			})
		}
	}
}

func TestStore_Put_gzip(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	body := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), Encoding: l2.Gzip})
	if err := s.Put(ctx, envelope("spot", body), time.Minute); err != nil {
		t.Fatalf("Put = %v, want nil", err)
	}
	raw, err := rdb.Get(ctx, "symcache:{spot}:current").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Fatalf("GET symcache:{spot}:current starts with % x, want the gzip magic 1f 8b", raw[:min(len(raw), 2)])
	}
	if len(raw) > len(body)/10 {
		t.Errorf("gzip value is %d bytes for a %d-byte body, want at least 10:1", len(raw), len(body))
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip value: %v", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(plain, &fields); err != nil {
		t.Fatalf("gunzipped value is not JSON: %v", err)
	}
	if string(fields["market"]) != `"spot"` || !bytes.Equal(fields["exchange_info"], body) {
		t.Errorf("gunzipped envelope = market %s, %d bytes of exchange_info, want \"spot\" and the body", fields["market"], len(fields["exchange_info"]))
	}
	if ls, err := rdb.Get(ctx, "symcache:{spot}:last_good").Bytes(); err != nil || !bytes.Equal(ls, raw) {
		t.Errorf("last_good differs from current (%v)", err)
	}
}

// TestStore_mixedEncodings checks that every sidecar reads what any wrote.
func TestStore_mixedEncodings(t *testing.T) {
	srv := l2test.Start(t)
	ctx := context.Background()
	body := fixtures.Read(t, "binance/coinm_exchangeinfo.json")
	for _, w := range []l2.Encoding{l2.JSON, l2.Gzip} {
		for _, r := range []l2.Encoding{l2.JSON, l2.Gzip} {
			t.Run(string(w)+" read by "+string(r), func(t *testing.T) {
				writer := l2.New(l2.Config{Client: srv.Client(t), Logger: discard(), Encoding: w})
				reader := l2.New(l2.Config{Client: srv.Client(t), Logger: discard(), Encoding: r})
				want := envelope("coinm", body)
				want.ETag = string(w) + "-" + string(r)
				if err := writer.Put(ctx, want, time.Minute); err != nil {
					t.Fatal(err)
				}
				checkReads(t, reader, "coinm", want, "")
			})
		}
	}
}

func TestStore_Current_corrupt(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	good := `{"market":"spot","fetched_at":"2025-12-24T07:49:09.558Z","server_time":1766562549558,"etag":"e","exchange_info":{"symbols":[]}}`
	tests := []struct {
		name  string
		value []byte
	}{
		{"empty", []byte{}},
		{"not JSON", []byte("<html><body>502 Bad Gateway</body></html>")},
		{"truncated JSON", []byte(good[:len(good)/2])},
		{"truncated at exchange_info", []byte(good[:len(good)-2])},
		{"truncated gzip", testutil.Gzip(t, []byte(good))[:40]},
		{"gzip of garbage", testutil.Gzip(t, []byte("garbage"))},
		{"gzip magic only", []byte{0x1f, 0x8b}},
		{"other market", []byte(strings.Replace(good, `"spot"`, `"usdm"`, 1))},
		{"no market", []byte(strings.Replace(good, `"market":"spot",`, "", 1))},
		{"no exchange_info", []byte(strings.Replace(good, `,"exchange_info":{"symbols":[]}`, "", 1))},
		{"null exchange_info", []byte(strings.Replace(good, `{"symbols":[]}`, "null", 1))},
		{"array exchange_info", []byte(strings.Replace(good, `{"symbols":[]}`, "[]", 1))},
		{"string exchange_info", []byte(strings.Replace(good, `{"symbols":[]}`, `"{}"`, 1))},
		{"no fetched_at", []byte(strings.Replace(good, `"fetched_at":"2025-12-24T07:49:09.558Z",`, "", 1))},
		{"zero fetched_at", []byte(strings.Replace(good, "2025-12-24T07:49:09.558Z", "0001-01-01T00:00:00Z", 1))},
		{"fetched_at not RFC 3339", []byte(strings.Replace(good, "2025-12-24T07:49:09.558Z", "yesterday", 1))},
		{"server_time a string", []byte(strings.Replace(good, "1766562549558", `"1766562549558"`, 1))},
		{"array", []byte("[" + good + "]")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := new(testutil.LogBuffer)
			s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger()})
			if err := rdb.Set(ctx, "symcache:{spot}:current", tt.value, 0).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := s.Current(ctx, "spot")
			if !errors.Is(err, l2.ErrMiss) || err == l2.ErrMiss {
				t.Errorf("Current(%q) = %v, want an error matching ErrMiss that wraps the cause", "spot", err)
			}
			if !logged(t, logs, "WARN", "symcache:{spot}:current") || !strings.Contains(logs.String(), `"market":"spot"`) {
				t.Errorf("Current(%q) logged %q, want a WARN with market and key", "spot", logs)
			}

			want := envelope("spot", []byte(`{"symbols":[{"symbol":"ETHBTC"}]}`))
			if err := s.Put(ctx, want, time.Minute); err != nil {
				t.Fatalf("Put over a corrupt value = %v, want nil", err)
			}
			got, err := s.Current(ctx, "spot")
			if err != nil {
				t.Fatalf("Current(%q) after Put = %v, want nil", "spot", err)
			}
			checkEnvelope(t, `Current("spot")`, got, want)
		})
	}
	t.Run("good value reads", func(t *testing.T) {
		s := l2.New(l2.Config{Client: rdb, Logger: discard()})
		rdb.Set(ctx, "symcache:{spot}:last_good", good, 0)
		got, err := s.LastGood(ctx, "spot")
		if err != nil || got.ServerTime != 1766562549558 || string(got.ExchangeInfo) != `{"symbols":[]}` {
			t.Errorf("LastGood(%q) = %+v, %v, want the hand-written envelope", "spot", got, err)
		}
	})
}

func TestStore_Current_miss(t *testing.T) {
	srv := l2test.Start(t)
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: srv.Client(t), Logger: logs.Logger()})
	for name, read := range map[string]func(context.Context, string) (l2.Envelope, error){"Current": s.Current, "LastGood": s.LastGood} {
		if _, err := read(context.Background(), "spot"); err != l2.ErrMiss {
			t.Errorf("%s(%q) = %v, want exactly ErrMiss", name, "spot", err)
		}
	}
	if logs.String() != "" {
		t.Errorf("a plain miss logged %s, want nothing", logs)
	}
}

// TestStore_Put_refuses checks that Put writes nothing a reader would refuse.
func TestStore_Put_refuses(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	good := envelope("spot", []byte(`{"symbols":[]}`))
	tests := []struct {
		name string
		edit func(*l2.Envelope)
		ttl  time.Duration
	}{
		{"zero ttl", func(*l2.Envelope) {}, 0},
		{"negative ttl", func(*l2.Envelope) {}, -time.Second},
		{"no market", func(e *l2.Envelope) { e.Market = "" }, time.Minute},
		{"zero fetched_at", func(e *l2.Envelope) { e.FetchedAt = time.Time{} }, time.Minute},
		{"fetched_at out of range", func(e *l2.Envelope) { e.FetchedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, time.Minute},
		{"empty exchange_info", func(e *l2.Envelope) { e.ExchangeInfo = nil }, time.Minute},
		{"array exchange_info", func(e *l2.Envelope) { e.ExchangeInfo = []byte(`[]`) }, time.Minute},
		{"leading space", func(e *l2.Envelope) { e.ExchangeInfo = []byte(` {}`) }, time.Minute},
		{"truncated exchange_info", func(e *l2.Envelope) { e.ExchangeInfo = []byte(`{"symbols":[`) }, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := new(testutil.LogBuffer)
			s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger()})
			e := good
			tt.edit(&e)
			if err := s.Put(ctx, e, tt.ttl); err == nil {
				t.Errorf("Put(%s) = nil, want an error", tt.name)
			}
			if !strings.Contains(logs.String(), `"level":"ERROR"`) {
				t.Errorf("Put(%s) logged %q, want an ERROR", tt.name, logs)
			}
			if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
				t.Errorf("Put(%s) wrote %d keys, want 0", tt.name, n)
			}
		})
	}
}

// cmdRecorder records the name of every command the client sends.
type cmdRecorder struct {
	mu   sync.Mutex
	cmds []string
}

// take returns the commands recorded since the last take, leaving out the
// connection's handshake.
func (r *cmdRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var cmds []string
	for _, c := range r.cmds {
		if c != "client" && c != "hello" {
			cmds = append(cmds, c)
		}
	}
	r.cmds = nil
	return cmds
}

func (r *cmdRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *cmdRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.mu.Lock()
		r.cmds = append(r.cmds, cmd.Name())
		r.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (r *cmdRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.mu.Lock()
		for _, c := range cmds {
			r.cmds = append(r.cmds, c.Name())
		}
		r.mu.Unlock()
		return next(ctx, cmds)
	}
}

// TestStore_Put_atomic checks that Put writes with one script call (all or
// nothing, so current, last_good and meta never disagree), announces it, and
// that every key holds the newest envelope after each Put.
func TestStore_Put_atomic(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	rec := new(cmdRecorder)
	rdb.AddHook(rec)
	s := l2.New(l2.Config{Client: rdb, Logger: discard()})
	ctx := context.Background()
	for i, body := range []string{`{"v":1}`, `{"v":2}`, `{"v":3}`} {
		want := envelope("spot", []byte(body))
		want.ServerTime += int64(i)
		want.FetchedAt = want.FetchedAt.Add(time.Duration(i) * time.Second)
		want.ETag = fmt.Sprintf(`"v%d"`, i)
		rec.take()
		if err := s.Put(ctx, want, time.Minute); err != nil {
			t.Fatalf("Put #%d = %v, want nil", i, err)
		}
		// The first EVALSHA finds no script and is sent again as EVAL.
		wantCmds := "evalsha publish"
		if i == 0 {
			wantCmds = "evalsha eval publish"
		}
		if got := strings.Join(rec.take(), " "); got != wantCmds {
			t.Errorf("commands Put #%d sent = %q, want %q", i, got, wantCmds)
		}
		cur, err1 := s.Current(ctx, "spot")
		last, err2 := s.LastGood(ctx, "spot")
		meta, err3 := s.Meta(ctx, "spot")
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("Current, LastGood, Meta after Put #%d = %v, %v, %v, want nil", i, err1, err2, err3)
		}
		checkEnvelope(t, "Current", cur, want)
		checkEnvelope(t, "LastGood", last, want)
		if !meta.FetchedAt.Equal(want.FetchedAt.Truncate(time.Millisecond)) || meta.ETag != want.ETag {
			t.Errorf("Meta = %v %q, want %v %q", meta.FetchedAt, meta.ETag, want.FetchedAt, want.ETag)
		}
	}
}

// TestStore_Put_superseded checks that a Put of a snapshot fetched before
// the stored one writes nothing: last_good never goes back in time.
func TestStore_Put_superseded(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	logs := new(testutil.LogBuffer)
	s := l2.New(l2.Config{Client: rdb, Logger: logs.Logger()})
	ctx := context.Background()
	newer := envelope("usdm", []byte(`{"v":"newer"}`))
	older := envelope("usdm", []byte(`{"v":"older"}`))
	older.FetchedAt = newer.FetchedAt.Add(-time.Second)
	older.ETag = `"older"`
	if err := s.Put(ctx, newer, time.Minute); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, k := range []string{"current", "last_good", "meta"} {
		v, _ := rdb.Dump(ctx, "symcache:{usdm}:"+k).Result()
		before[k] = v
	}
	if err := s.Put(ctx, older, time.Minute); !errors.Is(err, l2.ErrSuperseded) {
		t.Fatalf("Put(older) = %v, want ErrSuperseded", err)
	}
	for _, k := range []string{"current", "last_good", "meta"} {
		if v, _ := rdb.Dump(ctx, "symcache:{usdm}:"+k).Result(); v != before[k] {
			t.Errorf("%s changed by a Put of an older snapshot", k)
		}
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "newer snapshot is stored") {
		t.Errorf("logs = %s, want an INFO about the newer snapshot and no ERROR", logs)
	}
	// A corrupt meta key blocks nothing: another type, or a time far ahead.
	for _, corrupt := range []func(){
		func() { rdb.Set(ctx, "symcache:{usdm}:meta", "garbage", 0) },
		func() { rdb.HSet(ctx, "symcache:{usdm}:meta", "fetched_at_ms", "99999999999999") },
	} {
		corrupt()
		if err := s.Put(ctx, older, time.Minute); err != nil {
			t.Errorf("Put over a corrupt meta = %v, want nil", err)
		}
		if m, err := s.Meta(ctx, "usdm"); err != nil || m.ETag != older.ETag {
			t.Errorf("Meta after a Put over a corrupt meta = %+v, %v", m, err)
		}
	}
	// The same fetch time again (a retry of the same write) is not older.
	if err := s.Put(ctx, newer, time.Minute); err != nil {
		t.Errorf("Put(same snapshot again) = %v, want nil", err)
	}
}

func TestStore_Prefix(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), Prefix: "test:app:"})
	if err := s.Put(ctx, envelope("spot", []byte(`{}`)), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteJSON(ctx, "k", "v", 0); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	got := strings.Join(keys, " ")
	if want := "test:app:k test:app:{spot}:current test:app:{spot}:last_good test:app:{spot}:meta"; got != want {
		t.Errorf("KEYS * = %s, want %s", got, want)
	}
	var v string
	if err := s.ReadJSON(ctx, "k", &v); err != nil || v != "v" {
		t.Errorf("ReadJSON(%q) = %q, %v, want %q, nil", "k", v, err, "v")
	}
	if _, err := s.Current(ctx, "spot"); err != nil {
		t.Errorf("Current(%q) = %v, want nil", "spot", err)
	}
	other := l2.New(l2.Config{Client: rdb, Logger: discard()}) // the default prefix
	if _, err := other.Current(ctx, "spot"); err != l2.ErrMiss {
		t.Errorf("Current(%q) with prefix symcache: = %v, want ErrMiss", "spot", err)
	}
}

func TestStore_Ping(t *testing.T) {
	srv := l2test.Start(t)
	s := l2.New(l2.Config{Client: srv.Client(t), Logger: discard(), Timeout: 200 * time.Millisecond})
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
	srv.Stop()
	if err := s.Ping(context.Background()); err == nil {
		t.Errorf("Ping with Redis down = nil, want an error")
	}
}

// benchInputs are the answers the size-scaling benchmarks run on: the
// recorded ones and the spot one grown to about 15 MB (fixtures.Grow).
func benchInputs(b *testing.B) []struct {
	name, market string
	body         []byte
} {
	spot := fixtures.Read(b, "binance/spot_exchangeinfo.json")
	return []struct {
		name, market string
		body         []byte
	}{
		{"spot", "spot", spot},
		{"usdm", "usdm", fixtures.Read(b, "binance/usdm_exchangeinfo.json")},
		{"coinm", "coinm", fixtures.Read(b, "binance/coinm_exchangeinfo.json")},
		{"spot-15MB", "spot", fixtures.Grow(b, spot, 15<<20)},
	}
}

// BenchmarkPut measures write_json of a snapshot envelope — Put, both keys in
// one MULTI/EXEC on a real redis-server — per answer and encoding, next to
// the seed system's way in the same run: encoding/json marshalling the whole
// answer from typed structs (fixtures.ExchangeInfo) and one SET.
func BenchmarkPut(b *testing.B) {
	srv := l2test.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	for _, in := range benchInputs(b) {
		b.Run(in.name, func(b *testing.B) {
			for _, enc := range []l2.Encoding{l2.JSON, l2.Gzip} {
				b.Run(string(enc), func(b *testing.B) {
					s := l2.New(l2.Config{Client: rdb, Logger: discard(), Encoding: enc, WriteTimeout: 10 * time.Second})
					e := envelope(in.market, in.body)
					b.ReportAllocs()
					b.SetBytes(int64(len(in.body)))
					for b.Loop() {
						if err := s.Put(ctx, e, time.Minute); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			b.Run("baseline-encoding-json-struct", func(b *testing.B) {
				var info fixtures.ExchangeInfo
				if err := json.Unmarshal(in.body, &info); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(in.body)))
				for b.Loop() {
					v, err := json.Marshal(&info)
					if err != nil {
						b.Fatal(err)
					}
					if err := rdb.Set(ctx, "baseline", v, time.Minute).Err(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkCurrent measures read_json of a snapshot envelope — Current on a
// real redis-server — per answer and encoding, next to one GET of the same
// answer as plain JSON decoded by encoding/json into typed structs, in the
// same run. Current hands exchange_info over undecoded (exchangeinfo.Parse
// validates and indexes it; see BenchmarkParse and BenchmarkPromotion).
func BenchmarkCurrent(b *testing.B) {
	srv := l2test.Start(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	for _, in := range benchInputs(b) {
		b.Run(in.name, func(b *testing.B) {
			for _, enc := range []l2.Encoding{l2.JSON, l2.Gzip} {
				b.Run(string(enc), func(b *testing.B) {
					s := l2.New(l2.Config{Client: rdb, Logger: discard(), Encoding: enc, Timeout: 10 * time.Second})
					if err := s.Put(ctx, envelope(in.market, in.body), time.Hour); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					b.SetBytes(int64(len(in.body)))
					for b.Loop() {
						if _, err := s.Current(ctx, in.market); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			b.Run("baseline-encoding-json-struct", func(b *testing.B) {
				if err := rdb.Set(ctx, "baseline", in.body, time.Hour).Err(); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(in.body)))
				for b.Loop() {
					v, err := rdb.Get(ctx, "baseline").Bytes()
					if err != nil {
						b.Fatal(err)
					}
					var info fixtures.ExchangeInfo
					if err := json.Unmarshal(v, &info); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
