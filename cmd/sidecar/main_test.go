package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2/l2test"
)

// envFunc turns a map into a getenv.
func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRun_BadSettingExitsTwoWithOneLine(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // the setting the line must name
	}{
		{"unknown market", map[string]string{"SYMCACHE_MARKETS": "spot,options"}, nil, "SYMCACHE_MARKETS"},
		{"no market", map[string]string{"SYMCACHE_MARKETS": " , "}, nil, "SYMCACHE_MARKETS"},
		{"market flag wins and is named", map[string]string{"SYMCACHE_MARKETS": "spot"}, []string{"-markets", "forex"}, "-markets"},
		{"bad ttl", map[string]string{"SYMCACHE_TTL": "five minutes"}, nil, "SYMCACHE_TTL"},
		{"zero ttl", map[string]string{"SYMCACHE_TTL": "0s"}, nil, "SYMCACHE_TTL"},
		{"bad refresh", map[string]string{"SYMCACHE_REFRESH_INTERVAL": "-1m"}, nil, "SYMCACHE_REFRESH_INTERVAL"},
		{"bad stale max", map[string]string{"SYMCACHE_STALE_MAX": "forever"}, nil, "SYMCACHE_STALE_MAX"},
		{"bad l1 budget", map[string]string{"SYMCACHE_L1_MAX_BYTES": "512MB"}, nil, "SYMCACHE_L1_MAX_BYTES"},
		{"bad encoding", map[string]string{"SYMCACHE_L2_ENCODING": "brotli"}, nil, "SYMCACHE_L2_ENCODING"},
		{"bad l2 timeout", map[string]string{"SYMCACHE_L2_TIMEOUT": "fast"}, nil, "SYMCACHE_L2_TIMEOUT"},
		{"bad spot url", map[string]string{"BINANCE_SPOT_URL": "api.binance.com"}, nil, "BINANCE_SPOT_URL"},
		{"ftp usdm url", map[string]string{"BINANCE_USDM_URL": "ftp://fapi.binance.com"}, nil, "BINANCE_USDM_URL"},
		{"second coinm url bad", map[string]string{"BINANCE_COINM_URL": "https://dapi.binance.com,::"}, nil, "BINANCE_COINM_URL"},
		{"bad redis scheme", map[string]string{"REDIS_URL": "http://localhost:6379"}, nil, "REDIS_URL"},
		{"bad redis url", map[string]string{"REDIS_URL": "redis://:hunter2@localhost:port/0"}, nil, "REDIS_URL"},
		{"bad redis db", map[string]string{"REDIS_URL": "redis://:hunter2@localhost:6379/zero"}, nil, "REDIS_URL"},
		{"sentinel password without redis", map[string]string{"REDIS_SENTINEL_PASSWORD": "hunter2"}, nil, "REDIS_SENTINEL_PASSWORD"},
		{"sentinel username without redis", map[string]string{"REDIS_SENTINEL_USERNAME": "watcher"}, nil, "REDIS_SENTINEL_USERNAME"},
		{"sentinel password, single server", map[string]string{"REDIS_URL": "redis://:hunter2@localhost:6379/0", "REDIS_SENTINEL_PASSWORD": "hunter2"}, nil, "REDIS_SENTINEL_PASSWORD"},
		{"sentinel password, single server flag", map[string]string{"REDIS_URL": "redis://s:26379?master_name=m", "REDIS_SENTINEL_PASSWORD": "hunter2"}, []string{"-redis-url", "redis://localhost:6379/0"}, "REDIS_SENTINEL_PASSWORD"},
		{"sentinel credentials, cluster", map[string]string{"REDIS_URL": "redis://a:7000?addr=b:7001", "REDIS_SENTINEL_USERNAME": "watcher", "REDIS_SENTINEL_PASSWORD": "hunter2"}, nil, "REDIS_SENTINEL_PASSWORD"},
		{"bad redis url with sentinel password", map[string]string{"REDIS_URL": "redis://s:port?master_name=m", "REDIS_SENTINEL_PASSWORD": "hunter2"}, nil, "REDIS_URL"},
		{"bad addr", map[string]string{"SYMCACHE_ADDR": "8080"}, nil, "SYMCACHE_ADDR"},
		{"empty prefix flag", nil, []string{"-key-prefix", ""}, "-key-prefix"},
		{"stray argument", nil, []string{"serve"}, "arguments"},
		{"zero client rate", map[string]string{"SYMCACHE_MIN_CLIENT_RATE": "0"}, nil, "SYMCACHE_MIN_CLIENT_RATE"},
		{"client rate with a unit", map[string]string{"SYMCACHE_MIN_CLIENT_RATE": "64KiB"}, nil, "SYMCACHE_MIN_CLIENT_RATE"},
		{"client rate flag", nil, []string{"-min-client-rate", "-1"}, "-min-client-rate"},
		{"bad drain timeout", map[string]string{"SYMCACHE_DRAIN_TIMEOUT": "15"}, nil, "SYMCACHE_DRAIN_TIMEOUT"},
		{"zero drain timeout", nil, []string{"-drain-timeout", "0s"}, "-drain-timeout"},
		{"bad forward timeout", map[string]string{"SYMCACHE_FORWARD_TIMEOUT": "soon"}, nil, "SYMCACHE_FORWARD_TIMEOUT"},
		{"negative forward timeout", nil, []string{"-forward-timeout", "-1s"}, "-forward-timeout"},
		{"token with a newline", map[string]string{"SYMCACHE_ADMIN_TOKEN": "hunter2\n"}, nil, "SYMCACHE_ADMIN_TOKEN"},
		{"token file missing", map[string]string{"SYMCACHE_ADMIN_TOKEN_FILE": "/nonexistent/symcache/token"}, nil, "SYMCACHE_ADMIN_TOKEN_FILE"},
		{"token and token file", map[string]string{"SYMCACHE_ADMIN_TOKEN": "hunter2", "SYMCACHE_ADMIN_TOKEN_FILE": "/etc/hostname"}, nil, "SYMCACHE_ADMIN_TOKEN and SYMCACHE_ADMIN_TOKEN_FILE"},
		{"bad forward", map[string]string{"SYMCACHE_FORWARD": "yes"}, nil, "SYMCACHE_FORWARD"},
		{"forward flag wins and is named", map[string]string{"SYMCACHE_FORWARD": "on"}, []string{"-forward", "OFF"}, "-forward"},
		{"bad demo", map[string]string{"SYMCACHE_DEMO": "maybe"}, nil, "SYMCACHE_DEMO"},
		{"bad demo flag", nil, []string{"-demo=maybe"}, "-demo"},
		{"demo and spot url", map[string]string{"SYMCACHE_DEMO": "1", "BINANCE_SPOT_URL": "http://127.0.0.1:9090"}, nil, "SYMCACHE_DEMO and BINANCE_SPOT_URL"},
		{"demo flag and spot url", map[string]string{"BINANCE_SPOT_URL": "http://127.0.0.1:9090"}, []string{"-demo"}, "-demo and BINANCE_SPOT_URL"},
		{"demo and usdm url flag", map[string]string{"SYMCACHE_DEMO": "true"}, []string{"-binance-usdm-url", "http://127.0.0.1:9090"}, "SYMCACHE_DEMO and -binance-usdm-url"},
		{"demo and coinm url", map[string]string{"SYMCACHE_DEMO": "1", "BINANCE_COINM_URL": "https://dapi.binance.com"}, nil, "SYMCACHE_DEMO and BINANCE_COINM_URL"},
		{"demo and venue", map[string]string{"SYMCACHE_DEMO": "1", "BINANCE_VENUE": "testnet"}, nil, "SYMCACHE_DEMO and BINANCE_VENUE"},
		{"demo and venue flag", nil, []string{"-demo", "-venue", "binance"}, "-demo and -venue"},
		{"demo and forward on", map[string]string{"SYMCACHE_DEMO": "1", "SYMCACHE_FORWARD": "on"}, nil, "SYMCACHE_DEMO and SYMCACHE_FORWARD"},
		{"demo and state dir", map[string]string{"SYMCACHE_DEMO": "1", "SYMCACHE_STATE_DIR": "/tmp/symcache-demo-state"}, nil, "SYMCACHE_DEMO and SYMCACHE_STATE_DIR"},
		{"unknown venue", map[string]string{"BINANCE_VENUE": "kraken"}, nil, "BINANCE_VENUE"},
		{"venue flag wins and is named", map[string]string{"BINANCE_VENUE": "testnet"}, []string{"-venue", "Binance"}, "-venue"},
		{"binance-us and usdm", map[string]string{"BINANCE_VENUE": "binance-us", "SYMCACHE_MARKETS": "spot,usdm"}, nil, "BINANCE_VENUE and SYMCACHE_MARKETS"},
		{"binance-us flag and coinm flag", nil, []string{"-venue", "binance-us", "-markets", "coinm"}, "-venue and -markets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := run(context.Background(), tt.args, envFunc(tt.env), &out)
			if code != 2 {
				t.Fatalf("run(%v, %v) = %d, want 2 (output %q)", tt.args, tt.env, code, out.String())
			}
			lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Errorf("output = %q, want one line naming %s", out.String(), tt.want)
			}
			if strings.Contains(out.String(), "hunter2") {
				t.Errorf("output %q shows the Redis password", out.String())
			}
		})
	}
}

