package l2_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// urlForm is what a test expects ParseURL to make of a URL.
type urlForm struct {
	form       string // "single", "cluster" or "sentinel"
	addrs      []string
	db         int
	tls        bool
	user, pass string
	master     string
}

// formOf summarizes o, and checks that exactly one form is set, with
// ContextTimeoutEnabled.
func formOf(t *testing.T, o *l2.ClientOptions) urlForm {
	t.Helper()
	var got []urlForm
	if s := o.Single; s != nil {
		got = append(got, urlForm{"single", []string{s.Addr}, s.DB, s.TLSConfig != nil, s.Username, s.Password, ""})
		if !s.ContextTimeoutEnabled {
			t.Error("Single.ContextTimeoutEnabled = false, want true")
		}
	}
	if c := o.Cluster; c != nil {
		got = append(got, urlForm{"cluster", c.Addrs, 0, c.TLSConfig != nil, c.Username, c.Password, ""})
		if !c.ContextTimeoutEnabled {
			t.Error("Cluster.ContextTimeoutEnabled = false, want true")
		}
	}
	if f := o.Failover; f != nil {
		got = append(got, urlForm{"sentinel", f.SentinelAddrs, f.DB, f.TLSConfig != nil, f.Username, f.Password, f.MasterName})
		if !f.ContextTimeoutEnabled {
			t.Error("Failover.ContextTimeoutEnabled = false, want true")
		}
		if f.SentinelUsername != "" || f.SentinelPassword != "" {
			t.Errorf("Failover sentinel credentials = %q, %q, want none", f.SentinelUsername, f.SentinelPassword)
		}
	}
	if len(got) != 1 {
		t.Fatalf("ParseURL set %d forms (%v), want exactly 1", len(got), got)
	}
	return got[0]
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		name, url string
		want      urlForm
	}{
		{"single", "redis://127.0.0.1:6379/2",
			urlForm{form: "single", addrs: []string{"127.0.0.1:6379"}, db: 2}},
		{"single, default port and db", "redis://cache",
			urlForm{form: "single", addrs: []string{"cache:6379"}}},
		{"single, TLS and credentials", "rediss://app:pw@cache.example:6380/1",
			urlForm{form: "single", addrs: []string{"cache.example:6380"}, db: 1, tls: true, user: "app", pass: "pw"}},
		{"single, escaped password", "redis://:p%40ss%2Fw%3Ard%25@h:1",
			urlForm{form: "single", addrs: []string{"h:1"}, pass: "p@ss/w:rd%"}},
		{"single, cluster=false", "redis://h:1/0?cluster=false",
			urlForm{form: "single", addrs: []string{"h:1"}}},
		{"single, IPv6", "redis://[::1]:6379",
			urlForm{form: "single", addrs: []string{"[::1]:6379"}}},
		{"cluster, addr seeds", "redis://a:7000?addr=b:7001&addr=c:7002",
			urlForm{form: "cluster", addrs: []string{"a:7000", "b:7001", "c:7002"}}},
		{"cluster, db 0 path", "redis://a:7000/0?addr=b:7001",
			urlForm{form: "cluster", addrs: []string{"a:7000", "b:7001"}}},
		{"cluster=true, one seed", "redis://cfg.example:6379?cluster=true",
			urlForm{form: "cluster", addrs: []string{"cfg.example:6379"}}},
		{"cluster=1, TLS and credentials", "rediss://app:pw@cfg.example:6379/?cluster=1",
			urlForm{form: "cluster", addrs: []string{"cfg.example:6379"}, tls: true, user: "app", pass: "pw"}},
		{"cluster=true with addr", "redis://a:1?cluster=true&addr=b:2",
			urlForm{form: "cluster", addrs: []string{"a:1", "b:2"}}},
		{"cluster, db=0", "redis://a:1?cluster=true&db=0",
			urlForm{form: "cluster", addrs: []string{"a:1"}}},
		{"sentinel", "redis://s1:26379?master_name=mymaster",
			urlForm{form: "sentinel", addrs: []string{"s1:26379"}, master: "mymaster"}},
		{"sentinel, several, db, credentials", "redis://app:pw@s1:26379/3?master_name=mymaster&addr=s2:26380&addr=s3:26381",
			urlForm{form: "sentinel", addrs: []string{"s1:26379", "s2:26380", "s3:26381"}, db: 3, user: "app", pass: "pw", master: "mymaster"}},
		{"sentinel, TLS, cluster=false", "rediss://s1:26379?master_name=m&cluster=false",
			urlForm{form: "sentinel", addrs: []string{"s1:26379"}, tls: true, master: "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := l2.ParseURL(tt.url)
			if err != nil {
				t.Fatalf("ParseURL(%q) = %v, want nil", tt.url, err)
			}
			got := formOf(t, o)
			if got.form != tt.want.form || !slices.Equal(got.addrs, tt.want.addrs) || got.db != tt.want.db ||
				got.tls != tt.want.tls || got.user != tt.want.user || got.pass != tt.want.pass || got.master != tt.want.master {
				t.Errorf("ParseURL(%q) = %+v, want %+v", tt.url, got, tt.want)
			}
		})
	}
}

