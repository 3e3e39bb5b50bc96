//go:build linux

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2"
	"github.com/symcache/symcache/l2/l2test"
)

// The memory target under attack (issue "Hostile and absurd inputs"): with
// the container settings of deploy/kubernetes/deployment.yaml (GOMEMLIMIT
// and the other literal env values of the symcache container), no upstream
// answer, Redis value or disk file below takes the sidecar's peak RSS
// (VmHWM) over the manifest's memory limit, and the sidecar keeps serving
// the last good snapshot where there is one, then exits 0 on SIGTERM.
//
// Each input runs against the real binary, built without -race (the RSS of
// a race build means nothing), with its own redis-server (the shipped pod
// always has REDIS_URL), its own state dir (the manifest sets one) and a
// fake Binance on 127.0.0.1 that sends valid answers chunked, as Go's
// transport sees Binance's gzip answers: of unknown length. The test's
// timing differs from the manifest in one setting,
// SYMCACHE_REFRESH_INTERVAL=1s, so that hostile answers are fetched within
// seconds rather than minutes; and, for the slow clients only,
// SYMCACHE_MIN_CLIENT_RATE (see slowClientRate).

const (
	// memLanes is how many sidecars run at once: the test is meant for two
	// cores. Each process's RSS is its own; running two at a time only
	// halves the test's time.
	memLanes = 2
	// memDrive is how long clients hammer the sidecar at least, once the
	// hostile input is in place.
	memDrive = 3 * time.Second
	// memClients is how many clients hammer it at once.
	memClients = 8
	// slowClients is the number of connections that read 1 byte a second;
	// they connect over slowRamp, so that while the upstream answer changes
	// every second they hold as many different snapshots as a write
	// deadline lets them.
	slowClients = 200
	slowRamp    = 10 * time.Second
	// slowClientRate is SYMCACHE_MIN_CLIENT_RATE for the slow clients: 4 MiB/s,
	// so that a 3.7 MB answer's write deadline is 10 s + 0.9 s rather than
	// the 10 s + 57 s of the default 64 KiB/s, and the test stays short.
	slowClientRate = 4 << 20
)