func TestRun_UnknownFlag(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"-no-such-flag"}, envFunc(nil), &out); code != 2 {
		t.Errorf("run(-no-such-flag) = %d, want 2", code)
	}
}

func TestRun_HelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"REDIS_URL": "redis://:hunter2@localhost:6379/0?master_name=m", "SYMCACHE_ADMIN_TOKEN": "s3cret-token", "REDIS_SENTINEL_PASSWORD": "s3nt1nel-pw"}
	if code := run(context.Background(), []string{"-h"}, envFunc(env), &out); code != 0 {
		t.Fatalf("run(-h) = %d, want 0", code)
	}
	for _, v := range []string{
		"SYMCACHE_ADDR", "REDIS_URL", "SYMCACHE_MARKETS", "BINANCE_SPOT_URL", "BINANCE_USDM_URL", "BINANCE_COINM_URL",
		"SYMCACHE_TTL", "SYMCACHE_REFRESH_INTERVAL", "SYMCACHE_KEY_PREFIX", "SYMCACHE_L1_MAX_BYTES",
		"SYMCACHE_ADMIN_TOKEN", "SYMCACHE_STALE_MAX", "SYMCACHE_STATE_DIR", "SYMCACHE_L2_ENCODING", "SYMCACHE_L2_TIMEOUT", "SYMCACHE_MAX_SYMBOL_LOSS",
		"SYMCACHE_MIN_CLIENT_RATE", "SYMCACHE_DRAIN_TIMEOUT", "SYMCACHE_ADMIN_TOKEN_FILE", "SYMCACHE_FORWARD", "SYMCACHE_FORWARD_TIMEOUT",
		"SYMCACHE_MAX_GROWTH", "SYMCACHE_CHANGES_MAX", "SYMCACHE_UI", "SYMCACHE_FAST_LANE", "SYMCACHE_SOCKET_MODE", "SYMCACHE_PPROF_ADDR", "SYMCACHE_METRICS_ADDR", "SYMCACHE_DEMO", "BINANCE_VENUE",
		"REDIS_SENTINEL_USERNAME", "REDIS_SENTINEL_PASSWORD",
		`"127.0.0.1:8080"`, `"spot,usdm"`, `"5m"`, `"1m"`, `"symcache:"`, `"536870912"`, `"24h"`, `"json"`, `"65536"`, `"15s"`, `"binance"`, "binance-us", "testnet", "-demo",
	} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("-h output lacks %s:\n%s", v, out.String())
		}
	}
	for _, secret := range []string{"hunter2", "s3cret-token", "s3nt1nel-pw"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("-h output shows the secret %q", secret)
		}
	}
}