// TestParseURL_goRedisOptions checks that go-redis' own parameters reach each form.
func TestParseURL_goRedisOptions(t *testing.T) {
	const q = "dial_timeout=2s&pool_size=20"
	for _, raw := range []string{
		"redis://h:1?" + q,
		"redis://h:1?cluster=true&" + q,
		"redis://h:1?master_name=m&" + q,
	} {
		o, err := l2.ParseURL(raw)
		if err != nil {
			t.Fatalf("ParseURL(%q) = %v, want nil", raw, err)
		}
		var dial time.Duration
		var pool int
		switch {
		case o.Single != nil:
			dial, pool = o.Single.DialTimeout, o.Single.PoolSize
		case o.Cluster != nil:
			dial, pool = o.Cluster.DialTimeout, o.Cluster.PoolSize
		case o.Failover != nil:
			dial, pool = o.Failover.DialTimeout, o.Failover.PoolSize
		}
		if dial != 2*time.Second || pool != 20 {
			t.Errorf("ParseURL(%q): DialTimeout, PoolSize = %v, %d, want 2s, 20", raw, dial, pool)
		}
	}
	o, err := l2.ParseURL("rediss://h:1?cluster=true&skip_verify=true")
	if err != nil || !o.Cluster.TLSConfig.InsecureSkipVerify {
		t.Errorf("ParseURL(cluster with skip_verify=true) = %v, want InsecureSkipVerify", err)
	}
}

func TestParseURL_errors(t *testing.T) {
	tests := []struct {
		name, url string
		want      string // in the error
	}{
		{"empty", "", "empty"},
		{"no scheme", "127.0.0.1:6379", "want redis://host:port"},
		{"other scheme", "http://h:1", `scheme "http"`},
		{"unix socket", "unix:///tmp/redis.sock", `scheme "unix"`},
		{"bad port", "redis://h:port", "invalid port"},
		{"bad db", "redis://h:1/x", `invalid database number: "x"`},
		{"bad path", "redis://h:1/1/2", "invalid URL path"},
		{"unknown parameter", "redis://h:1?bogus=1", "unexpected option: bogus"},
		{"bad duration", "redis://h:1?dial_timeout=soon", "invalid dial_timeout duration"},
		{"pool too big", "redis://h:1?pool_size=99999999999", "pool_size="},
		{"password parameter", "redis://h:1?password=x", "credentials belong in the user info"},
		{"username parameter", "redis://h:1?master_name=m&username=x", "credentials belong in the user info"},
		{"sentinel_password parameter", "redis://h:1?master_name=m&sentinel_password=x", "parameter sentinel_password: credentials belong"},
		{"sentinel_username parameter", "redis://h:1?master_name=m&sentinel_username=x", "parameter sentinel_username: credentials belong"},
		{"context_timeout_enabled", "redis://h:1?master_name=m&context_timeout_enabled=false", "context_timeout_enabled"},
		{"cluster, unknown parameter", "redis://h:1?addr=b:2&bogus=1", "(cluster): unexpected option: bogus"},
		{"cluster, bad addr", "redis://h:1?addr=nohostport", "unable to parse addr param"},
		{"cluster, db path", "redis://h:1/3?addr=b:2", "only database 0"},
		{"cluster, db parameter", "redis://h:1?cluster=true&db=2", "only database 0"},
		{"cluster=yes", "redis://h:1?cluster=yes", `cluster="yes", want true or false`},
		{"cluster=false with addr", "redis://h:1?cluster=false&addr=b:2", "addr= with cluster=false"},
		{"cluster and sentinel", "redis://h:1?cluster=true&master_name=m", "not both"},
		{"sentinel, empty master_name", "redis://h:1?master_name=", "master_name is empty"},
		{"sentinel, unknown parameter", "redis://h:1?master_name=m&bogus=1", "(sentinel): unexpected option: bogus"},
		{"sentinel, route_by_latency", "redis://h:1?master_name=m&route_by_latency=true", "route_by_latency: not supported"},
		{"sentinel, route_randomly", "redis://h:1?master_name=m&route_randomly=true", "route_randomly: not supported"},
		{"sentinel, replica_only", "redis://h:1?master_name=m&replica_only=true", "replica_only: not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := l2.ParseURL(tt.url)
			if err == nil {
				t.Fatalf("ParseURL(%q) = %v, nil, want an error", tt.url, o)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "redis url") {
				t.Errorf("ParseURL(%q) = %q, want an error starting with %q and saying %q", tt.url, err, "redis url", tt.want)
			}
			if c, err2 := l2.NewClient(tt.url); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("NewClient(%q) = %v, %v, want nil, %v", tt.url, c, err2, err)
			}
		})
	}
}