func TestMemory_HostileInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sidecar and runs it against each hostile input for a few seconds")
	}
	began := time.Now()
	root := moduleRoot(t)
	shipped, limit := shippedSettings(t, filepath.Join(root, "deploy", "kubernetes", "deployment.yaml"))
	bin := buildSidecar(t, root)

	spot := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	good := accept{bodies: [][32]byte{sha256.Sum256(spot)}}
	var (
		growOnce, manyOnce sync.Once
		grown, many        []byte
	)
	grownBody := func(t *testing.T) []byte { // fixtures.Grow: the recorded symbols repeated, 58 MiB
		growOnce.Do(func() { grown = fixtures.Grow(t, spot, 58<<20) })
		if grown == nil {
			t.Fatal("fixtures.Grow failed in another subtest")
		}
		return grown
	}
	manyBody := func() []byte { // 800,000 small symbols, 58 MiB
		manyOnce.Do(func() { many = manySymbols(800_000) })
		return many
	}

	// The longest first: two lanes, and the slow clients take 25 s.
	cases := []struct {
		name string
		// finding: VmHWM over the limit is reported, not failed: a known
		// gap, left for later with its numbers.
		finding bool
		wantLog string // a line the sidecar must have logged about the input
		run     func(t *testing.T, w *memWorld) int
	}{
		{
			name: "200 slow clients, upstream answer changing every second", wantLog: "client too slow: answer cut off",
			run: func(t *testing.T, w *memWorld) int {
				w.env["SYMCACHE_MIN_CLIENT_RATE"] = strconv.Itoa(slowClientRate)
				return w.slowClients(t, spot)
			},
		},
		{
			name: "upstream: 800,000 symbols (58 MiB), after a good answer", wantLog: "body larger than the limit",
			run: func(t *testing.T, w *memWorld) int {
				return w.afterGood(t, good, upAnswer{name: "800,000 symbols", body: manyBody()})
			},
		},
		{
			name: "upstream: 58 MiB grown (fixtures.Grow), after a good answer", wantLog: "body larger than the limit",
			run: func(t *testing.T, w *memWorld) int {
				return w.afterGood(t, good, upAnswer{name: "grown 58 MiB", body: grownBody(t)})
			},
		},
		// Within fetch's 32 MiB limit: invalid (more than
		// exchangeinfo.MaxSymbols), held back by the answer guard (more than
		// 4 times last good, or a symbol over 64 KiB), or, as a first answer,
		// accepted by design.
		{
			name: "upstream: 400,000 symbols (29 MiB), after a good answer", wantLog: "more than 50000 symbols",
			run: func(t *testing.T, w *memWorld) int {
				return w.afterGood(t, good, upAnswer{name: "400,000 symbols", body: manySymbols(400_000)})
			},
		},
		{
			name: "upstream: 30 MiB grown (fixtures.Grow), after a good answer", wantLog: "held back an upstream answer far larger",
			run: func(t *testing.T, w *memWorld) int {
				return w.afterGood(t, good, upAnswer{name: "grown 30 MiB", body: fixtures.Grow(t, spot, 30<<20)})
			},
		},
		{
			name: "upstream: 30 MiB grown (fixtures.Grow), first answer",
			run: func(t *testing.T, w *memWorld) int {
				return w.firstAnswer(t, upAnswer{name: "grown 30 MiB", body: fixtures.Grow(t, spot, 30<<20)})
			},
		},
		{
			name: "upstream: one symbol with a 25 MB field, after a good answer", wantLog: "held back an upstream answer far larger",
			run: func(t *testing.T, w *memWorld) int {
				return w.afterGood(t, good, upAnswer{name: "25 MB field", body: junkSymbol(t, spot, 25<<20)})
			},
		},
		{
			name: "upstream: one symbol with a 50 MB field, after a good answer", wantLog: "body larger than the limit",
			run: func(t *testing.T, w *memWorld) int {
				return w.afterGood(t, good, upAnswer{name: "50 MB field", body: junkSymbol(t, spot, 50<<20)})
			},
		},
		{
			name: "upstream: 100 MB chunked, after a good answer", wantLog: "body larger than the limit",
			run: func(t *testing.T, w *memWorld) int {
				return w.afterGood(t, good, upAnswer{name: "chunked 100 MB", serve: endless(100 << 20)})
			},
		},
		{
			name: "upstream: Content-Length 10 GB, after a good answer", wantLog: "is larger than the limit",
			run: func(t *testing.T, w *memWorld) int {
				return w.afterGood(t, good, upAnswer{name: "Content-Length 10 GB", serve: lying(10 << 30)})
			},
		},
		{
			name: "redis: 1 MB gzip bomb (1 GiB) in current and last_good", wantLog: "l2 value too large, treating as a miss",
			run: func(t *testing.T, w *memWorld) int {
				bomb := gzipBomb(t, 1<<30)
				w.setRedis(t, l2.CurrentKey("spot"), bomb)
				w.setRedis(t, l2.LastGoodKey("spot"), bomb)
				return w.coldThenHealthy(t, good)
			},
		},
		{
			name: "redis: 100 MB plain value in current", wantLog: "l2 value too large, treating as a miss",
			run: func(t *testing.T, w *memWorld) int {
				w.setRedis(t, l2.CurrentKey("spot"), bytes.Repeat([]byte("x"), 100<<20))
				return w.coldThenHealthy(t, good)
			},
		},
		{
			name: "disk: spot.json a symlink to /dev/zero", wantLog: "ignoring the disk copy",
			run: func(t *testing.T, w *memWorld) int {
				if err := os.Symlink("/dev/zero", filepath.Join(w.stateDir, "spot.json")); err != nil {
					t.Fatal(err)
				}
				return w.coldThenHealthy(t, good)
			},
		},
		{
			name: "disk: spot.json 200 MB of zeros", wantLog: "ignoring the disk copy",
			run: func(t *testing.T, w *memWorld) int {
				f, err := os.Create(filepath.Join(w.stateDir, "spot.json"))
				if err == nil {
					err = f.Truncate(200 << 20) // zeros, without writing them
					f.Close()
				}
				if err != nil {
					t.Fatal(err)
				}
				return w.coldThenHealthy(t, good)
			},
		},
	}

	rows := make([]memRow, len(cases)) // each subtest writes its own
	t.Cleanup(func() {                 // after the parallel subtests
		var b strings.Builder
		fmt.Fprintf(&b, "memory under hostile inputs: limit %.0f MiB, GOMEMLIMIT %s (deploy/kubernetes/deployment.yaml); %v in all\n", mib(limit), shipped["GOMEMLIMIT"], time.Since(began).Round(time.Second))
		fmt.Fprintf(&b, "%-62s %10s %10s %9s %8s %8s %6s  %s\n", "input", "VmHWM MiB", "VmRSS MiB", "limit MiB", "hostile", "answers", "took", "verdict")
		for i, r := range rows {
			if r.verdict == "" {
				continue // not run (-run), or stopped before measuring
			}
			fmt.Fprintf(&b, "%-62s %10.1f %10.1f %9.0f %8d %8d %5.0fs  %s\n", cases[i].name, mib(r.hwm), mib(r.rss), mib(limit), r.hostile, r.answers, r.took.Seconds(), r.verdict)
		}
		t.Log("\n" + b.String())
	})
	lanes := make(chan struct{}, memLanes)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lanes <- struct{}{}
			defer func() { <-lanes }()
			start := time.Now()
			w := newMemWorld(t, bin, shipped)
			answers := tc.run(t, w)
			hwm, rss := w.proc.memory(t)
			w.proc.stop(t)
			row := memRow{hwm: hwm, rss: rss, hostile: w.binance.hostileServed(), answers: answers, took: time.Since(start)}
			switch {
			case hwm <= limit:
				row.verdict = "ok"
			case tc.finding:
				row.verdict = "FINDING (reported, not failed)"
				t.Logf("FINDING: VmHWM %.1f MiB, over the manifest's limit of %.0f MiB (VmRSS %.1f MiB at the end)", mib(hwm), mib(limit), mib(rss))
			default:
				row.verdict = "OVER THE LIMIT"
				t.Errorf("VmHWM = %.1f MiB, want at most the manifest's limit of %.0f MiB (VmRSS %.1f MiB at the end)", mib(hwm), mib(limit), mib(rss))
			}
			if tc.wantLog != "" && !strings.Contains(w.proc.logs.String(), tc.wantLog) {
				t.Errorf("the sidecar's log lacks %q:\n%s", tc.wantLog, w.proc.tail())
			}
			rows[i] = row
		})
	}
}