func TestParseConfig_FlagsWinOverEnv(t *testing.T) {
	env := map[string]string{"SYMCACHE_TTL": "10m", "SYMCACHE_MARKETS": "coinm", "SYMCACHE_STALE_MAX": "0", "REDIS_URL": "redis://localhost:6379/2"}
	cfg, err := parseConfig([]string{"-ttl", "30s", "-markets", "usdm,spot,usdm"}, envFunc(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ttl != 30*time.Second {
		t.Errorf("ttl = %v, want 30s (flag)", cfg.ttl)
	}
	if got := cfg.markets; len(got) != 2 || got[0] != exchangeinfo.USDM || got[1] != exchangeinfo.Spot {
		t.Errorf("markets = %v, want [usdm spot]", got)
	}
	if cfg.staleMax != 0 || cfg.refresh != time.Minute || cfg.l1MaxBytes != 536870912 || cfg.keyPrefix != "symcache:" {
		t.Errorf("cfg = %+v, want stale-max 0, refresh 1m, the default budget and prefix", cfg)
	}
	if cfg.redisOptions == nil || cfg.redisOptions.Single == nil || cfg.redisOptions.Single.DB != 2 {
		t.Errorf("redis options = %+v, want DB 2", cfg.redisOptions)
	}
	if got := cfg.baseURLs[exchangeinfo.COINM]; len(got) != 1 || got[0] != "https://dapi.binance.com" {
		t.Errorf("coinm base URLs = %v, want the default", got)
	}
	if cfg.minClientRate != 65536 || cfg.drainTimeout != 15*time.Second || cfg.fwdTimeout != 10*time.Second {
		t.Errorf("min client rate, drain timeout, forward timeout = %d, %v, %v; want the defaults 65536, 15s, 10s", cfg.minClientRate, cfg.drainTimeout, cfg.fwdTimeout)
	}

	env = map[string]string{"SYMCACHE_MIN_CLIENT_RATE": "1048576", "SYMCACHE_DRAIN_TIMEOUT": "40s", "SYMCACHE_FORWARD_TIMEOUT": "3s"}
	if cfg, err = parseConfig([]string{"-drain-timeout", "25s"}, envFunc(env), io.Discard); err != nil {
		t.Fatal(err)
	}
	if cfg.fwdTimeout != 3*time.Second {
		t.Errorf("forward timeout = %v, want 3s (environment)", cfg.fwdTimeout)
	}
	if cfg.minClientRate != 1<<20 || cfg.drainTimeout != 25*time.Second {
		t.Errorf("min client rate, drain timeout = %d, %v; want 1048576 (environment), 25s (flag)", cfg.minClientRate, cfg.drainTimeout)
	}
}

// TestParseConfig_SentinelAuth checks that REDIS_SENTINEL_USERNAME and
// REDIS_SENTINEL_PASSWORD reach the Sentinel client's options, beside the
// URL's own credentials, and that the description logged at start names
// them without the password.
func TestParseConfig_SentinelAuth(t *testing.T) {
	const password = "s3nt1nel-Pa55"
	env := map[string]string{
		"REDIS_URL":               "redis://app:hunter2@s1:26379/0?master_name=mymaster&addr=s2:26379",
		"REDIS_SENTINEL_USERNAME": "watcher",
		"REDIS_SENTINEL_PASSWORD": password,
	}
	cfg, err := parseConfig(nil, envFunc(env), io.Discard)
	if err != nil {
		t.Fatalf("parseConfig(%v) = %v, want nil", env, err)
	}
	f := cfg.redisOptions.Failover
	if f == nil || f.SentinelUsername != "watcher" || f.SentinelPassword != password || f.Username != "app" || f.Password != "hunter2" {
		t.Fatalf("redis options = %+v, want the sentinel credentials watcher and the password, and the URL's app and hunter2", f)
	}
	got := cfg.redisOptions.String()
	if want := `sentinel master "mymaster" via s1:26379,s2:26379, db 0, user "app", password set, sentinel user "watcher", sentinel password set`; got != want {
		t.Errorf("redisOptions.String() = %q, want %q", got, want)
	}

	// A flag cannot give them.
	var out bytes.Buffer
	for _, flagName := range []string{"-redis-sentinel-password", "-sentinel-password"} {
		if _, err := parseConfig([]string{flagName, password}, envFunc(nil), &out); err == nil {
			t.Errorf("parseConfig(%s) = nil, want an error: sentinel credentials come from the environment only", flagName)
		}
	}
}

// TestRun_SentinelAuth runs the sidecar against a Sentinel deployment whose
// data nodes and sentinel ask for passwords: with REDIS_SENTINEL_PASSWORD, it
// writes to the master through the sentinel; without, it serves from Binance
// and warns. No log line holds either password.
func TestRun_SentinelAuth(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	cfg := l2test.SentinelConfig{Password: "data-Pa55", SentinelPassword: "s3nt1nel-Pa55"}
	d := l2test.StartSentinelWith(t, cfg)
	want := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	for _, tt := range []struct {
		name string
		env  map[string]string
		l2   bool // whether the sidecar reaches Redis
	}{
		{"sentinel password", map[string]string{"REDIS_SENTINEL_PASSWORD": cfg.SentinelPassword}, true},
		{"no sentinel password", map[string]string{}, false},
		{"wrong sentinel password", map[string]string{"REDIS_SENTINEL_PASSWORD": "hunter2-wrong"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rdb := d.Client(t)
			ctx := context.Background()
			if err := rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatalf("FLUSHALL = %v, want nil", err)
			}
			env := tt.env
			env["REDIS_URL"] = d.URL()
			env["SYMCACHE_L2_TIMEOUT"] = "1s" // 3.7 MB of JSON under -race
			env["SYMCACHE_MARKETS"] = "spot"
			env["BINANCE_SPOT_URL"] = upstream.URL
			s := startSidecar(t, env)
			resp, body := s.get(t, "/api/v3/exchangeInfo")
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
				t.Fatalf("GET /api/v3/exchangeInfo = %d, %d bytes; want 200 and the recorded %d bytes", resp.StatusCode, len(body), len(want))
			}
			if tt.l2 {
				var n int64
				var err error
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					n, err = rdb.Exists(ctx, "symcache:{spot}:current", "symcache:{spot}:last_good").Result()
					if n == 2 || time.Now().After(deadline) {
						break
					}
				}
				if n != 2 || err != nil {
					t.Errorf("EXISTS current and last_good of spot on the master = %d, %v, want 2, nil", n, err)
				}
			}
			s.stop(t)
			logs := s.out.String()
			if !strings.Contains(logs, `, password set`) {
				t.Errorf("the log does not describe the deployment:\n%s", logs)
			}
			if got := strings.Contains(logs, "sentinel password set"); got != (tt.env["REDIS_SENTINEL_PASSWORD"] != "") {
				t.Errorf("the log says %q: %t, want %t:\n%s", "sentinel password set", got, !got, logs)
			}
			if warned := strings.Contains(logs, `"level":"WARN"`); warned == tt.l2 {
				t.Errorf("a warning logged: %t, want %t:\n%s", warned, !tt.l2, logs)
			}
			for _, secret := range []string{cfg.Password, cfg.SentinelPassword, "hunter2-wrong"} {
				if strings.Contains(logs, secret) {
					t.Errorf("the log holds the password %q:\n%s", secret, logs)
				}
			}
		})
	}
}