// TestParseURL_redactsPassword checks that no error and no description of a
// URL holds its password, escaped or not.
func TestParseURL_redactsPassword(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	special := "p@ss/w:rd%" + pw
	escaped := url.QueryEscape(special)
	tests := []struct{ name, url string }{
		{"bad parameter", "redis://app:" + pw + "@h:1?bogus=1"},
		{"bad parameter, cluster", "redis://app:" + pw + "@h:1?addr=b:2&bogus=1"},
		{"bad parameter, sentinel", "redis://app:" + pw + "@h:1?master_name=m&bogus=1"},
		{"password as a parameter's value", "redis://:" + pw + "@h:1?dial_timeout=" + pw},
		{"password as a parameter's value, cluster", "redis://:" + pw + "@h:1?cluster=true&dial_timeout=" + pw},
		{"password as a parameter's value, sentinel", "redis://:" + pw + "@h:1?master_name=m&max_retries=" + pw},
		{"password as the db", "redis://:" + pw + "@h:1/" + pw},
		{"password as the db, cluster", "redis://:" + pw + "@h:1/" + pw + "?cluster=true"},
		{"password as a cluster value", "redis://:" + pw + "@h:1?cluster=" + pw},
		{"password as an addr", "redis://:" + pw + "@h:1?addr=" + pw},
		{"bad port", "redis://:" + pw + "@h:port"},
		{"bad escape in the password", "redis://:" + pw + "%zz@h:1"},
		{"bad escape at the password's start", "redis://:%zz" + pw + "@h:1"},
		{"special characters", "redis://:" + escaped + "@h:1?bogus=" + escaped},
		{"password with an @, unescaped", "redis://:" + pw + "@x@h:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l2.ParseURL(tt.url)
			if err == nil {
				t.Fatalf("ParseURL(%q) = nil, want an error", tt.url)
			}
			for _, secret := range []string{pw, escaped, "%zz"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("ParseURL(%q) = %q, which holds %q", tt.url, err, secret)
				}
			}
		})
	}
}

func TestParseURL_String(t *testing.T) {
	tests := []struct{ url, want string }{
		{"redis://127.0.0.1:6379/2", "single server 127.0.0.1:6379, db 2"},
		{"rediss://app:hunter2@cache:6380", `single server cache:6380, db 0, TLS, user "app", password set`},
		{"redis://:hunter2@a:1?addr=b:2", "cluster via a:1,b:2, password set"},
		{"rediss://a:1?cluster=true", "cluster via a:1, TLS"},
		{"redis://:hunter2@s1:26379/1?master_name=mymaster&addr=s2:26379", `sentinel master "mymaster" via s1:26379,s2:26379, db 1, password set`},
	}
	for _, tt := range tests {
		o, err := l2.ParseURL(tt.url)
		if err != nil {
			t.Fatalf("ParseURL(%q) = %v", tt.url, err)
		}
		if got := o.String(); got != tt.want {
			t.Errorf("ParseURL(%q).String() = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestClientOptions_SetSentinelAuth(t *testing.T) {
	const pw = "s3nt1nel-Pa55"
	tests := []struct {
		name, url string
		want      string // in the error; "" for none
	}{
		{"single", "redis://:data-pw@h:1/0", "names a single server, not Sentinel (add master_name=NAME)"},
		{"cluster", "redis://h:1?addr=h:2", "names a Redis Cluster, not Sentinel"},
		{"cluster=true", "redis://h:1?cluster=true", "names a Redis Cluster, not Sentinel"},
		{"sentinel", "redis://app:data-pw@s1:26379/1?master_name=m&addr=s2:26379", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := l2.ParseURL(tt.url)
			if err != nil {
				t.Fatalf("ParseURL(%q) = %v, want nil", tt.url, err)
			}
			before := o.String()
			err = o.SetSentinelAuth("watcher", pw)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "redis url") {
					t.Fatalf("SetSentinelAuth on %q = %v, want an error starting with %q and saying %q", tt.url, err, "redis url", tt.want)
				}
				if strings.Contains(err.Error(), pw) {
					t.Errorf("SetSentinelAuth on %q = %q, which holds the password", tt.url, err)
				}
				if got := o.String(); got != before {
					t.Errorf("String() after a refused SetSentinelAuth = %q, want %q (unchanged)", got, before)
				}
				return
			}
			if err != nil {
				t.Fatalf("SetSentinelAuth on %q = %v, want nil", tt.url, err)
			}
			f := o.Failover
			if f.SentinelUsername != "watcher" || f.SentinelPassword != pw {
				t.Errorf("sentinel credentials = %q, %q, want %q, %q", f.SentinelUsername, f.SentinelPassword, "watcher", pw)
			}
			if f.Username != "app" || f.Password != "data-pw" {
				t.Errorf("data credentials = %q, %q, want %q, %q (the URL's, unchanged)", f.Username, f.Password, "app", "data-pw")
			}
		})
	}
	var none *l2.ClientOptions
	if err := none.SetSentinelAuth("", pw); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("SetSentinelAuth on nil options = %v, want an error without the password", err)
	}
}