// memRow is one line of the table the test logs.
type memRow struct {
	hwm, rss int64 // bytes
	hostile  int   // answers the fake Binance sent from set: the hostile ones (503s for the Redis and disk inputs)
	answers  int   // answers the clients checked
	took     time.Duration
	verdict  string
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// moduleRoot is the folder of the module's go.mod (go env GOMOD).
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q, %v; want the module's go.mod", gomod, err)
	}
	return filepath.Dir(gomod)
}

// buildSidecar builds ./cmd/sidecar without -race, as the image does, and
// checks that the binary is not a race build.
func buildSidecar(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sidecar")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sidecar")
	build.Dir = root
	build.Env = append(os.Environ(), "GOFLAGS=", "CGO_ENABLED=0") // as the Dockerfile; no -race from GOFLAGS
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	if bytes.Contains(out, []byte("-race=true")) {
		t.Fatalf("the sidecar binary is a race build:\n%s", out)
	}
	return bin
}

// shippedSettings reads the symcache container of the manifest: its env
// entries with a literal value (not valueFrom) and its memory limit in
// bytes. It is a reader of this one manifest's layout, not of YAML: block
// lists and maps, two spaces an indent, "- name:" followed by "value:".
func shippedSettings(t *testing.T, path string) (env map[string]string, limit int64) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type line struct {
		indent int
		text   string // without the indent and a trailing comment
	}
	var lines []line
	for _, l := range strings.Split(string(raw), "\n") {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		text := strings.TrimSpace(l)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		lines = append(lines, line{len(l) - len(strings.TrimLeft(l, " ")), text})
	}
	// The container: from "- name: symcache" to the next line indented as
	// little as its dash.
	start := -1
	for i, l := range lines {
		if l.text == "- name: symcache" {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("%s: no container named symcache", path)
	}
	end := start + 1
	for end < len(lines) && lines[end].indent > lines[start].indent {
		end++
	}
	container := lines[start+1 : end]
	env = map[string]string{}
	for i := 0; i+1 < len(container); i++ {
		name, isEnv := strings.CutPrefix(container[i].text, "- name: ")
		value, literal := strings.CutPrefix(container[i+1].text, "value: ")
		if !isEnv || !literal || container[i+1].indent != container[i].indent+2 {
			continue
		}
		if v, err := strconv.Unquote(value); err == nil {
			value = v
		}
		env[name] = value
	}
	for i, l := range container {
		if l.text != "limits:" {
			continue
		}
		for _, m := range container[i+1:] {
			if m.indent <= l.indent {
				break
			}
			if v, ok := strings.CutPrefix(m.text, "memory: "); ok {
				if limit, err = parseQuantity(strings.Trim(v, `"`)); err != nil {
					t.Fatalf("%s: symcache's memory limit: %v", path, err)
				}
			}
		}
	}
	if limit == 0 || env["GOMEMLIMIT"] == "" {
		t.Fatalf("%s: symcache's container has memory limit %d and GOMEMLIMIT %q; want both", path, limit, env["GOMEMLIMIT"])
	}
	return env, limit
}

