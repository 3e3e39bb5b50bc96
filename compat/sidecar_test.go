package compat_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
)

// sidecarBin is the sidecar that TestMain builds from ../cmd/sidecar.
var sidecarBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds the sidecar with the main module's own go.mod (not this
// module's, whose requirements could raise a dependency's version), runs
// the tests and removes the binary.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "symcache-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	sidecarBin = filepath.Join(dir, "sidecar")
	build := exec.Command("go", "build", "-o", sidecarBin, "./cmd/sidecar")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "compat: go build ./cmd/sidecar: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// fake is a fake Binance: one fetchtest.Handler, serving the recorded
// exchangeInfo answers, behind three loopback servers that stand for
// api.binance.com, fapi.binance.com and dapi.binance.com. The sidecar's
// rate-limit guard blocks hosts, so each market has a host of its own, as
// on Binance. Any of the three answers every path.
type fake struct {
	*fetchtest.Handler
	spot, usdm, coinm *httptest.Server
}

func newFake(t *testing.T) *fake {
	t.Helper()
	h, err := fetchtest.LoadDir(fixtures.Path(t, "binance"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{Handler: h}
	for _, s := range []**httptest.Server{&f.spot, &f.usdm, &f.coinm} {
		*s = httptest.NewServer(h)
		t.Cleanup((*s).Close)
	}
	return f
}

// since returns the requests received after the first n for srv's host.
func (f *fake) since(n int, srv *httptest.Server) []fetchtest.Request {
	host := strings.TrimPrefix(srv.URL, "http://")
	var out []fetchtest.Request
	for _, r := range f.Received()[n:] {
		if r.Host == host {
			out = append(out, r)
		}
	}
	return out
}

// sidecar is a running cmd/sidecar process.
type sidecar struct {
	URL   string // http://127.0.0.1:port
	token string // the admin token
	log   *testutil.LogBuffer
}

// startSidecar runs the sidecar in front of f, serving spot, usdm and coinm
// without Redis, with an admin token from a file, and waits until waitPath
// (/readyz: every market loaded; /healthz: the process listens) answers 200.
// The refresh interval and TTL are long, so that no background fetch happens
// during a test: every request the fake receives comes from a test. env
// adds variables ("REDIS_URL=redis://…"). The process is killed at the end
// of the test.
func startSidecar(t *testing.T, f *fake, waitPath string, env ...string) *sidecar {
	t.Helper()
	token := rand.Text()
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 3 { // a free port may be taken before the sidecar listens
		addr := testutil.FreeAddr(t)
		s := &sidecar{URL: "http://" + addr, token: token, log: &testutil.LogBuffer{}}
		cmd := exec.Command(sidecarBin)
		cmd.Env = []string{
			"SYMCACHE_ADDR=" + addr,
			"SYMCACHE_MARKETS=spot,usdm,coinm",
			"BINANCE_SPOT_URL=" + f.spot.URL,
			"BINANCE_USDM_URL=" + f.usdm.URL,
			"BINANCE_COINM_URL=" + f.coinm.URL,
			"SYMCACHE_TTL=2h",
			"SYMCACHE_REFRESH_INTERVAL=1h",
			"SYMCACHE_ADMIN_TOKEN_FILE=" + tokenFile,
		}
		cmd.Env = append(cmd.Env, env...)
		cmd.Stdout, cmd.Stderr = s.log, s.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start the sidecar: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("sidecar log:\n%s", s.log)
			}
		})
		if err = s.wait(waitPath, exited); err == nil {
			return s
		}
		if !strings.Contains(s.log.String(), "address already in use") {
			break
		}
	}
	t.Fatal(err)
	return nil
}

// wait polls path until it answers 200, the process exits, or 15 s pass.
func (s *sidecar) wait(path string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.URL + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("the sidecar exited before GET %s answered 200:\n%s", path, s.log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s did not answer 200 within 15s (last: %v)", path, err)
		}
	}
}

// admin sends an admin request, such as POST /admin/refresh/spot, and
// returns the answer with its body read.
func (s *sidecar) admin(t *testing.T, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// exchange is one request a client sent and the answer it got, as seen
// between the client and the network.
type exchange struct {
	Method, Path, RawQuery, Body string
	APIKey                       string // X-MBX-APIKEY
	Status                       int
	RetryAfter, XCache           string
}

// recorder is an http.RoundTripper for a client under test: it sends each
// request over a transport of its own and records the request and the
// status and headers of the answer.
type recorder struct {
	tr *http.Transport
	mu sync.Mutex
	ex []exchange
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{tr: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(r.tr.CloseIdleConnections)
	return r
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	e := exchange{Method: req.Method, Path: req.URL.Path, RawQuery: req.URL.RawQuery, APIKey: req.Header.Get("X-MBX-APIKEY")}
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		e.Body = string(b)
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := r.tr.RoundTrip(req)
	if err == nil {
		e.Status, e.RetryAfter, e.XCache = resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("X-Cache")
	}
	r.mu.Lock()
	r.ex = append(r.ex, e)
	r.mu.Unlock()
	return resp, err
}

// last returns the last exchange recorded.
func (r *recorder) last(t *testing.T) exchange {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ex) == 0 {
		t.Fatal("the client sent no request")
	}
	return r.ex[len(r.ex)-1]
}

// client returns an *http.Client for a client library: no timeout of its
// own (each call has a ctx), requests recorded by r.
func (r *recorder) client() *http.Client { return &http.Client{Transport: r} }

// randomKey returns a random API key or secret (52 base32 characters).
func randomKey() string { return rand.Text() + rand.Text() }

// unsigned cuts the signature parameter off a signed query: Binance's
// clients put it last.
func unsigned(rawQuery string) string {
	if i := strings.LastIndex(rawQuery, "signature="); i >= 0 {
		return strings.TrimSuffix(rawQuery[:i], "&")
	}
	return rawQuery
}

// readTestdata returns compat/testdata/<name>.
func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ctx returns a context that ends with the test, or after 60 s (a busy
// machine slows Node's start a lot).
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// waitMinuteRoom waits, if need, for the next UTC minute, so that at least
// room is left of the minute: the sidecar passes on Binance's
// X-MBX-USED-WEIGHT-1M only within the minute it was reported in.
func waitMinuteRoom(t *testing.T, room time.Duration) {
	t.Helper()
	now := time.Now()
	if next := now.Truncate(time.Minute).Add(time.Minute); next.Sub(now) < room {
		t.Logf("waiting %v for the next minute", next.Sub(now).Round(time.Millisecond))
		time.Sleep(next.Sub(now) + 50*time.Millisecond)
	}
}

// eventually calls f every 50 ms until it returns nil or d has passed, and
// returns its last error.
func eventually(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