// TestClientOptions_String checks the description of sentinel credentials:
// the user, and whether a password is set, never the password.
func TestClientOptions_String(t *testing.T) {
	const pw = "s3nt1nel-Pa55"
	tests := []struct {
		user, pass string
		want       string
	}{
		{"", "", `sentinel master "m" via s1:26379, db 0, password set`},
		{"", pw, `sentinel master "m" via s1:26379, db 0, password set, sentinel password set`},
		{"watcher", pw, `sentinel master "m" via s1:26379, db 0, password set, sentinel user "watcher", sentinel password set`},
		{"watcher", "", `sentinel master "m" via s1:26379, db 0, password set, sentinel user "watcher"`},
	}
	for _, tt := range tests {
		o, err := l2.ParseURL("redis://:hunter2@s1:26379?master_name=m")
		if err != nil {
			t.Fatal(err)
		}
		if err := o.SetSentinelAuth(tt.user, tt.pass); err != nil {
			t.Fatalf("SetSentinelAuth(%q, %q) = %v, want nil", tt.user, tt.pass, err)
		}
		got := o.String()
		if got != tt.want {
			t.Errorf("String() with sentinel credentials %q, %q = %q, want %q", tt.user, tt.pass, got, tt.want)
		}
		for _, secret := range []string{pw, "hunter2"} {
			if strings.Contains(got, secret) || strings.Contains(fmt.Sprint(o), secret) {
				t.Errorf("String() = %q, which holds the password %q", got, secret)
			}
		}
	}
}

func TestNewClient_types(t *testing.T) {
	tests := []struct{ url, want string }{
		{"redis://127.0.0.1:1/0", "*redis.Client"},
		{"redis://127.0.0.1:1?addr=127.0.0.1:2", "*redis.ClusterClient"},
		{"redis://127.0.0.1:1?cluster=true", "*redis.ClusterClient"},
		{"redis://127.0.0.1:1?master_name=m", "*redis.Client"},
	}
	for _, tt := range tests {
		c, err := l2.NewClient(tt.url)
		if err != nil {
			t.Fatalf("NewClient(%q) = %v, want nil", tt.url, err)
		}
		got := "?"
		switch c := c.(type) {
		case *redis.Client:
			got = "*redis.Client"
			if !c.Options().ContextTimeoutEnabled {
				t.Errorf("NewClient(%q): ContextTimeoutEnabled = false, want true", tt.url)
			}
		case *redis.ClusterClient:
			got = "*redis.ClusterClient"
			if !c.Options().ContextTimeoutEnabled {
				t.Errorf("NewClient(%q): ContextTimeoutEnabled = false, want true", tt.url)
			}
		}
		c.Close()
		if got != tt.want {
			t.Errorf("NewClient(%q) = %T, want %s", tt.url, c, tt.want)
		}
	}
}