// parseQuantity parses a Kubernetes memory quantity such as 128Mi or 1G.
func parseQuantity(s string) (int64, error) {
	m := regexp.MustCompile(`^([0-9]+)(Ki|Mi|Gi|k|M|G)?$`).FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a quantity this test reads (such as 128Mi)", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, err
	}
	unit := map[string]int64{"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1e3, "M": 1e6, "G": 1e9}[m[2]]
	return n * unit, nil
}

// memWorld is one hostile input's world: the manifest's settings, a fake
// Binance, a redis-server, a state dir, and the sidecar once started.
type memWorld struct {
	bin      string
	env      map[string]string // the sidecar's environment, and nothing else
	binance  *fakeBinance
	rdb      *redis.Client
	stateDir string
	proc     *memProc
}

func newMemWorld(t *testing.T, bin string, shipped map[string]string) *memWorld {
	t.Helper()
	w := &memWorld{bin: bin, env: map[string]string{}, binance: newFakeBinance(t), stateDir: t.TempDir()}
	srv := l2test.Start(t)
	w.rdb = srv.Client(t)
	for k, v := range shipped {
		w.env[k] = v
	}
	w.env["SYMCACHE_ADDR"] = testutil.FreeAddr(t)
	w.env["SYMCACHE_STATE_DIR"] = w.stateDir
	w.env["REDIS_URL"] = srv.URL()
	for _, k := range []string{"BINANCE_SPOT_URL", "BINANCE_USDM_URL", "BINANCE_COINM_URL"} {
		w.env[k] = w.binance.URL
	}
	w.env["SYMCACHE_REFRESH_INTERVAL"] = "1s"
	return w
}

// setRedis stores v under the sidecar's key for key (the default prefix).
func (w *memWorld) setRedis(t *testing.T, key string, v []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.rdb.Set(ctx, "symcache:"+key, v, 0).Err(); err != nil {
		t.Fatalf("redis SET %s (%d bytes): %v", key, len(v), err)
	}
}

// start runs the sidecar with w.env and waits until it answers /healthz.
func (w *memWorld) start(t *testing.T) *memProc {
	t.Helper()
	cmd := exec.Command(w.bin)
	for k, v := range w.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &memProc{cmd: cmd, addr: w.env["SYMCACHE_ADDR"], logs: new(testutil.LogBuffer), exited: make(chan error, 1), inflated: map[[32]byte]inflated{}}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if !p.stopped {
			cmd.Process.Kill()
			<-p.exited
		}
	})
	w.proc = p
	if !p.waitStatus(t, "/healthz", http.StatusOK, 10*time.Second) {
		t.Fatalf("sidecar not serving /healthz after 10s:\n%s", p.tail())
	}
	return p
}

// afterGood serves a good answer, then hostile in its place, while clients
// check that the good one is still served: for memDrive at least, and until
// Binance has sent hostile twice (the backoff after the first failure is 1
// to 2 s), 20 s at most. It returns the answers checked.
func (w *memWorld) afterGood(t *testing.T, good accept, hostile upAnswer) int {
	t.Helper()
	p := w.start(t)
	if !p.waitStatus(t, "/readyz", http.StatusOK, 20*time.Second) {
		t.Fatalf("sidecar not ready after 20s:\n%s", p.tail())
	}
	w.binance.set(exchangeinfo.Spot.Path(), hostile)
	n := 0
	for began := time.Now(); time.Since(began) < memDrive || w.binance.hostileServed() < 2 && time.Since(began) < 20*time.Second; {
		n += p.hammer(t, time.Second, good)
	}
	if w.binance.hostileServed() < 2 {
		t.Errorf("Binance sent the hostile answer %q %d times in 20s, want 2", hostile.name, w.binance.hostileServed())
	}
	return n
}

// firstAnswer starts the sidecar with hostile as Binance's only spot answer.
func (w *memWorld) firstAnswer(t *testing.T, hostile upAnswer) int {
	t.Helper()
	w.binance.set(exchangeinfo.Spot.Path(), hostile)
	p := w.start(t)
	if !p.waitStatus(t, "/readyz", http.StatusOK, 30*time.Second) {
		t.Fatalf("sidecar not ready after 30s:\n%s", p.tail())
	}
	// Accepted: it is what the sidecar serves.
	return p.hammer(t, memDrive, accept{bodies: [][32]byte{sha256.Sum256(hostile.body)}})
}

