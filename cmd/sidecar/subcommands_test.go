package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/version"
)

func TestDispatch_Version(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := dispatch(context.Background(), []string{"version"}, envFunc(nil), &out, &errOut); code != 0 {
		t.Fatalf("dispatch(version) = %d, want 0 (stderr %q)", code, errOut.String())
	}
	for _, want := range []string{
		"version: " + version.Version + "\n",
		"commit: ",
		"date: ",
		"go: " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output = %q, want a line with %q", out.String(), want)
		}
	}
	if errOut.Len() != 0 {
		t.Errorf("version wrote to stderr: %q", errOut.String())
	}

	out.Reset()
	if code := dispatch(context.Background(), []string{"version", "extra"}, envFunc(nil), &out, &errOut); code != 2 || out.Len() != 0 {
		t.Errorf("dispatch(version extra) = %d, stdout %q; want 2 and nothing", code, out.String())
	}
}

// Without a subcommand, dispatch is run: the settings errors are the same.
func TestDispatch_NoSubcommandIsRun(t *testing.T) {
	var out, errOut bytes.Buffer
	code := dispatch(context.Background(), []string{"-markets", "forex"}, envFunc(nil), &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "-markets") || out.Len() != 0 {
		t.Errorf("dispatch(-markets forex) = %d, stdout %q, stderr %q; want 2 and a line naming -markets on stderr", code, out.String(), errOut.String())
	}
	errOut.Reset()
	if code := dispatch(context.Background(), []string{"-h"}, envFunc(nil), &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "sidecar healthcheck") {
		t.Errorf("dispatch(-h) = %d, %q; want 0 and usage naming the subcommands", code, errOut.String())
	}
}