// TestNewClient_single checks a client made from l2test.Start's URL against
// the server: a Store round trip, the database of the URL, and a password.
func TestNewClient_single(t *testing.T) {
	srv := l2test.Start(t)
	ctx := context.Background()
	rdb, err := l2.NewClient(srv.URL())
	if err != nil {
		t.Fatalf("NewClient(%q) = %v, want nil", srv.URL(), err)
	}
	defer rdb.Close()
	s := l2.New(l2.Config{Client: rdb, Logger: discard(), Timeout: time.Second})
	want := envelope("usdm", []byte(`{"symbols":[{"symbol":"BTCUSDT"}]}`))
	if err := s.Put(ctx, want, time.Minute); err != nil {
		t.Fatalf("Put = %v, want nil", err)
	}
	got, err := s.Current(ctx, "usdm")
	if err != nil {
		t.Fatalf("Current(%q) = %v, want nil", "usdm", err)
	}
	checkEnvelope(t, `Current("usdm")`, got, want)

	// The database of the URL.
	db3, err := l2.NewClient("redis://" + srv.Addr() + "/3")
	if err != nil {
		t.Fatal(err)
	}
	defer db3.Close()
	if err := db3.Set(ctx, "k", "in 3", 0).Err(); err != nil {
		t.Fatalf("Set on db 3 = %v, want nil", err)
	}
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 3})
	defer direct.Close()
	if got, err := direct.Get(ctx, "k").Result(); got != "in 3" || err != nil {
		t.Errorf("GET k on db 3 = %q, %v, want %q, nil", got, err, "in 3")
	}
	if n, err := srv.Client(t).Exists(ctx, "k").Result(); n != 0 || err != nil {
		t.Errorf("EXISTS k on db 0 = %d, %v, want 0, nil", n, err)
	}

	// A password in the URL is used; a wrong one fails without showing itself.
	const password = "the-right-one"
	if err := srv.Client(t).ConfigSet(ctx, "requirepass", password).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		pw string
		ok bool
	}{{password, true}, {"hunter2-wrong", false}} {
		raw := "redis://:" + tt.pw + "@" + srv.Addr() + "/0"
		c, err := l2.NewClient(raw)
		if err != nil {
			t.Fatalf("NewClient(%q) = %v, want nil", raw, err)
		}
		err = c.Ping(ctx).Err()
		c.Close()
		if (err == nil) != tt.ok {
			t.Errorf("Ping with password %q = %v, want success %t", tt.pw, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), tt.pw) {
			t.Errorf("Ping error %q holds the password", err)
		}
	}
}

// FuzzParseURL feeds ParseURL, ClientOptions.String and NewClient URLs built around a
// password: none may panic, and when the URL's password is the marker, no
// error or description may hold it, raw or escaped. The seed corpus is in
// testdata/fuzz/FuzzParseURL.
func FuzzParseURL(f *testing.F) {
	for _, seed := range [][2]string{
		{"redis://:", "@h:1/0"},
		{"redis://app:", "@h:1?bogus=1"},
		{"rediss://app:", "@h:1?addr=b:2&skip_verify=true"},
		{"redis://:", "@h:1?master_name=m&addr=s2:26379&route_randomly=true"},
		{"redis://:", "@h:port"},
		{"redis://:", "%zz@h:1"},
		{"redis://:", "@h:1/x?cluster=maybe"},
		{"redis://:", "@h:1?pool_size=99999999999"},
		{"redis://u:", "@x@h:1?dial_timeout=never"},
		{"redis://:", "@h:1?dial_timeout=Zq9xK7pWmarker"},
		{"redis://:", "@h:1/Zq9xK7pWmarker?cluster=true"},
		{"redis://:", "%zz@h:1?addr=Zq9xK7pWmarker"},
	} {
		f.Add(seed[0], seed[1])
	}
	const marker = "Zq9xK7pWmarker"
	f.Fuzz(func(t *testing.T, before, after string) {
		raw := before + marker + after
		o, err := l2.ParseURL(raw)
		if err == nil {
			c, cerr := o.NewClient()
			if cerr == nil {
				c.Close()
			} else {
				err = cerr
			}
			_ = o.String()
		}
		if !passwordHolds(raw, marker) {
			return
		}
		// An error is redacted wherever the password appears; a description
		// of a valid URL names its hosts, which might be the same text.
		once := strings.Count(raw, marker) == 1
		for _, secret := range []string{marker, url.QueryEscape(marker), url.PathEscape(marker)} {
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("ParseURL(%q) error %q holds the password", raw, err)
			}
			if o != nil && once && strings.Contains(o.String(), secret) {
				t.Errorf("ClientOptions.String() of %q = %q holds the password", raw, o.String())
			}
		}
	})
}

// passwordHolds reports whether the password of rawURL, as written (between
// the first ":" and the last "@" of the part between "//" and the path), is
// marker, whether or not rawURL parses. (Text that is only part of the
// password may be quoted where the URL also has it elsewhere, say as an
// unknown option: that is not the password.)
func passwordHolds(rawURL, marker string) bool {
	_, rest, ok := strings.Cut(rawURL, "//")
	if !ok {
		return false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	i := strings.LastIndex(rest, "@")
	if i < 0 {
		return false
	}
	_, pw, ok := strings.Cut(rest[:i], ":")
	return ok && pw == marker
}
