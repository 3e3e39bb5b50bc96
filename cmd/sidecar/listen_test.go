package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/testutil"
)

// unixClient is an HTTP client whose every request goes to the socket.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}, Timeout: 10 * time.Second}
}

// runOnSocket runs the sidecar (demo mode: no upstream needed) on the
// socket path with env, and waits until it answers there. stop cancels
// the run and returns its exit status.
func runOnSocket(t *testing.T, path string, env map[string]string) (c *http.Client, out *testutil.LogBuffer, stop func() int) {
	t.Helper()
	env["SYMCACHE_ADDR"] = "unix:" + path
	env["SYMCACHE_DEMO"] = "1"
	ctx, cancel := context.WithCancel(context.Background())
	out = new(testutil.LogBuffer)
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, envFunc(env), out) }()
	c = unixClient(path)
	stop = func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(20 * time.Second):
			t.Fatal("the sidecar did not stop within 20s")
		}
		return -1
	}
	t.Cleanup(func() { cancel() })
	testutil.WaitFor(t, 10*time.Second, "the sidecar ready on its socket", func() bool {
		select {
		case code := <-done:
			t.Fatalf("the sidecar exited with %d:\n%s", code, out.String())
		default:
		}
		resp, err := c.Get("http://sidecar/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c, out, stop
}

func TestRun_UnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "symcache.sock")
	c, _, stop := runOnSocket(t, path, map[string]string{"SYMCACHE_SOCKET_MODE": "0620"})

	resp, err := c.Get("http://sidecar/api/v3/exchangeInfo")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, _ := os.ReadFile("../../testdata/binance/spot_exchangeinfo.json")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Errorf("GET /api/v3/exchangeInfo over the socket = %d, %d bytes; want 200 and the recording", resp.StatusCode, len(body))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o620 {
		t.Errorf("the socket file: %v, %v; want a socket of mode 0620", fi.Mode(), err)
	}
	if code := stop(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("the socket file after the stop: %v; want it removed", err)
	}
}

// A socket file left by a process that died is replaced; one another
// process listens on, or a file that is no socket, is left alone.
func TestRun_UnixSocket_leftovers(t *testing.T) {
	dir := t.TempDir()

	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the file stays, nothing answers: what a killed sidecar leaves
	_, _, stop := runOnSocket(t, stale, map[string]string{})
	if code := stop(); code != 0 {
		t.Errorf("over a stale socket: exit status %d, want 0", code)
	}

	busy := filepath.Join(dir, "busy.sock")
	live, err := net.Listen("unix", busy)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{busy: "another process listens on it", file: "exists and is not a socket"} {
		// A fetch the warm-up started may still log after run returns:
		// a buffer safe for concurrent use.
		var out testutil.LogBuffer
		code := run(context.Background(), nil, envFunc(map[string]string{"SYMCACHE_ADDR": "unix:" + path, "SYMCACHE_DEMO": "1"}), &out)
		if code != 1 || !strings.Contains(out.String(), want) {
			t.Errorf("run on %s = %d, %q; want 1 and %q", filepath.Base(path), code, out.String(), want)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the file that is no socket was touched: %q, %v", b, err)
	}
	if c, err := net.Dial("unix", busy); err != nil {
		t.Errorf("the other process's socket is gone: %v", err)
	} else {
		c.Close()
	}
}

func TestParseConfig_UnixSocket(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		env  map[string]string
		want string // the setting named; "" for a valid one
	}{
		{map[string]string{"SYMCACHE_ADDR": "unix:" + dir + "/s.sock"}, ""},
		{map[string]string{"SYMCACHE_ADDR": "unix:" + dir + "/s.sock", "SYMCACHE_SOCKET_MODE": "600"}, ""},
		{map[string]string{"SYMCACHE_ADDR": "unix:"}, "SYMCACHE_ADDR"},
		{map[string]string{"SYMCACHE_ADDR": "unix:" + dir + "/no/such/folder/s.sock"}, "SYMCACHE_ADDR"},
		{map[string]string{"SYMCACHE_ADDR": "unix:/" + strings.Repeat("x", 120)}, "SYMCACHE_ADDR"},
		{map[string]string{"SYMCACHE_ADDR": "localhost"}, "SYMCACHE_ADDR"},
		{map[string]string{"SYMCACHE_ADDR": "unix:" + dir + "/s.sock", "SYMCACHE_SOCKET_MODE": "0400"}, "SYMCACHE_SOCKET_MODE"},
		{map[string]string{"SYMCACHE_ADDR": "unix:" + dir + "/s.sock", "SYMCACHE_SOCKET_MODE": "rw"}, "SYMCACHE_SOCKET_MODE"},
		{map[string]string{"SYMCACHE_ADDR": "unix:" + dir + "/s.sock", "SYMCACHE_SOCKET_MODE": "01777"}, "SYMCACHE_SOCKET_MODE"},
	} {
		_, err := parseConfig(nil, envFunc(tt.env), io.Discard)
		var se *settingError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("parseConfig(%v) = %v, want nil", tt.env, err)
		case tt.want != "" && (!errors.As(err, &se) || se.name != tt.want):
			t.Errorf("parseConfig(%v) = %v, want a bad %s", tt.env, err, tt.want)
		}
	}
}