// coldThenHealthy starts the sidecar with Binance answering 503, so that
// Redis and the disk copy are all it could serve from; once both markets'
// first fetch has failed, clients hammer it for a second; then Binance is
// healthy again, and the good answer must be served.
func (w *memWorld) coldThenHealthy(t *testing.T, good accept) int {
	t.Helper()
	down := upAnswer{name: "503", serve: unavailable}
	w.binance.set(exchangeinfo.Spot.Path(), down)
	w.binance.set(exchangeinfo.USDM.Path(), down)
	p := w.start(t)
	for deadline := time.Now().Add(10 * time.Second); w.binance.hostileServed() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar asked Binance %d times in 10s, want once per market:\n%s", w.binance.hostileServed(), p.tail())
		}
	}
	cold := good
	cold.empty = true
	n := p.hammer(t, time.Second, cold)
	w.binance.healthy()
	if !p.waitStatus(t, "/readyz", http.StatusOK, 20*time.Second) {
		t.Fatalf("sidecar not ready 20s after Binance came back:\n%s", p.tail())
	}
	return n + p.hammer(t, time.Second, good)
}

// slowClients opens slowClients connections, over slowRamp, that each ask for
// the plain spot answer and read it 1 byte a second, while Binance's answer
// changes every second (each refresh a new snapshot) and fast clients
// hammer. Their write deadline must cut every one of them.
func (w *memWorld) slowClients(t *testing.T, spot []byte) int {
	t.Helper()
	w.binance.set(exchangeinfo.Spot.Path(), upAnswer{name: "serverTime bumped", serve: bumping(t, spot)})
	p := w.start(t)
	if !p.waitStatus(t, "/readyz", http.StatusOK, 20*time.Second) {
		t.Fatalf("sidecar not ready after 20s:\n%s", p.tail())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var answers atomic.Int64
	fast := make(chan struct{})
	go func() {
		defer close(fast)
		for ctx.Err() == nil {
			answers.Add(int64(p.hammer(t, time.Second, accept{bodyLen: len(spot)})))
		}
	}()

	var wg sync.WaitGroup
	var headers atomic.Int32
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		// A small receive buffer, so that the kernel cannot take the answer
		// for the client: the server's write really waits for it.
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	ramp := time.Now()
	for i := range slowClients {
		wg.Go(func() {
			time.Sleep(time.Until(ramp.Add(time.Duration(i) * slowRamp / slowClients)))
			conn, err := dialer.DialContext(ctx, "tcp", p.addr)
			if err != nil {
				t.Errorf("slow client %d: %v", i, err)
				return
			}
			defer conn.Close()
			context.AfterFunc(ctx, func() { conn.Close() })
			if _, err := io.WriteString(conn, "GET /api/v3/exchangeInfo HTTP/1.1\r\nHost: symcache\r\n\r\n"); err != nil {
				t.Errorf("slow client %d: send the request: %v", i, err)
				return
			}
			head := make([]byte, len("HTTP/1.1 200"))
			if _, err := io.ReadFull(conn, head); err == nil && string(head) == "HTTP/1.1 200" {
				headers.Add(1)
			}
			for b := make([]byte, 1); ctx.Err() == nil; time.Sleep(time.Second) {
				if _, err := conn.Read(b); err != nil {
					return
				}
			}
		})
	}
	// Every answer's deadline is 10 s plus its size at slowClientRate.
	deadline := ramp.Add(slowRamp + 10*time.Second + time.Duration(len(spot))*time.Second/slowClientRate + 5*time.Second)
	var cut int
	for cut < slowClients && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		cut = p.metric(t, "symcache_slow_clients_total")
	}
	cancel()
	wg.Wait()
	<-fast
	if cut < slowClients {
		t.Errorf("symcache_slow_clients_total = %d, want %d: every slow client cut off by its write deadline", cut, slowClients)
	}
	if h := headers.Load(); h != slowClients {
		t.Errorf("slow clients that got HTTP/1.1 200 = %d, want %d", h, slowClients)
	}
	return int(answers.Load())
}

// memProc is one run of the sidecar binary.
type memProc struct {
	cmd     *exec.Cmd
	addr    string
	logs    *testutil.LogBuffer
	exited  chan error
	stopped bool

	mu       sync.Mutex
	inflated map[[32]byte]inflated // gzip answers checked, by their own SHA-256
}

// inflated is what a gzip answer inflates to: its SHA-256 and length.
type inflated struct {
	sum [32]byte
	n   int64
}

// waitStatus polls path until it answers status, for at most d.
func (p *memProc) waitStatus(t *testing.T, path string, status int, d time.Duration) bool {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-p.exited:
			p.stopped = true
			t.Fatalf("sidecar exited (%v) before %s answered %d:\n%s", err, path, status, p.tail())
		default:
		}
		resp, err := client.Get("http://" + p.addr + path)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == status {
			return true
		}
	}
	return false
}

// metric reads one counter from /metrics.
func (p *memProc) metric(t *testing.T, name string) int {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Errorf("GET /metrics: %v", err)
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int(f)
		}
	}
	return 0
}