// sidecar is one run of the program in the test process.
type sidecar struct {
	addr   string
	cancel context.CancelFunc
	done   chan int
	out    *testutil.LogBuffer
}

func startSidecar(t *testing.T, env map[string]string) *sidecar {
	t.Helper()
	return startSidecarArgs(t, nil, env)
}

// startSidecarArgs is startSidecar with flags.
func startSidecarArgs(t *testing.T, args []string, env map[string]string) *sidecar {
	t.Helper()
	addr := testutil.FreeAddr(t)
	env["SYMCACHE_ADDR"] = addr
	return launch(t, addr, func(ctx context.Context, out io.Writer) int { return run(ctx, args, envFunc(env), out) })
}

// launch runs main's work, f, until the sidecar stops, and returns once it
// serves on addr.
func launch(t *testing.T, addr string, f func(ctx context.Context, out io.Writer) int) *sidecar {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &sidecar{addr: addr, cancel: cancel, done: make(chan int, 1), out: new(testutil.LogBuffer)}
	go func() { s.done <- f(ctx, s.out) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case code := <-s.done:
			t.Fatalf("sidecar exited with %d before serving:\n%s", code, s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar not serving after 10s:\n%s", s.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop cancels the run, as SIGTERM does, and checks it exits 0.
func (s *sidecar) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case code := <-s.done:
		if code != 0 {
			t.Errorf("sidecar exit status = %d, want 0:\n%s", code, s.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Error("sidecar did not stop within 20s")
	}
}

func (s *sidecar) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp, body
}

// The acceptance path of the read-path issue: byte-identical answers, a
// second request from L1, and a restarted sidecar answering from Redis
// without calling Binance.
func TestRun_EndToEnd(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	redisSrv := l2test.Start(t)
	env := func() map[string]string {
		return map[string]string{
			"REDIS_URL":           redisSrv.URL(),
			"SYMCACHE_L2_TIMEOUT": "1s", // 3.7 MB of JSON under -race
			"BINANCE_SPOT_URL":    upstream.URL,
			"BINANCE_USDM_URL":    upstream.URL,
			// No refresh tick during the test: with Redis, ticks fall at the
			// start of each period, and one would fetch whenever the test
			// crosses it.
			"SYMCACHE_REFRESH_INTERVAL": "1h",
			"SYMCACHE_TTL":              "2h",
		}
	}
	want := fixtures.Read(t, "binance/spot_exchangeinfo.json")

	first := startSidecar(t, env())
	resp, body := first.get(t, "/api/v3/exchangeInfo")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("GET /api/v3/exchangeInfo = %d, %d bytes; want 200 and the recorded %d bytes", resp.StatusCode, len(body), len(want))
	}
	resp, _ = first.get(t, "/api/v3/exchangeInfo")
	if got := resp.Header.Get("X-Cache"); got != "HIT-L1" {
		t.Errorf("second GET X-Cache = %q, want HIT-L1", got)
	}
	if resp, _ := first.get(t, "/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /readyz = %d, want 200", resp.StatusCode)
	}
	first.stop(t)
	if !strings.Contains(first.out.String(), `"msg":"stopped"`) {
		t.Errorf("log lacks the graceful stop:\n%s", first.out.String())
	}
	spotCalls := upstream.Requests(exchangeinfo.Spot.Path())

	second := startSidecar(t, env())
	resp, body = second.get(t, "/api/v3/exchangeInfo")
	// HIT-L2, or HIT-L1 when the start of the sidecar took the snapshot
	// from Redis into L1 before this request came (a loaded machine): with
	// no state dir, and no request to Binance (checked below), Redis is
	// where it came from either way.
	if got := resp.Header.Get("X-Cache"); got != "HIT-L2" && got != "HIT-L1" || !bytes.Equal(body, want) {
		t.Errorf("restarted sidecar's first GET: X-Cache %q, body equal %v; want HIT-L2 (or HIT-L1), true", got, bytes.Equal(body, want))
	}
	if n := upstream.Requests(exchangeinfo.Spot.Path()); n != spotCalls {
		t.Errorf("upstream spot requests after the restart = %d, want %d (unchanged)", n, spotCalls)
	}
	resp, _ = second.get(t, "/fapi/v1/exchangeInfo")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /fapi/v1/exchangeInfo = %d, want 200", resp.StatusCode)
	}
	if strings.Contains(second.out.String(), `"level":"ERROR"`) {
		t.Errorf("errors logged:\n%s", second.out.String())
	}
}

