// Command sidecar serves Binance exchangeInfo from symcache's tiers over
// localhost HTTP. Every setting comes from an environment variable or the
// flag of the same meaning (flags win); `sidecar -h` lists them. A bad value
// stops it at start with one line naming the setting, and exit status 2.
//
// What is not cached under /api/, /sapi/, /fapi/ and /dapi/ is forwarded to
// the market's Binance base URL (package forward), unless SYMCACHE_FORWARD
// is off. The base URLs are those of a venue (BINANCE_VENUE: binance,
// testnet, binance-us), unless set one by one.
//
// `sidecar -demo` (SYMCACHE_DEMO=1) serves the Binance answers recorded in
// package demo instead, for a machine that cannot reach Binance: every
// answer says so, and nothing is sent to Binance.
//
// Two subcommands serve operations: `sidecar version` prints the build
// (version, commit, date, Go), and `sidecar healthcheck [-url URL] [-timeout D]`
// exits 0 when the sidecar's /readyz (or URL) answers 200 and 1 otherwise,
// for health checks in images without a shell.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/demo"
	"github.com/symcache/symcache/disk"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/forward"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/logthrottle"
	"github.com/symcache/symcache/l1"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the validated configuration.
type config struct {
	addr          string
	listen        listenAddr // addr, parsed
	redisURL      string
	markets       []exchangeinfo.Market
	baseURLs      map[exchangeinfo.Market][]string
	ttl           time.Duration
	refresh       time.Duration
	keyPrefix     string
	l1MaxBytes    int64
	adminToken    string
	staleMax      time.Duration
	stateDir      string
	disk          *disk.Store // nil without stateDir
	l2Encoding    l2.Encoding
	maxLoss       float64
	maxGrowth     float64 // 0: any growth
	changesMax    int
	l2Timeout     time.Duration
	redisOptions  *l2.ClientOptions
	minClientRate int64         // bytes a second (httpapi.Config.MinClientRate)
	drainTimeout  time.Duration // how long a stop waits for answers in flight
	forward       bool          // send what is not cached on to Binance (forward.Prefixes)
	ui            bool          // the status page at /
	fastLane      bool          // httpapi.FastLane answers the busiest requests
	pprofAddr     string        // loopback host:port of Go's profiles; "" for none
	metricsAddr   string        // host:port of /metrics and the probes alone; "" for none
	fwdTimeout    time.Duration // forward.Config.Timeout
	venue         string        // BINANCE_VENUE; a market it lacks, with no URL of its own, has no baseURLs
	// demo: the upstream of every market is package demo's replay of
	// recorded answers (transport), and every answer says so.
	demo bool
	// transport sends the requests to Binance, the cache's fetches and
	// forwarded ones; nil: fetch's and forward's own. In demo mode, the
	// replay's; tests set one that takes Binance's hosts to 127.0.0.1.
	transport http.RoundTripper
}

// settingError is a bad configuration value; its text names the setting.
type settingError struct{ name, msg string }

func (e *settingError) Error() string { return "symcache: invalid " + e.name + ": " + e.msg }