// memory returns the process's VmHWM (peak RSS) and VmRSS, in bytes.
func (p *memProc) memory(t *testing.T) (hwm, rss int64) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read the sidecar's /proc status: %v", err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kb); err == nil {
			hwm = kb << 10
		}
		if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &kb); err == nil {
			rss = kb << 10
		}
	}
	if hwm == 0 || rss == 0 {
		t.Fatalf("no VmHWM or VmRSS in /proc/%d/status:\n%s", p.cmd.Process.Pid, status)
	}
	return hwm, rss
}

// stop sends SIGTERM and checks that the sidecar exits 0 within 30 s.
func (p *memProc) stop(t *testing.T) {
	t.Helper()
	if p.stopped {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case err := <-p.exited:
		p.stopped = true
		if err != nil {
			t.Errorf("sidecar exit after SIGTERM = %v, want status 0:\n%s", err, p.tail())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("sidecar still running 30s after SIGTERM:\n%s", p.tail())
	}
}

// tail is the end of the sidecar's log.
func (p *memProc) tail() string {
	s := p.logs.String()
	if len(s) > 8<<10 {
		s = "…" + s[len(s)-8<<10:]
	}
	return s
}

// accept says which answers a phase allows.
type accept struct {
	bodies  [][32]byte // the spot bodies allowed with a 200 (SHA-256); nil: any
	bodyLen int        // with bodies nil, the length a 200's body must have; 0: any
	empty   bool       // nothing to serve yet: the spot answer and /readyz may be 503
}

// hammer runs memClients clients for d: each asks for the spot answer in a
// loop, half of them plain and half with gzip, and for /readyz every fifth
// time, and checks every answer against ok. It returns the number of
// answers checked.
func (p *memProc) hammer(t *testing.T, d time.Duration, ok accept) int {
	t.Helper()
	var answers, failures atomic.Int64
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 3 {
			t.Errorf(format, args...)
		}
	}
	until := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := range memClients {
		wg.Go(func() {
			tr := &http.Transport{DisableCompression: true} // gzip is asked for and checked below
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			for i := 0; time.Now().Before(until); i++ {
				path := exchangeinfo.Spot.Path()
				if i%5 == 4 {
					path = "/readyz"
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+path, nil)
				if c%2 == 1 {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				resp, err := client.Do(req)
				if err != nil {
					fail("GET %s: %v", path, err)
					continue
				}
				sum, n, err := p.digest(resp)
				answers.Add(1)
				switch {
				case err != nil:
					fail("GET %s: read the body: %v (%d bytes)", path, err, n)
				case resp.StatusCode == http.StatusServiceUnavailable && ok.empty:
				case path == "/readyz":
					if resp.StatusCode != http.StatusOK {
						fail("GET /readyz = %d, want 200", resp.StatusCode)
					}
				case resp.StatusCode != http.StatusOK:
					fail("GET %s = %d, want 200", path, resp.StatusCode)
				case ok.bodies != nil && !slices.Contains(ok.bodies, sum):
					fail("GET %s = 200 with a body of %d bytes that is not the last good one", path, n)
				case ok.bodies == nil && ok.bodyLen > 0 && n != int64(ok.bodyLen):
					fail("GET %s = 200 with %d bytes, want %d", path, n, ok.bodyLen)
				}
			}
		})
	}
	wg.Wait()
	if f := failures.Load(); f > 3 {
		t.Errorf("… and %d more failed answers", f-3)
	}
	return int(answers.Load())
}

// digest reads and closes resp's body and returns the SHA-256 and length of
// what it holds, inflated if it is gzip. A gzip body is inflated once: the
// sidecar sends the same gzip bytes for a snapshot every time, and
// inflating megabytes in a race-built test would take the CPU the sidecar
// needs.
func (p *memProc) digest(resp *http.Response) (sum [32]byte, n int64, err error) {
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		h := sha256.New()
		n, err = io.Copy(h, resp.Body)
		h.Sum(sum[:0])
		return sum, n, err
	}
	gz, err := io.ReadAll(resp.Body)
	if err != nil {
		return sum, int64(len(gz)), err
	}
	key := sha256.Sum256(gz)
	p.mu.Lock()
	seen, ok := p.inflated[key]
	p.mu.Unlock()
	if ok {
		return seen.sum, seen.n, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return sum, 0, err
	}
	h := sha256.New()
	if n, err = io.Copy(h, zr); err != nil {
		return sum, n, err
	}
	h.Sum(sum[:0])
	p.mu.Lock()
	p.inflated[key] = inflated{sum, n}
	p.mu.Unlock()
	return sum, n, nil
}

// fakeBinance answers Binance's exchangeInfo paths on 127.0.0.1: the
// recorded answers unless set otherwise, and counts the hostile answers
// it sends (any answer set by set).
type fakeBinance struct {
	URL     string
	stop    chan struct{} // closed at cleanup: answers that hang return
	mu      sync.Mutex
	answers map[string]upAnswer
	hostile int
}