// With Redis unreachable from the start, the sidecar serves from Binance.
func TestRun_RedisDownAtStart(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	dead := testutil.FreeAddr(t)
	s := startSidecar(t, map[string]string{
		"REDIS_URL":        "redis://" + dead + "/0",
		"BINANCE_SPOT_URL": upstream.URL,
		"SYMCACHE_MARKETS": "spot",
	})
	resp, body := s.get(t, "/api/v3/exchangeInfo")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, fixtures.Read(t, "binance/spot_exchangeinfo.json")) {
		t.Errorf("GET with Redis down = %d, %d bytes; want 200 and the recorded body", resp.StatusCode, len(body))
	}
	s.stop(t)
	if !strings.Contains(s.out.String(), `"level":"WARN"`) {
		t.Errorf("no warning logged with Redis down:\n%s", s.out.String())
	}
}

func TestRun_BadStateDirAndLoss(t *testing.T) {
	file := t.TempDir() + "/a-file"
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SYMCACHE_STATE_DIR": file + "/sub"}, "SYMCACHE_STATE_DIR"},
		{map[string]string{"SYMCACHE_MAX_SYMBOL_LOSS": "0"}, "SYMCACHE_MAX_SYMBOL_LOSS"},
		{map[string]string{"SYMCACHE_MAX_SYMBOL_LOSS": "half"}, "SYMCACHE_MAX_SYMBOL_LOSS"},
		{map[string]string{"SYMCACHE_MAX_SYMBOL_LOSS": "1.5"}, "SYMCACHE_MAX_SYMBOL_LOSS"},
		{map[string]string{"SYMCACHE_MAX_GROWTH": "1"}, "SYMCACHE_MAX_GROWTH"},
		{map[string]string{"SYMCACHE_MAX_GROWTH": "-4"}, "SYMCACHE_MAX_GROWTH"},
		{map[string]string{"SYMCACHE_MAX_GROWTH": "NaN"}, "SYMCACHE_MAX_GROWTH"},
		{map[string]string{"SYMCACHE_CHANGES_MAX": "0"}, "SYMCACHE_CHANGES_MAX"},
		{map[string]string{"SYMCACHE_UI": "no"}, "SYMCACHE_UI"},
		{map[string]string{"SYMCACHE_FAST_LANE": "yes"}, "SYMCACHE_FAST_LANE"},
		{map[string]string{"SYMCACHE_PPROF_ADDR": "0.0.0.0:6060"}, "SYMCACHE_PPROF_ADDR"},
		{map[string]string{"SYMCACHE_PPROF_ADDR": "6060"}, "SYMCACHE_PPROF_ADDR"},
		{map[string]string{"SYMCACHE_METRICS_ADDR": "9090"}, "SYMCACHE_METRICS_ADDR"},
		{map[string]string{"SYMCACHE_CHANGES_MAX": "-1"}, "SYMCACHE_CHANGES_MAX"},
		{map[string]string{"SYMCACHE_CHANGES_MAX": "1e4"}, "SYMCACHE_CHANGES_MAX"},
		{map[string]string{"SYMCACHE_CHANGES_MAX": "99999999999"}, "SYMCACHE_CHANGES_MAX"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), nil, envFunc(tt.env), &out); code != 2 || !strings.Contains(out.String(), tt.want) {
			t.Errorf("run(%v) = %d, %q; want 2 and a line naming %s", tt.env, code, out.String(), tt.want)
		}
	}
}