// The healthcheck subcommand finds a sidecar on its socket.
func TestHealthcheck_UnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	_, _, stop := runOnSocket(t, path, map[string]string{})
	defer stop()
	var errOut bytes.Buffer
	env := envFunc(map[string]string{"SYMCACHE_ADDR": "unix:" + path})
	if code := runHealthcheck(context.Background(), nil, env, &errOut); code != 0 {
		t.Errorf("healthcheck on the socket = %d, %s; want 0", code, errOut.String())
	}
	if code := runHealthcheck(context.Background(), []string{"-url", "/nowhere"}, env, &errOut); code != 1 || !strings.Contains(errOut.String(), "404") {
		t.Errorf("healthcheck of /nowhere on the socket = %d, %s; want 1 and the 404", code, errOut.String())
	}
}

// SYMCACHE_PPROF_ADDR serves Go's profiles on a loopback listener of
// their own; the sidecar's own address does not.
func TestRun_Pprof(t *testing.T) {
	pp := testutil.FreeAddr(t)
	s := startSidecar(t, map[string]string{"SYMCACHE_DEMO": "1", "SYMCACHE_PPROF_ADDR": pp})
	var resp *http.Response
	testutil.WaitFor(t, 10*time.Second, "the profiles served", func() bool {
		r, err := http.Get("http://" + pp + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			return false
		}
		resp = r
		return true
	})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("GET /debug/pprof/goroutine = %d, %.100s", resp.StatusCode, body)
	}
	if r, _ := s.get(t, "/debug/pprof/"); r.StatusCode != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ on the sidecar's address = %d, want 404", r.StatusCode)
	}
}

// SYMCACHE_METRICS_ADDR serves /metrics and the probes, and nothing else,
// beside a sidecar on a Unix socket.
func TestRun_MetricsAddr(t *testing.T) {
	ops := testutil.FreeAddr(t)
	path := filepath.Join(t.TempDir(), "s.sock")
	_, _, stop := runOnSocket(t, path, map[string]string{"SYMCACHE_METRICS_ADDR": ops})
	defer stop()
	get := func(p string) (int, string) {
		resp, err := http.Get("http://" + ops + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "symcache_snapshot_age_seconds") {
		t.Errorf("GET /metrics on the metrics address = %d, %.100s", code, body)
	}
	for _, p := range []string{"/readyz", "/healthz"} {
		if code, _ := get(p); code != http.StatusOK {
			t.Errorf("GET %s on the metrics address = %d, want 200", p, code)
		}
	}
	for _, p := range []string{"/api/v3/exchangeInfo", "/admin/status", "/", "/v1/changes/spot"} {
		if code, body := get(p); code != http.StatusNotFound || !strings.Contains(body, "/metrics, /healthz and /readyz only") {
			t.Errorf("GET %s on the metrics address = %d %s, want 404", p, code, body)
		}
	}
}