// upAnswer is a named way to answer: serve, or if nil a 200 with body.
type upAnswer struct {
	name  string
	serve func(w http.ResponseWriter, r *http.Request, stop <-chan struct{})
	body  []byte
}

func newFakeBinance(t *testing.T) *fakeBinance {
	t.Helper()
	b := &fakeBinance{stop: make(chan struct{}), answers: map[string]upAnswer{}}
	recorded := map[string][]byte{
		exchangeinfo.Spot.Path():  fixtures.Read(t, "binance/spot_exchangeinfo.json"),
		exchangeinfo.USDM.Path():  fixtures.Read(t, "binance/usdm_exchangeinfo.json"),
		exchangeinfo.COINM.Path(): fixtures.Read(t, "binance/coinm_exchangeinfo.json"),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		a, set := b.answers[r.URL.Path]
		if set {
			b.hostile++
		}
		b.mu.Unlock()
		switch body, known := recorded[r.URL.Path]; {
		case set:
			a.serve(w, r, b.stop)
		case known:
			writeChunked(w, body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(b.stop) }) // before srv.Close, which waits for the handlers
	b.URL = srv.URL
	return b
}

// set makes a the answer to path.
func (b *fakeBinance) set(path string, a upAnswer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.serve == nil {
		a.serve = send(a.body)
	}
	b.answers[path] = a
}

// healthy brings back the recorded answers on every path.
func (b *fakeBinance) healthy() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.answers)
}

// hostileServed is the number of answers sent from set.
func (b *fakeBinance) hostileServed() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hostile
}

// writeChunked sends body without a Content-Length, 1 MiB a write: the
// size is unknown to the client until the end, as with Binance's gzip
// answers, which Go's transport inflates.
func writeChunked(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	for len(body) > 0 {
		n := min(len(body), 1<<20)
		if _, err := w.Write(body[:n]); err != nil {
			return
		}
		body = body[n:]
	}
}

// send answers 200 with body, chunked.
func send(body []byte) func(http.ResponseWriter, *http.Request, <-chan struct{}) {
	return func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) { writeChunked(w, body) }
}

func unavailable(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `{"code":-1008,"msg":"Server is currently overloaded with other requests. Please try again in a few minutes."}`)
}

// symbolsFiller returns about 1 MiB of symbol objects, the stuff of
// answers that never end.
func symbolsFiller() []byte {
	return bytes.Repeat([]byte(`{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","quoteAsset":"BTC"},`), 14000)
}

// endless answers 200 with size bytes of symbols, chunked, without a
// Content-Length: a body that goes on past any limit.
func endless(size int) func(http.ResponseWriter, *http.Request, <-chan struct{}) {
	filler := symbolsFiller()
	return func(w http.ResponseWriter, _ *http.Request, stop <-chan struct{}) {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		io.WriteString(w, `{"timezone":"UTC","serverTime":1694185561976,"symbols":[`)
		for sent := 0; sent < size; sent += len(filler) {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Write(filler); err != nil {
				return // the client stopped reading
			}
		}
	}
}