// goBuild builds the sidecar's binary and returns its path.
func goBuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sidecar")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBinary starts cmd, a built sidecar listening on addr, and waits
// until its /readyz answers 200. It returns the channel of its exit and
// its output; the process is killed when the test ends.
func startBinary(t *testing.T, cmd *exec.Cmd, addr string) (<-chan error, *testutil.LogBuffer) {
	t.Helper()
	logs := new(testutil.LogBuffer)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return exited, logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar not ready after 10s:\n%s", logs.String())
		}
	}
}

// SIGTERM under load, to the real binary: requests in flight complete with
// whole bodies, new connections are refused once the drain has started, and
// the exit status is 0.
func TestSidecar_SIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	upstream := fetchtest.NewUpstream(t)
	addr := testutil.FreeAddr(t)
	cmd := exec.Command(goBuild(t))
	cmd.Env = append(os.Environ(), "SYMCACHE_ADDR="+addr, "SYMCACHE_MARKETS=spot", "BINANCE_SPOT_URL="+upstream.URL, "REDIS_URL=")
	exited, logs := startBinary(t, cmd, addr)
	want := fixtures.Read(t, "binance/spot_exchangeinfo.json")

	// Clients that each read the 3.7 MB answer slowly, so that the signal
	// lands while bodies are being sent.
	const clients = 8
	var wg sync.WaitGroup
	var whole, refused, broken atomic.Int32
	started := make(chan struct{}, clients)
	for range clients {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + addr + "/api/v3/exchangeInfo")
				if err != nil {
					refused.Add(1) // the listener is closed: no new connections
					return
				}
				if i == 0 {
					started <- struct{}{}
				}
				var got bytes.Buffer
				buf := make([]byte, 256<<10)
				var rerr error
				for rerr == nil {
					var n int
					n, rerr = resp.Body.Read(buf)
					got.Write(buf[:n])
					time.Sleep(2 * time.Millisecond)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || rerr != io.EOF || !bytes.Equal(got.Bytes(), want) {
					broken.Add(1)
					t.Errorf("answer in flight during the drain: status %d, %d of %d bytes, read error %v", resp.StatusCode, got.Len(), len(want), rerr)
					return
				}
				whole.Add(1)
			}
		})
	}
	for range clients {
		<-started
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("sidecar exit after SIGTERM = %v, want status 0\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("sidecar still running 30s after SIGTERM\n%s", logs.String())
	}
	if whole.Load() < clients || broken.Load() != 0 {
		t.Errorf("whole answers %d, broken %d; want at least %d whole and none broken", whole.Load(), broken.Load(), clients)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("a new connection after the exit was accepted")
	}
	if !strings.Contains(logs.String(), "draining") {
		t.Errorf("logs lack the drain:\n%s", logs.String())
	}
	t.Logf("whole answers %d, refused after the drain started %d", whole.Load(), refused.Load())
}