func TestLocalBaseURL(t *testing.T) {
	tests := []struct {
		addr, want string
		wantErr    bool
	}{
		{"127.0.0.1:8080", "http://127.0.0.1:8080", false},
		{"0.0.0.0:8080", "http://127.0.0.1:8080", false},
		{"[::]:9000", "http://127.0.0.1:9000", false},
		{":8080", "http://127.0.0.1:8080", false},
		{"[::1]:8080", "http://[::1]:8080", false},
		{"localhost:8081", "http://localhost:8081", false},
		{"8080", "", true},
		{"127.0.0.1:", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, _, err := localBaseURL(tt.addr)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("localBaseURL(%q) = %q, %v; want %q, error %v", tt.addr, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// healthcheck runs the subcommand and returns its status and stderr.
func healthcheck(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := dispatch(context.Background(), append([]string{"healthcheck"}, args...), envFunc(env), &out, &errOut)
	if out.Len() != 0 {
		t.Errorf("healthcheck %v wrote to stdout: %q", args, out.String())
	}
	return code, errOut.String()
}

func TestHealthcheck(t *testing.T) {
	var (
		mu    sync.Mutex
		paths []string // what the server was asked, in order
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		switch r.URL.Path {
		case "/readyz", "/healthz":
			w.Write([]byte(`{"ready":true}`))
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("{\"ready\":false,\n \"markets\":[{\"market\":\"spot\",\"state\":\"unavailable\"}]}\n"))
		case "/empty":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/moved":
			http.Redirect(w, r, "/readyz", http.StatusFound)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dead := func() string { // a loopback port nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()

	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantLine []string // what the one line on stderr must say; nil: no output
		wantPath string   // what the server must have been asked last, if anything
	}{
		{"ready", nil, []string{"-url", srv.URL + "/readyz"}, 0, nil, "/readyz"},
		{"503 with the body's start", nil, []string{"-url", srv.URL + "/down"}, 1, []string{"503 Service Unavailable", `"market":"spot"`, "/down"}, "/down"},
		{"503 without a body", nil, []string{"-url", srv.URL + "/empty"}, 1, []string{"503 Service Unavailable"}, "/empty"},
		{"404", nil, []string{"-url", srv.URL + "/nowhere"}, 1, []string{"404"}, "/nowhere"},
		{"a redirect is not followed", nil, []string{"-url", srv.URL + "/moved"}, 1, []string{"302"}, "/moved"},
		{"unreachable", nil, []string{"-url", "http://" + dead + "/readyz"}, 1, []string{dead, "refused"}, ""},
		{"too slow", nil, []string{"-url", srv.URL + "/slow", "-timeout", "100ms"}, 1, []string{"no answer within 100ms"}, "/slow"},
		// The default URL comes from SYMCACHE_ADDR; a wildcard address is probed on 127.0.0.1.
		{"default from SYMCACHE_ADDR", map[string]string{"SYMCACHE_ADDR": "127.0.0.1:" + port}, nil, 0, nil, "/readyz"},
		{"0.0.0.0 probed on loopback", map[string]string{"SYMCACHE_ADDR": "0.0.0.0:" + port}, nil, 0, nil, "/readyz"},
		{"[::] probed on loopback", map[string]string{"SYMCACHE_ADDR": "[::]:" + port}, nil, 0, nil, "/readyz"},
		{"a path on SYMCACHE_ADDR", map[string]string{"SYMCACHE_ADDR": "0.0.0.0:" + port}, []string{"-url", "/healthz"}, 0, nil, "/healthz"},
		{"bad SYMCACHE_ADDR", map[string]string{"SYMCACHE_ADDR": "8080"}, nil, 1, []string{"SYMCACHE_ADDR"}, ""},
		{"bad SYMCACHE_ADDR, absolute -url", map[string]string{"SYMCACHE_ADDR": "8080"}, []string{"-url", srv.URL + "/readyz"}, 0, nil, "/readyz"},
		{"bad -url", nil, []string{"-url", "localhost:8080/readyz"}, 1, []string{"-url"}, ""},
		{"ftp -url", nil, []string{"-url", "ftp://127.0.0.1/readyz"}, 1, []string{"-url"}, ""},
		{"bad -timeout", nil, []string{"-timeout", "soon"}, 1, []string{"-timeout"}, ""},
		{"zero -timeout", nil, []string{"-timeout", "0s"}, 1, []string{"-timeout"}, ""},
		{"unknown flag", nil, []string{"-verbose"}, 1, []string{"-verbose"}, ""},
		{"stray argument", nil, []string{"now"}, 1, []string{`"now"`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			paths = nil
			mu.Unlock()
			code, out := healthcheck(t, tt.env, tt.args...)
			mu.Lock()
			asked := slices.Clone(paths)
			mu.Unlock()
			if code != tt.wantCode {
				t.Errorf("healthcheck %v with %v = %d, want %d (stderr %q)", tt.args, tt.env, code, tt.wantCode, out)
			}
			if tt.wantLine == nil && out != "" {
				t.Errorf("healthcheck %v wrote %q, want nothing", tt.args, out)
			}
			if tt.wantLine != nil {
				if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
					t.Errorf("healthcheck %v wrote %q, want exactly one line", tt.args, out)
				}
				for _, w := range tt.wantLine {
					if !strings.Contains(out, w) {
						t.Errorf("healthcheck %v wrote %q, want it to say %q", tt.args, out, w)
					}
				}
			}
			if tt.wantPath != "" && (len(asked) != 1 || asked[0] != tt.wantPath) {
				t.Errorf("server was asked %v, want one request for %s", asked, tt.wantPath)
			}
			if tt.wantPath == "" && len(asked) != 0 {
				t.Errorf("server was asked %v, want nothing", asked)
			}
		})
	}
}

func TestHealthcheck_Help(t *testing.T) {
	code, out := healthcheck(t, nil, "-h")
	if code != 0 {
		t.Errorf("healthcheck -h = %d, want 0", code)
	}
	for _, want := range []string{"-url", "-timeout", "http://127.0.0.1:8080/readyz", "2s"} {
		if !strings.Contains(out, want) {
			t.Errorf("healthcheck -h output lacks %q:\n%s", want, out)
		}
	}
	_, out = healthcheck(t, map[string]string{"SYMCACHE_ADDR": "0.0.0.0:9999"}, "-h")
	if !strings.Contains(out, "http://127.0.0.1:9999/readyz") {
		t.Errorf("healthcheck -h with SYMCACHE_ADDR=0.0.0.0:9999 does not show the derived default URL:\n%s", out)
	}
}

// The healthcheck against the real sidecar: ready once the markets are
// loaded; not ready, with the market named, when Binance cannot be reached.
func TestHealthcheck_Sidecar(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	s := startSidecar(t, map[string]string{"BINANCE_SPOT_URL": upstream.URL, "SYMCACHE_MARKETS": "spot", "REDIS_URL": ""})
	env := map[string]string{"SYMCACHE_ADDR": s.addr}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out := healthcheck(t, env)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthcheck against the sidecar = %d (%q) after 10s, want 0", code, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, out := healthcheck(t, env, "-url", "/healthz"); code != 0 {
		t.Errorf("healthcheck -url /healthz = %d (%q), want 0", code, out)
	}

	deadBinance := "http://" + testutil.FreeAddr(t)
	down := startSidecar(t, map[string]string{"BINANCE_SPOT_URL": deadBinance, "SYMCACHE_MARKETS": "spot", "REDIS_URL": ""})
	code, out := healthcheck(t, map[string]string{"SYMCACHE_ADDR": down.addr})
	if code != 1 || !strings.Contains(out, "503") || !strings.Contains(out, "spot") {
		t.Errorf("healthcheck against a sidecar without Binance = %d, %q; want 1 and a line with 503 naming spot", code, out)
	}
	if code, out := healthcheck(t, map[string]string{"SYMCACHE_ADDR": down.addr}, "-url", "/healthz"); code != 0 {
		t.Errorf("healthcheck -url /healthz against a live but unready sidecar = %d (%q), want 0", code, out)
	}
}

// The version stamped at link time, as the Dockerfile does it, and the
// fallbacks when the Docker ARGs are left empty.
func TestVersion_Stamped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const pkg = "github.com/symcache/symcache/version"
	for _, tt := range []struct {
		name, ver, commit, date string
		want                    []string
	}{
		{"stamped", "1.2.3-test", "0123456789abcdef", "2026-11-26T11:00:00Z",
			[]string{"version: 1.2.3-test\n", "commit: 0123456789abcdef\n", "date: 2026-11-26T11:00:00Z\n"}},
		{"empty ARGs", "", "", "", []string{"version: dev\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "sidecar")
			ldflags := "-s -w -X " + pkg + ".Version=" + tt.ver + " -X " + pkg + ".Commit=" + tt.commit + " -X " + pkg + ".Date=" + tt.date
			// As the Dockerfile builds it (which also leaves its compiled
			// packages in the build cache for make check-dockerfile).
			build := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, ".")
			build.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			out, err := exec.Command(bin, "version").Output()
			if err != nil {
				t.Fatalf("%s version: %v", bin, err)
			}
			for _, w := range append(tt.want, "go: "+runtime.Version()) {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s version = %q, want %q in it", bin, out, w)
				}
			}
		})
	}
}