// lying answers 200 with a Content-Length of size, sends 1 MiB, and then
// waits until the client gives up (or 5 s) and closes the connection.
func lying(size int64) func(http.ResponseWriter, *http.Request, <-chan struct{}) {
	filler := symbolsFiller()
	return func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"timezone":"UTC","serverTime":1694185561976,"symbols":[`)
		w.Write(filler)
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		case <-time.After(5 * time.Second):
		}
	}
}

// bumping answers the recorded spot body with serverTime set to the time
// of the request: a new answer every millisecond, of the same length.
func bumping(t *testing.T, spot []byte) func(http.ResponseWriter, *http.Request, <-chan struct{}) {
	const field = `"serverTime":`
	at := bytes.Index(spot, []byte(field)) + len(field)
	if at < len(field) || len(spot) < at+13 {
		t.Fatal("no serverTime in the spot fixture")
	}
	return func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
		body := bytes.Clone(spot)
		copy(body[at:at+13], strconv.FormatInt(time.Now().UnixMilli(), 10))
		writeChunked(w, body)
	}
}

// manySymbols returns a valid spot answer of n (at most 10 million) small
// symbols, 76 bytes each: 800,000 of them are 58 MiB, under fetch's 64 MiB
// limit.
func manySymbols(n int) []byte {
	b := make([]byte, 0, n*76+128)
	b = append(b, `{"timezone":"UTC","serverTime":1694185561976,"rateLimits":[],"exchangeFilters":[],"symbols":[`...)
	name := []byte("S0000000")
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		for j, v := len(name)-1, i; j > 0; j, v = j-1, v/10 {
			name[j] = byte('0' + v%10)
		}
		b = append(b, `{"symbol":"`...)
		b = append(b, name...)
		b = append(b, `","status":"TRADING","baseAsset":"B","quoteAsset":"USDT"}`...)
	}
	return append(b, `]}`...)
}

// junkSymbol returns spot with a field of size bytes in its first symbol
// object: a valid answer whose one symbol is absurd.
func junkSymbol(t *testing.T, spot []byte, size int) []byte {
	t.Helper()
	const open = `"symbols":[{`
	i := bytes.Index(spot, []byte(open))
	if i < 0 {
		t.Fatalf("no %s in the spot fixture", open)
	}
	i += len(open)
	var b bytes.Buffer
	b.Grow(len(spot) + size + 16)
	b.Write(spot[:i])
	b.WriteString(`"junk":"`)
	b.Write(bytes.Repeat([]byte("x"), size))
	b.WriteString(`",`)
	b.Write(spot[i:])
	return b.Bytes()
}

// gzipBomb returns a spot envelope as l2 writes it with gzip (three
// members: the fields, exchange_info, the closing brace) whose middle
// member is about size/1032 bytes and inflates to size bytes of spaces.
// That member is one deflate block written by hand, since compressing a
// GiB would take longer than the test: a dynamic Huffman code of three
// symbols (" ", end of block, length 258) and one distance (1), so each
// 258 bytes cost 2 bits, both 0.
func gzipBomb(t *testing.T, size int) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	fmt.Fprintf(zw, `{"market":"spot","fetched_at":%q,"server_time":1694185561976,"etag":"\"x\"","exchange_info":`, time.Now().UTC().Format(time.RFC3339Nano))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}

	var bw bitWriter
	bw.bits(1, 1)  // BFINAL
	bw.bits(2, 2)  // BTYPE: dynamic Huffman codes
	bw.bits(29, 5) // HLIT: 286 literal/length codes (up to 285, length 258)
	bw.bits(1, 5)  // HDIST: 2 distance codes
	bw.bits(14, 4) // HCLEN: 18 code length codes, in the order below
	// The code length code: 18 (a run of zeros) in 1 bit, 1 and 2 in 2 bits.
	lengths := map[int]uint64{18: 1, 1: 2, 2: 2}
	for _, sym := range []int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1} {
		bw.bits(lengths[sym], 3)
	}
	zeros := func(n uint64) { bw.code(0b0, 1); bw.bits(n-11, 7) } // 18: 11 to 138 zeros
	one, two := func() { bw.code(0b10, 2) }, func() { bw.code(0b11, 2) }
	zeros(32)  // literals 0-31 unused
	two()      // ' ' (32): 2 bits
	zeros(138) // 33-170
	zeros(85)  // 171-255
	two()      // end of block (256): 2 bits
	zeros(28)  // lengths 257-284 unused
	one()      // length 258 (285): 1 bit
	one()      // distance 1 (0): 1 bit
	one()      // distance code 1: 1 bit, unused, to make the code complete
	// Codes: 285 is 0, ' ' is 10, end of block is 11; distance 1 is 0.
	bw.code(0b10, 2) // ' '
	copies := (size - 1) / 258
	for range copies {
		bw.bits(0, 2) // length 258, distance 1
	}
	bw.code(0b11, 2) // end of block
	bw.flush()

	inflated := 1 + 258*copies
	crc := crc32.NewIEEE()
	spaces := bytes.Repeat([]byte(" "), 1<<20)
	for left := inflated; left > 0; left -= len(spaces) {
		crc.Write(spaces[:min(left, len(spaces))])
	}
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}) // gzip header: deflate, no name, no time
	out.Write(bw.b)
	out.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, crc.Sum32()), uint32(inflated)))

	zw = gzip.NewWriter(&out)
	io.WriteString(zw, "}")
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// bitWriter writes a deflate stream: values from their least significant
// bit, Huffman codes from their most significant one.
type bitWriter struct {
	b   []byte
	acc uint64
	n   uint
}

func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.n
	for w.n += n; w.n >= 8; w.n -= 8 {
		w.b = append(w.b, byte(w.acc))
		w.acc >>= 8
	}
}

func (w *bitWriter) code(c uint64, n uint) {
	var r uint64
	for i := uint(0); i < n; i++ {
		r |= (c >> i & 1) << (n - 1 - i)
	}
	w.bits(r, n)
}

func (w *bitWriter) flush() {
	if w.n > 0 {
		w.b = append(w.b, byte(w.acc))
		w.acc, w.n = 0, 0
	}
}