// SYMCACHE_ADMIN_TOKEN, or the file SYMCACHE_ADMIN_TOKEN_FILE names (as
// Kubernetes mounts a Secret), turns the admin endpoints on: 401 without the
// token, the action with it, and the token in no log line.
func TestRun_AdminToken(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	const token = "s3cr3t-admin-token"
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string]map[string]string{
		"environment": {"SYMCACHE_ADMIN_TOKEN": token},
		"file":        {"SYMCACHE_ADMIN_TOKEN_FILE": file},
	} {
		t.Run(name, func(t *testing.T) {
			env["BINANCE_SPOT_URL"] = upstream.URL
			env["BINANCE_USDM_URL"] = upstream.URL
			s := startSidecar(t, env)
			if resp, _ := s.get(t, "/admin/status"); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET /admin/status without the token = %d, want 401", resp.StatusCode)
			}
			req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/admin/status", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET /admin/status with the token = %d, want 200", resp.StatusCode)
			}
			s.stop(t)
			if strings.Contains(s.out.String(), token) {
				t.Errorf("the admin token appears in the log:\n%s", s.out.String())
			}
		})
	}
}

// The token file: its trailing newline goes, nothing else does; an empty,
// unreadable or oversized file is a bad setting that names the variable and
// not the token.
func TestParseConfig_AdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name, content, want string
	}{
		{"newline", "hunter2-token\n", "hunter2-token"},
		{"crlf", "hunter2-token\r\n", "hunter2-token"},
		{"no newline", "hunter2-token", "hunter2-token"},
		{"inner space kept", " hunter2 token", " hunter2 token"},
	} {
		cfg, err := parseConfig(nil, envFunc(map[string]string{"SYMCACHE_ADMIN_TOKEN_FILE": write(tt.name, tt.content)}), io.Discard)
		if err != nil || cfg.adminToken != tt.want {
			t.Errorf("%s: token from %q = %q, %v; want %q, nil", tt.name, tt.content, cfg.adminToken, err, tt.want)
		}
	}
	unreadable := write("unreadable", "hunter2")
	os.Chmod(unreadable, 0)
	for _, tt := range []struct{ name, path string }{
		{"empty", write("empty", "")},
		{"only a newline", write("newline-only", "\n")},
		{"two lines", write("two-lines", "hunter2\nhunter3\n")},
		{"too long", write("long", strings.Repeat("hunter2-", 1000))},
		{"a folder", dir},
		{"the placeholder", write("placeholder", "REPLACE_ME\n")},
		{"unreadable", unreadable},
	} {
		if tt.name == "unreadable" && os.Geteuid() == 0 {
			continue // root reads it anyway
		}
		var out bytes.Buffer
		code := run(context.Background(), nil, envFunc(map[string]string{"SYMCACHE_ADMIN_TOKEN_FILE": tt.path}), &out)
		lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "SYMCACHE_ADMIN_TOKEN_FILE") {
			t.Errorf("%s: run = %d, %q; want 2 and one line naming SYMCACHE_ADMIN_TOKEN_FILE", tt.name, code, out.String())
		}
		if strings.Contains(out.String(), "hunter2") {
			t.Errorf("%s: output %q shows the token", tt.name, out.String())
		}
	}
}

// The token is never a flag: a flag's value sits in the process's arguments
// (ps, /proc/PID/cmdline) for every user of the host to read.
func TestRun_AdminTokenFlagRefused(t *testing.T) {
	for _, args := range [][]string{{"-admin-token", "hunter2"}, {"-admin-token-file", "/etc/hostname"}} {
		var out bytes.Buffer
		if code := run(context.Background(), args, envFunc(nil), &out); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
		if !strings.Contains(out.String(), "flag provided but not defined") {
			t.Errorf("run(%q) output = %q, want the flag package's error", args, out.String())
		}
	}
}