// parseConfig reads flags over environment defaults. REDIS_URL is read from
// the environment after parsing, so that -h never prints its password. The
// other secrets have no flag, so that they never sit in the process's
// arguments, which every user of the host can read: the admin token comes
// from SYMCACHE_ADMIN_TOKEN or the file SYMCACHE_ADMIN_TOKEN_FILE names, the
// sentinels' credentials from REDIS_SENTINEL_USERNAME and
// REDIS_SENTINEL_PASSWORD.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: sidecar [flags]\n       sidecar version\n       sidecar healthcheck [-url URL] [-timeout 2s]\n\nServes Binance exchangeInfo from a cache. Each flag's environment variable is in brackets; flags win.\n\n")
		fs.PrintDefaults()
		fmt.Fprint(out, envOnlyUsage)
	}
	var (
		addr       = fs.String("addr", cmp.Or(getenv("SYMCACHE_ADDR"), "127.0.0.1:8080"), "listen address: host:port, or unix:/path/to.sock for a Unix domain socket [SYMCACHE_ADDR]")
		sockMode   = fs.String("socket-mode", cmp.Or(getenv("SYMCACHE_SOCKET_MODE"), "0660"), "with a unix: address, the socket file's mode, in octal [SYMCACHE_SOCKET_MODE]")
		redisURL   = fs.String("redis-url", "", "redis:// or rediss:// URL (a cluster with addr=host:port parameters, Sentinel with master_name=NAME, whose sentinels' own credentials come from the environment only: REDIS_SENTINEL_USERNAME, REDIS_SENTINEL_PASSWORD); empty runs without L2 [REDIS_URL]")
		markets    = fs.String("markets", cmp.Or(getenv("SYMCACHE_MARKETS"), "spot,usdm"), "markets to serve and keep warm: spot, usdm, coinm; if unset, the default without the markets the venue lacks (binance-us: spot), or all three with -demo [SYMCACHE_MARKETS]")
		venue      = fs.String("venue", cmp.Or(getenv("BINANCE_VENUE"), "binance"), "Binance venue whose base URLs the markets take unless set one by one: binance, testnet (Binance's test networks) or binance-us (spot only) [BINANCE_VENUE]")
		spotURL    = fs.String("binance-spot-url", cmp.Or(getenv("BINANCE_SPOT_URL"), exchangeinfo.Spot.DefaultBaseURL()), "spot base URL; a comma-separated list is tried in order; if unset, the venue's (binance's below) [BINANCE_SPOT_URL]")
		usdmURL    = fs.String("binance-usdm-url", cmp.Or(getenv("BINANCE_USDM_URL"), exchangeinfo.USDM.DefaultBaseURL()), "USD-M futures base URL(s); if unset, the venue's [BINANCE_USDM_URL]")
		coinmURL   = fs.String("binance-coinm-url", cmp.Or(getenv("BINANCE_COINM_URL"), exchangeinfo.COINM.DefaultBaseURL()), "COIN-M futures base URL(s); if unset, the venue's [BINANCE_COINM_URL]")
		ttl        = fs.String("ttl", cmp.Or(getenv("SYMCACHE_TTL"), "5m"), "freshness of L1 and L2 entries [SYMCACHE_TTL]")
		refresh    = fs.String("refresh-interval", cmp.Or(getenv("SYMCACHE_REFRESH_INTERVAL"), "1m"), "background refresh period per market [SYMCACHE_REFRESH_INTERVAL]")
		prefix     = fs.String("key-prefix", cmp.Or(getenv("SYMCACHE_KEY_PREFIX"), "symcache:"), "Redis key prefix; if unset with -demo, symcache-demo: [SYMCACHE_KEY_PREFIX]")
		l1Max      = fs.String("l1-max-bytes", cmp.Or(getenv("SYMCACHE_L1_MAX_BYTES"), "536870912"), "L1 budget in bytes [SYMCACHE_L1_MAX_BYTES]")
		staleMax   = fs.String("stale-max", cmp.Or(getenv("SYMCACHE_STALE_MAX"), "24h"), "oldest snapshot still served when Binance fails; 0 = no limit [SYMCACHE_STALE_MAX]")
		stateDir   = fs.String("state-dir", getenv("SYMCACHE_STATE_DIR"), "folder for an on-disk last-good copy per market; empty = none [SYMCACHE_STATE_DIR]")
		encoding   = fs.String("l2-encoding", cmp.Or(getenv("SYMCACHE_L2_ENCODING"), "json"), "json or gzip envelopes in Redis [SYMCACHE_L2_ENCODING]")
		l2Timeout  = fs.String("l2-timeout", cmp.Or(getenv("SYMCACHE_L2_TIMEOUT"), "50ms"), "budget of each Redis read; slower reads fall through to the next tier [SYMCACHE_L2_TIMEOUT]")
		maxLoss    = fs.String("max-symbol-loss", cmp.Or(getenv("SYMCACHE_MAX_SYMBOL_LOSS"), "0.5"), "reject an answer that lost more than this fraction of the last good symbols; 1 = accept any [SYMCACHE_MAX_SYMBOL_LOSS]")
		maxGrowth  = fs.String("max-growth", cmp.Or(getenv("SYMCACHE_MAX_GROWTH"), "4"), "hold back an answer more than this many times larger than the last good one, in symbols or bytes, until it keeps coming for a TTL; 0 = accept any [SYMCACHE_MAX_GROWTH]")
		changesMax = fs.String("changes-max", cmp.Or(getenv("SYMCACHE_CHANGES_MAX"), "10000"), "changes each market's change log keeps at least (it also keeps every change younger than 30 days) [SYMCACHE_CHANGES_MAX]")
		minRate    = fs.String("min-client-rate", cmp.Or(getenv("SYMCACHE_MIN_CLIENT_RATE"), "65536"), "slowest a client may read, in bytes a second: an answer not sent within 10s plus its size at this rate is cut off [SYMCACHE_MIN_CLIENT_RATE]")
		forwardOn  = fs.String("forward", cmp.Or(getenv("SYMCACHE_FORWARD"), "on"), "on or off: forward the requests under /api/, /sapi/, /fapi/ and /dapi/ that are not cached to the market's Binance base URL; off answers them 404 [SYMCACHE_FORWARD]")
		fwdTimeout = fs.String("forward-timeout", cmp.Or(getenv("SYMCACHE_FORWARD_TIMEOUT"), "10s"), "how long a forwarded request waits for Binance's answer to begin; then 504 (-1007 once sent: its outcome is unknown) [SYMCACHE_FORWARD_TIMEOUT]")
		metricsAt  = fs.String("metrics-addr", getenv("SYMCACHE_METRICS_ADDR"), "host:port serving /metrics, /healthz and /readyz alone, for Prometheus and probes that cannot reach a loopback or socket address; empty: none [SYMCACHE_METRICS_ADDR]")
		pprofAddr  = fs.String("pprof-addr", getenv("SYMCACHE_PPROF_ADDR"), "loopback host:port to serve Go's profiles on (/debug/pprof/), for finding where time goes; empty: none [SYMCACHE_PPROF_ADDR]")
		uiOn       = fs.String("ui", cmp.Or(getenv("SYMCACHE_UI"), "on"), "on or off: the status page at /; off answers / 404 [SYMCACHE_UI]")
		fastLaneOn = fs.String("fast-lane", cmp.Or(getenv("SYMCACHE_FAST_LANE"), "on"), "on or off: answer plain GETs of exchangeInfo and /v1/symbols/ without net/http's per-request work (the same bytes, faster); off: net/http answers everything [SYMCACHE_FAST_LANE]")
		drainLimit = fs.String("drain-timeout", cmp.Or(getenv("SYMCACHE_DRAIN_TIMEOUT"), "15s"), "on SIGTERM or SIGINT, how long answers in flight may go on; then their connections are closed [SYMCACHE_DRAIN_TIMEOUT]")
	)
	demoFlag := boolValue(getenv("SYMCACHE_DEMO"))
	fs.Var(&demoFlag, "demo", "serve Binance answers recorded in the binary instead of asking Binance, for a try without Binance access: every answer says it is demo data; no venue or Binance URL may be set, nothing is forwarded [SYMCACHE_DEMO]")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, &settingError{"arguments", fmt.Sprintf("unexpected %q (settings are flags or environment variables)", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// name is how an error refers to a setting: the flag if given, else the variable.
	name := func(flagName, env string) string {
		if set[flagName] {
			return "-" + flagName
		}
		return env
	}
	// given says whether a setting was given, by its flag or its variable,
	// rather than left to its default.
	given := func(flagName, env string) bool { return set[flagName] || getenv(env) != "" }
	urlSettings := []struct {
		m         exchangeinfo.Market
		flag, env string
		val       string
	}{
		{exchangeinfo.Spot, "binance-spot-url", "BINANCE_SPOT_URL", *spotURL},
		{exchangeinfo.USDM, "binance-usdm-url", "BINANCE_USDM_URL", *usdmURL},
		{exchangeinfo.COINM, "binance-coinm-url", "BINANCE_COINM_URL", *coinmURL},
	}

	cfg := config{
		addr:      *addr,
		redisURL:  cmp.Or(*redisURL, getenv("REDIS_URL")),
		keyPrefix: *prefix,
		stateDir:  *stateDir,
		baseURLs:  map[exchangeinfo.Market][]string{},
	}
	la, lerr := parseListenAddr(cfg.addr)
	if lerr != nil {
		return config{}, &settingError{name("addr", "SYMCACHE_ADDR"), lerr.Error()}
	}
	if la.network == "unix" {
		if la.mode, lerr = parseSocketMode(*sockMode); lerr != nil {
			return config{}, &settingError{name("socket-mode", "SYMCACHE_SOCKET_MODE"), lerr.Error()}
		}
	}
	cfg.listen = la
	if v := demoFlag.String(); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return config{}, &settingError{name("demo", "SYMCACHE_DEMO"), fmt.Sprintf("%q is not 1, true, 0 or false", v)}
		}
		cfg.demo = on
	}
	if cfg.demo {
		// Demo mode sends nothing to Binance: a setting that says where
		// Binance is, or that something should go there, contradicts it.
		conflicts := [][2]string{{"venue", "BINANCE_VENUE"}}
		for _, u := range urlSettings {
			conflicts = append(conflicts, [2]string{u.flag, u.env})
		}
		for _, c := range conflicts {
			if given(c[0], c[1]) {
				return config{}, &settingError{name("demo", "SYMCACHE_DEMO") + " and " + name(c[0], c[1]), "both set: demo mode answers from recordings and sends nothing to Binance; unset " + name(c[0], c[1]) + ", or leave demo mode off"}
			}
		}
		if given("forward", "SYMCACHE_FORWARD") && *forwardOn == "on" {
			return config{}, &settingError{name("demo", "SYMCACHE_DEMO") + " and " + name("forward", "SYMCACHE_FORWARD"), "demo mode has no Binance to forward to; leave " + name("forward", "SYMCACHE_FORWARD") + " unset or off"}
		}
		if *stateDir != "" {
			return config{}, &settingError{name("demo", "SYMCACHE_DEMO") + " and " + name("state-dir", "SYMCACHE_STATE_DIR"), "both set: the folder would keep recorded answers as the last good copy, served by a later live run when Binance fails; leave " + name("state-dir", "SYMCACHE_STATE_DIR") + " unset in demo mode"}
		}
		if !given("key-prefix", "SYMCACHE_KEY_PREFIX") {
			// With a Redis shared with live sidecars, recorded answers must
			// not take the place of live ones.
			cfg.keyPrefix = "symcache-demo:"
		}
		cfg.transport = demo.Transport()
		for _, m := range exchangeinfo.Markets() {
			cfg.baseURLs[m] = []string{demo.BaseURL}
		}
	} else {
		v, ok := venues[*venue]
		if !ok {
			return config{}, &settingError{name("venue", "BINANCE_VENUE"), fmt.Sprintf("%q is not a known venue: want binance, testnet or binance-us", *venue)}
		}
		cfg.venue = *venue
		for _, u := range urlSettings {
			if !given(u.flag, u.env) {
				if base, ok := v[u.m]; ok {
					cfg.baseURLs[u.m] = []string{base}
				} // else the venue lacks the market: no URL
				continue
			}
			var list []string
			for _, s := range strings.Split(u.val, ",") {
				if s = strings.TrimSpace(s); s != "" {
					list = append(list, s)
				}
			}
			// Validate every market's URLs, served or not: a typo should
			// not wait until the market is switched on.
			if _, err := fetch.New(fetch.Config{Market: u.m, BaseURLs: list}); err != nil || len(list) == 0 {
				msg := "empty"
				if err != nil {
					msg = err.Error()
				}
				return config{}, &settingError{name(u.flag, u.env), msg}
			}
			cfg.baseURLs[u.m] = list
		}
	}

	list := *markets
	switch {
	case given("markets", "SYMCACHE_MARKETS"):
	case cfg.demo:
		list = "spot,usdm,coinm"
	default: // spot,usdm, without a market the venue lacks
		list = ""
		for _, m := range []exchangeinfo.Market{exchangeinfo.Spot, exchangeinfo.USDM} {
			if len(cfg.baseURLs[m]) > 0 {
				list += string(m) + ","
			}
		}
	}
	seen := map[exchangeinfo.Market]bool{}
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		m, err := exchangeinfo.ParseMarket(s)
		if err != nil {
			return config{}, &settingError{name("markets", "SYMCACHE_MARKETS"), err.Error()}
		}
		if len(cfg.baseURLs[m]) == 0 {
			env := "BINANCE_" + strings.ToUpper(string(m)) + "_URL"
			return config{}, &settingError{name("venue", "BINANCE_VENUE") + " and " + name("markets", "SYMCACHE_MARKETS"), fmt.Sprintf("%s has no %s market: leave it out, or give it a base URL of its own (%s)", cfg.venue, m, env)}
		}
		if !seen[m] {
			seen[m] = true
			cfg.markets = append(cfg.markets, m)
		}
	}
	if len(cfg.markets) == 0 {
		return config{}, &settingError{name("markets", "SYMCACHE_MARKETS"), "no market given (want spot, usdm and/or coinm)"}
	}
	var err error
	if cfg.ttl, err = positiveDuration(*ttl); err != nil {
		return config{}, &settingError{name("ttl", "SYMCACHE_TTL"), err.Error()}
	}
	if cfg.refresh, err = positiveDuration(*refresh); err != nil {
		return config{}, &settingError{name("refresh-interval", "SYMCACHE_REFRESH_INTERVAL"), err.Error()}
	}
	if cfg.l2Timeout, err = positiveDuration(*l2Timeout); err != nil {
		return config{}, &settingError{name("l2-timeout", "SYMCACHE_L2_TIMEOUT"), err.Error()}
	}
	if cfg.staleMax, err = time.ParseDuration(*staleMax); err != nil || cfg.staleMax < 0 {
		return config{}, &settingError{name("stale-max", "SYMCACHE_STALE_MAX"), fmt.Sprintf("%q is not a duration >= 0 such as 24h", *staleMax)}
	}
	if cfg.l1MaxBytes, err = strconv.ParseInt(*l1Max, 10, 64); err != nil || cfg.l1MaxBytes <= 0 {
		return config{}, &settingError{name("l1-max-bytes", "SYMCACHE_L1_MAX_BYTES"), fmt.Sprintf("%q is not a positive number of bytes", *l1Max)}
	}
	if cfg.maxLoss, err = strconv.ParseFloat(*maxLoss, 64); err != nil || !(cfg.maxLoss > 0 && cfg.maxLoss <= 1) {
		return config{}, &settingError{name("max-symbol-loss", "SYMCACHE_MAX_SYMBOL_LOSS"), fmt.Sprintf("%q is not a fraction in (0, 1] such as 0.5", *maxLoss)}
	}
	if cfg.maxGrowth, err = strconv.ParseFloat(*maxGrowth, 64); err != nil || !(cfg.maxGrowth == 0 || cfg.maxGrowth > 1 && cfg.maxGrowth <= 1e6) {
		return config{}, &settingError{name("max-growth", "SYMCACHE_MAX_GROWTH"), fmt.Sprintf("%q is not a factor above 1 such as 4, or 0 to accept any growth", *maxGrowth)}
	}
	if cfg.changesMax, err = strconv.Atoi(*changesMax); err != nil || cfg.changesMax < 1 || cfg.changesMax > 10_000_000 {
		return config{}, &settingError{name("changes-max", "SYMCACHE_CHANGES_MAX"), fmt.Sprintf("%q is not a whole number from 1 to 10000000", *changesMax)}
	}
	if cfg.minClientRate, err = strconv.ParseInt(*minRate, 10, 64); err != nil || cfg.minClientRate <= 0 {
		return config{}, &settingError{name("min-client-rate", "SYMCACHE_MIN_CLIENT_RATE"), fmt.Sprintf("%q is not a positive number of bytes a second such as 65536", *minRate)}
	}
	if cfg.drainTimeout, err = positiveDuration(*drainLimit); err != nil {
		return config{}, &settingError{name("drain-timeout", "SYMCACHE_DRAIN_TIMEOUT"), err.Error()}
	}
	if cfg.fwdTimeout, err = positiveDuration(*fwdTimeout); err != nil {
		return config{}, &settingError{name("forward-timeout", "SYMCACHE_FORWARD_TIMEOUT"), err.Error()}
	}
	if err := checkPprofAddr(*pprofAddr); err != nil {
		return config{}, &settingError{name("pprof-addr", "SYMCACHE_PPROF_ADDR"), err.Error()}
	}
	cfg.pprofAddr = *pprofAddr
	if err := checkMetricsAddr(*metricsAt); err != nil {
		return config{}, &settingError{name("metrics-addr", "SYMCACHE_METRICS_ADDR"), err.Error()}
	}
	cfg.metricsAddr = *metricsAt
	onOff := func(v, flagName, env string) (bool, error) {
		switch v {
		case "on":
			return true, nil
		case "off":
			return false, nil
		}
		return false, &settingError{name(flagName, env), fmt.Sprintf("%q is not on or off", v)}
	}
	if cfg.ui, err = onOff(*uiOn, "ui", "SYMCACHE_UI"); err != nil {
		return config{}, err
	}
	if cfg.fastLane, err = onOff(*fastLaneOn, "fast-lane", "SYMCACHE_FAST_LANE"); err != nil {
		return config{}, err
	}
	if cfg.forward, err = onOff(*forwardOn, "forward", "SYMCACHE_FORWARD"); err != nil {
		return config{}, err
	}
	// Demo mode forwards nothing: there is no Binance to send to, and the
	// replay knows only exchangeInfo, so a forwarded order would get a
	// puzzling 404 from it. Off, the sidecar's own 404 says what it
	// answers (docs/operations.md, Demo mode).
	cfg.forward = cfg.forward && !cfg.demo
	if cfg.adminToken, err = adminToken(getenv); err != nil {
		return config{}, err
	}
	if cfg.l2Encoding, err = l2.ParseEncoding(*encoding); err != nil {
		return config{}, &settingError{name("l2-encoding", "SYMCACHE_L2_ENCODING"), err.Error()}
	}
	if cfg.keyPrefix == "" {
		return config{}, &settingError{name("key-prefix", "SYMCACHE_KEY_PREFIX"), "empty"}
	}
	if cfg.stateDir != "" {
		if cfg.disk, err = disk.New(cfg.stateDir); err != nil {
			return config{}, &settingError{name("state-dir", "SYMCACHE_STATE_DIR"), err.Error()}
		}
	}
	if cfg.redisURL != "" {
		if cfg.redisOptions, err = l2.ParseURL(cfg.redisURL); err != nil {
			return config{}, &settingError{name("redis-url", "REDIS_URL"), err.Error()}
		}
	}
	// The sentinels' credentials, which a URL does not carry (see l2.ParseURL).
	if user, password := getenv("REDIS_SENTINEL_USERNAME"), getenv("REDIS_SENTINEL_PASSWORD"); user != "" || password != "" {
		env := "REDIS_SENTINEL_PASSWORD"
		if password == "" {
			env = "REDIS_SENTINEL_USERNAME"
		}
		if cfg.redisOptions == nil {
			return config{}, &settingError{env, fmt.Sprintf("set, but %s is empty: sentinel credentials need a Sentinel URL (master_name=NAME)", name("redis-url", "REDIS_URL"))}
		}
		if err := cfg.redisOptions.SetSentinelAuth(user, password); err != nil {
			return config{}, &settingError{env, err.Error()} // without the password
		}
	}
	return cfg, nil
}