// SIGTERM while a client takes its answers too slowly to finish within the
// drain: the sidecar waits SYMCACHE_DRAIN_TIMEOUT, closes the connection,
// says so in one WARN line counting it, and exits 0 without an ERROR line.
func TestRun_DrainTimeoutClosesSlowClients(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	s := startSidecar(t, map[string]string{
		"BINANCE_SPOT_URL":       upstream.URL,
		"SYMCACHE_MARKETS":       "spot",
		"SYMCACHE_DRAIN_TIMEOUT": "1s",
	})
	if resp, _ := s.get(t, "/api/v3/exchangeInfo"); resp.StatusCode != http.StatusOK { // loads the cache
		t.Fatalf("GET /api/v3/exchangeInfo = %d, want 200", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections() // the test's own, so that one connection is left

	// Ten pipelined requests for the 3.7 MB answer, and a client that stops
	// reading after the first bytes: 37 MB is more than the kernel's
	// buffers take (a few MB on loopback), so once the server has filled
	// them it is still writing when the signal comes.
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const requests = 10
	if _, err := io.WriteString(conn, strings.Repeat("GET /api/v3/exchangeInfo HTTP/1.1\r\nHost: symcache\r\n\r\n", requests)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(conn, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("first bytes of the answer = %q, %v; want HTTP/1.1 200", head, err)
	}
	time.Sleep(500 * time.Millisecond) // the server fills the buffers

	began := time.Now()
	s.stop(t) // exit status 0
	took := time.Since(began)
	if took < time.Second || took > 8*time.Second {
		t.Errorf("the sidecar stopped %v after the signal, want a little over the 1s drain", took)
	}

	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.Copy(io.Discard, conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the slow client's connection is still open after the exit")
	}
	if got, all := int64(len(head))+rest, int64(requests*len(fixtures.Read(t, "binance/spot_exchangeinfo.json"))); got >= all {
		t.Errorf("the slow client received %d bytes, want fewer than its %d", got, all)
	}

	logs := s.out.String()
	if n := s.out.Count(t, "level", "WARN", "msg", "drain timeout reached: closed the connections still open", "connections", 1); n != 1 {
		t.Errorf("WARN lines counting 1 connection cut = %d, want 1:\n%s", n, logs)
	}
	if strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("an ERROR line was logged:\n%s", logs)
	}
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("the log lacks the stop:\n%s", logs)
	}
}

// A flood of refused admin requests writes a few WARN lines and then one
// saying how many more there were, written at the latest when the sidecar
// exits.
func TestRun_LogFloodThrottled(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	s := startSidecar(t, map[string]string{"BINANCE_SPOT_URL": upstream.URL, "SYMCACHE_MARKETS": "spot"})
	const requests = 300
	for range requests {
		if resp, _ := s.get(t, "/admin/status"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /admin/status without a token = %d, want 401", resp.StatusCode)
		}
	}
	s.stop(t)
	lines, total := 0, 0
	for _, r := range s.out.Records(t) {
		if r["level"] != "WARN" || !strings.HasPrefix(fmt.Sprint(r["msg"]), "admin request refused") {
			continue
		}
		lines++
		if n, ok := r["repeated"].(float64); ok {
			total += int(n)
		} else {
			total++
		}
	}
	if lines > 11 || total != requests {
		t.Errorf("refused requests logged in %d lines counting %d, want at most 11 lines (10 and a summary) counting %d:\n%s", lines, total, requests, s.out.String())
	}
}

// TestRun_Forward: by default, what is not cached under /api/, /sapi/,
// /fapi/ and /dapi/ goes to the market's base URL; SYMCACHE_FORWARD=off
// answers it 404, as before forwarding, and sends nothing.
func TestRun_Forward(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	upstream.Set("/api/v3/order", fetchtest.Response{Body: []byte(`{"orderId":1}`)})
	upstream.Set("/fapi/v1/order", fetchtest.Response{Body: []byte(`{"orderId":2}`)})
	env := func(forward string) map[string]string {
		return map[string]string{
			"BINANCE_SPOT_URL":          upstream.URL,
			"BINANCE_USDM_URL":          upstream.URL,
			"SYMCACHE_REFRESH_INTERVAL": "1h",
			"SYMCACHE_TTL":              "2h",
			"SYMCACHE_FORWARD":          forward,
		}
	}
	post := func(t *testing.T, s *sidecar, target string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+target, nil)
		req.Header.Set("X-MBX-APIKEY", "key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", target, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	on := startSidecar(t, env(""))
	for target, want := range map[string]string{"/api/v3/order?symbol=BTCUSDT&x=%2C+": `{"orderId":1}`, "/fapi/v1/order?a=1": `{"orderId":2}`} {
		if code, body := post(t, on, target); code != http.StatusOK || body != want {
			t.Errorf("POST %s = %d %s, want 200 %s", target, code, body, want)
		}
	}
	sent := false
	for _, r := range upstream.Received() {
		sent = sent || r.RequestURI == "/api/v3/order?symbol=BTCUSDT&x=%2C+" && r.Header.Get("X-Mbx-Apikey") == "key"
	}
	if !sent {
		t.Errorf("upstream did not get the order as sent: %+v", upstream.Received())
	}
	if resp, _ := on.get(t, "/api/v3/exchangeInfo"); resp.Header.Get("X-Cache") == "" {
		t.Errorf("GET /api/v3/exchangeInfo has no X-Cache: not answered from the cache")
	}
	on.stop(t)

	off := startSidecar(t, env("off"))
	before := upstream.Requests("/api/v3/order")
	if code, body := post(t, off, "/api/v3/order?symbol=BTCUSDT"); code != http.StatusNotFound || !strings.Contains(body, "-1000") {
		t.Errorf("POST /api/v3/order with SYMCACHE_FORWARD=off = %d %s, want 404 -1000", code, body)
	}
	if n := upstream.Requests("/api/v3/order") - before; n != 0 {
		t.Errorf("upstream got %d orders with forwarding off, want 0", n)
	}
}