// envOnlyUsage ends -h: the settings that have no flag.
const envOnlyUsage = `
Environment only (secrets, kept out of the process's arguments):
  SYMCACHE_ADMIN_TOKEN
    	bearer token of the admin endpoints (/admin/...); empty disables them
  SYMCACHE_ADMIN_TOKEN_FILE
    	a file holding the admin token instead, such as a mounted Kubernetes Secret (a trailing newline is ignored)
  REDIS_SENTINEL_USERNAME, REDIS_SENTINEL_PASSWORD
    	the sentinels' own credentials, with a Sentinel REDIS_URL
`

// maxTokenBytes bounds SYMCACHE_ADMIN_TOKEN_FILE: a token is a line, and a
// path to something else (a log, a device) should fail, not fill memory.
const maxTokenBytes = 4096

// adminToken returns the admin token: SYMCACHE_ADMIN_TOKEN, or the contents
// of the file SYMCACHE_ADMIN_TOKEN_FILE names (as Kubernetes mounts a Secret
// key) without its trailing newline (as `echo TOKEN >file` leaves one).
// Neither set: "", admin disabled. No error holds the token.
func adminToken(getenv func(string) string) (string, error) {
	const envName, fileName = "SYMCACHE_ADMIN_TOKEN", "SYMCACHE_ADMIN_TOKEN_FILE"
	token, file := getenv(envName), getenv(fileName)
	name := envName
	switch {
	case token != "" && file != "":
		return "", &settingError{envName + " and " + fileName, "both set: give the token one way"}
	case file != "":
		name = fileName
		f, err := os.Open(file)
		if err != nil {
			return "", &settingError{name, err.Error()}
		}
		b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
		f.Close()
		switch {
		case err != nil:
			return "", &settingError{name, fmt.Sprintf("read %s: %v", file, err)}
		case len(b) > maxTokenBytes:
			return "", &settingError{name, fmt.Sprintf("%s is longer than %d bytes: not a token", file, maxTokenBytes)}
		}
		if token = strings.TrimRight(string(b), "\r\n"); token == "" {
			return "", &settingError{name, fmt.Sprintf("%s is empty", file)}
		}
	}
	if strings.Contains(token, "REPLACE_ME") {
		return "", &settingError{name, "the token is still the placeholder of deploy/kubernetes (REPLACE_ME)"}
	}
	if strings.ContainsFunc(token, unicode.IsControl) {
		return "", &settingError{name, "the token holds a control character (a newline, a tab, ...): it could never match an Authorization header"}
	}
	return token, nil
}

func positiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 5m or 30s", s)
	}
	return d, nil
}

// run is the whole program; it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		var se *settingError
		if errors.As(err, &se) {
			fmt.Fprintln(stderr, se.Error())
		} // the flag package has printed its own line for a bad flag
		return 2
	}
	// A flood of refused or failed requests writes a few lines per kind
	// every 10 s, and then how many it left out (see logthrottle).
	throttle := logthrottle.New(slog.NewJSONHandler(stderr, nil), logthrottle.Config{})
	defer throttle.Close()
	log := slog.New(throttle)
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("sidecar stopped", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	var notice string // httpapi.Config.Demo
	if cfg.demo {
		// The first line of the log, before anything else.
		recs, err := demo.Recordings(cfg.markets...)
		if err != nil {
			return err
		}
		notice = demo.Notice(recs)
		log.Warn("demo mode: serving Binance answers recorded in the binary, not live data; nothing is sent to Binance",
			"demo", notice, "upstream", demo.BaseURL)
	}
	if cfg.refresh >= cfg.ttl {
		log.Warn("refresh interval is not shorter than the TTL: requests will sometimes wait for Binance",
			"refresh_interval", cfg.refresh.String(), "ttl", cfg.ttl.String())
	}

	gate := fetch.NewGate()
	ups := make(map[exchangeinfo.Market]symcache.Upstream, len(cfg.markets))
	upStats := make(map[exchangeinfo.Market]httpapi.UpstreamStats, len(cfg.markets))
	var hc *http.Client // nil: fetch's own
	if cfg.transport != nil {
		hc = &http.Client{Transport: cfg.transport}
	}
	for _, m := range cfg.markets {
		c, err := fetch.New(fetch.Config{Market: m, BaseURLs: cfg.baseURLs[m], HTTPClient: hc, Gate: gate, Logger: log})
		if err != nil {
			return err
		}
		ups[m], upStats[m] = c, c
	}
	hcfg := httpapi.Config{Logger: log, AdminToken: cfg.adminToken, Upstreams: upStats, Gate: gate, MinClientRate: cfg.minClientRate, Demo: notice, NoUI: !cfg.ui}
	if cfg.forward {
		// The same Gate as the cache's fetches: a 429 or 418 seen by either
		// stops both from asking that host.
		fwd, err := forward.New(forward.Config{BaseURLs: cfg.baseURLs, Gate: gate, Transport: cfg.transport, Timeout: cfg.fwdTimeout, Logger: log})
		if err != nil {
			return err
		}
		// A market the venue lacks (binance-us: the futures) is not
		// forwarded, rather than sent to Binance's own hosts.
		hcfg.Forward, hcfg.ForwardStats = forwardWithout(fwd, cfg.baseURLs, cfg.venue), fwd
	}
	mem, err := l1.New(l1.Config{MaxBytes: cfg.l1MaxBytes})
	if err != nil {
		return err
	}
	defer mem.Close()
	hcfg.L1 = mem
	ccfg := symcache.Config{
		Upstreams:       ups,
		L1:              mem,
		TTL:             cfg.ttl,
		RefreshInterval: cfg.refresh,
		StaleMax:        cmp.Or(cfg.staleMax, -1), // SYMCACHE_STALE_MAX=0: no limit
		MaxSymbolLoss:   cfg.maxLoss,
		MaxGrowth:       cfg.maxGrowth,
		ChangesMax:      cfg.changesMax,
		Logger:          log,
	}
	if cfg.maxGrowth == 0 {
		ccfg.MaxGrowth = -1 // any growth accepted
	}
	if cfg.maxLoss >= 1 {
		ccfg.MaxSymbolLoss = -1 // any loss accepted
	}
	if cfg.disk != nil {
		ccfg.Disk = cfg.disk
	}
	if cfg.redisOptions != nil {
		// go-redis prints connection trouble itself; l2 already warns about
		// each failed call, so its lines go to the debug level.
		redis.SetLogger(redisLogger{log})
		rdb, err := cfg.redisOptions.NewClient() // ContextTimeoutEnabled: l2's per-call budget bounds socket I/O
		if err != nil {
			return err
		}
		defer rdb.Close()
		store := l2.New(l2.Config{Client: rdb, Prefix: cfg.keyPrefix, Encoding: cfg.l2Encoding, Timeout: cfg.l2Timeout, Logger: log})
		ccfg.L2, ccfg.Coordinator = store, store // with the other sidecars on this Redis
		ccfg.Gate = gate                         // and their bans of Binance hosts
		hcfg.L2 = store
	}
	cache, err := symcache.New(ccfg)
	if err != nil {
		return err
	}
	defer cache.Close()
	hcfg.Cache = cache
	stopping := make(chan struct{}) // closed when the drain starts: change streams end
	hcfg.Stop = stopping
	h, err := httpapi.New(hcfg)
	if err != nil {
		return err
	}

	ln, err := listen(cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// No WriteTimeout: httpapi gives each answer a write deadline that grows
	// with its size (SYMCACHE_MIN_CLIENT_RATE), which one timeout for every
	// answer cannot; its Listener makes those deadlines cheap on busy
	// keep-alive connections.
	ln = httpapi.Listener(ln)
	var open openConns
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second, // the whole request, a forwarded body included
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState:         open.track,
	}
	srv.RegisterOnShutdown(func() { close(stopping) })
	l2desc := "none"
	if cfg.redisOptions != nil {
		l2desc = cfg.redisOptions.String() // no password
	}
	upstream := []any{"venue", cfg.venue} // not the URLs: they may hold a proxy's password
	if cfg.demo {
		upstream = []any{"demo", true}
	}
	log.Info("listening", slices.Concat([]any{"addr", ln.Addr().String(), "markets", fmt.Sprint(cfg.markets)}, upstream, []any{"l2", l2desc, "version", version.String()})...)
	// serve, shutdown and closeAll are the http.Server's, or the fast
	// lane's in front of it.
	serve, shutdown, closeAll := srv.Serve, srv.Shutdown, srv.Close
	if cfg.fastLane {
		lane, err := httpapi.NewFastLane(srv)
		if err != nil {
			return err
		}
		serve, shutdown, closeAll = lane.Serve, lane.Shutdown, lane.Close
	}
	errc := make(chan error, 1)
	go func() { errc <- serve(ln) }()
	if cfg.pprofAddr != "" {
		servePprof(cfg.pprofAddr, log)
	}
	if cfg.metricsAddr != "" {
		if err := serveMetrics(ctx, cfg.metricsAddr, h, log); err != nil {
			closeAll()
			return err
		}
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining connections", "drain_timeout", cfg.drainTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.drainTimeout)
	defer cancel()
	err = shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Clients too slow to take their answers within the drain: cut them
		// off, as the drain limit promises, and stop as planned.
		n := open.n.Load()
		closeAll()
		log.Warn("drain timeout reached: closed the connections still open", "connections", n, "drain_timeout", cfg.drainTimeout.String())
		open.wait(5 * time.Second) // their handlers return before the cache closes
	} else if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// openConns counts the server's open connections (http.Server.ConnState).
type openConns struct{ n atomic.Int64 }

func (o *openConns) track(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		o.n.Add(1)
	case http.StateIdle:
		// The connection's write deadline was its last answer's (httpapi):
		// clear it, so that it cannot cut whatever net/http writes next.
		c.SetWriteDeadline(time.Time{})
	case http.StateHijacked, http.StateClosed:
		o.n.Add(-1)
	}
}

// wait waits until no connection is open, or d has passed. A connection
// counts as closed once its handler has returned.
func (o *openConns) wait(d time.Duration) {
	for deadline := time.Now().Add(d); o.n.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// redisLogger sends go-redis' own log lines to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
