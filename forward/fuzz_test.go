package forward_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/forward"
	"github.com/symcache/symcache/internal/testutil"
)

// FuzzForward: whatever request line, query, headers and body a client
// sends, written as raw bytes to a real server (and, when net/http refuses
// them, handed to ServeHTTP as a built request), the Forwarder
//
//   - does not panic, and no handler of it outlives its connection;
//   - sends nothing to any host but its base URLs: a canary server, named in
//     the inputs as {canary}, stands for every other host and gets nothing,
//     and its Transport sees only base URL hosts, with no Host of the client's;
//   - sends a base URL only a path under its base path and one of Prefixes
//     for its market, that came in under that same prefix (origin form: the
//     very path sent), with the same method, the raw query byte for byte, the
//     client's X-MBX-APIKEY and Authorization, no forwarding or hop-by-hop
//     headers (nor those the client's Connection names), no Idempotency-Key
//     but on a GET or HEAD, and no credentials but the client's or that base
//     URL's own; and what it sends, the base URL's net/http takes as a
//     request;
//   - answers a path under none of Prefixes 404 in Binance's error shape,
//     and a path under one of them never so; its own answers are 400, 502 or
//     504 Binance errors.
//
// In target, query and header, {canary}, {self} and {up} stand for the
// host:port of the canary, of the Forwarder itself and of the spot base URL.
// Flags: fuzzForceQuery, fuzzHTTP10, fuzzVerbatim, fuzzHalfClose.
func FuzzForward(f *testing.F) {
	w := newFuzzWorld(f)
	f.Fuzz(func(t *testing.T, method, target, query, header string, body []byte, flags byte) {
		w.run(t, method, target, query, header, body, flags)
	})
}

// The bits of FuzzForward's flags.
const (
	fuzzForceQuery = 1 << iota // a "?" after the target even when the query is empty
	fuzzHTTP10                 // HTTP/1.0, not HTTP/1.1
	fuzzVerbatim               // no Host or Content-Length added when header has none
	fuzzHalfClose              // the client shuts its side down once the request is written
)

// fuzzMarkets is forward's routing as its package doc states it.
var fuzzMarkets = map[string]exchangeinfo.Market{
	"/api/":  exchangeinfo.Spot,
	"/sapi/": exchangeinfo.Spot,
	"/fapi/": exchangeinfo.USDM,
	"/dapi/": exchangeinfo.COINM,
}

// fuzzWorld is FuzzForward's servers, shared by every input: the Forwarder
// on a real listener, a base URL per market recording what it gets, a base
// URL nothing listens on (COIN-M's first), and the canary.
type fuzzWorld struct {
	front                           http.Handler // the Forwarder
	frontAddr, canaryAddr, spotAddr string
	bases                           map[string]fuzzBase // by host:port
	expand                          *strings.Replacer

	canaryHits atomic.Int64
	running    atomic.Int64 // handlers of the Forwarder and the base URLs not yet returned
	reading    atomic.Int64 // when the Read of a request body in progress began (UnixNano), or 0
	conns      atomic.Int64 // connections to the Forwarder not yet closed
	directN    atomic.Int64
	halfClose  atomic.Bool        // the input's client half-closes
	serverLog  testutil.LogBuffer // the Forwarder's http.Server's ErrorLog

	mu       sync.Mutex
	seq      uint64
	seen     map[uint64]fuzzSeen // what the Forwarder got, by seq
	firstSeq map[string]uint64   // the first seq of each client connection (RemoteAddr)
	received []fuzzReceived      // what base URLs got, not yet checked
	problems []string            // seen by the Transport or the panic guard, not yet reported
}

// fuzzBase is one base URL.
type fuzzBase struct {
	market exchangeinfo.Market
	path   string // its path prefix, without a trailing slash
	auth   string // the Authorization its userinfo makes, or ""
}

// fuzzSeen is a request as the Forwarder's ServeHTTP got it.
type fuzzSeen struct {
	remote, method, target string // target: the RequestURI
	header                 http.Header
	done                   chan struct{} // closed when its context ends
	tried                  *atomic.Bool  // the Transport got it
	passed                 *atomic.Bool  // a base URL's answer came back
}

// fuzzReceived is a request as a base URL got it.
type fuzzReceived struct {
	base                 string // the base URL's host:port
	method, target, host string // target: the RequestURI; host: the Host header
	header               http.Header
}

// seqKey carries a request's seq from the Forwarder's ServeHTTP to its
// Transport, which sends it on as X-Fuzz-Seq: what a base URL gets is
// matched with what the Forwarder got, whenever it arrives.
type seqKey struct{}

func newFuzzWorld(f *testing.F) *fuzzWorld {
	checkGoroutines(f)
	w := &fuzzWorld{
		bases:    make(map[string]fuzzBase),
		seen:     make(map[uint64]fuzzSeen),
		firstSeq: make(map[string]uint64),
	}
	if !slices.Equal(slices.Sorted(maps.Keys(fuzzMarkets)), slices.Sorted(slices.Values(forward.Prefixes))) {
		f.Fatalf("forward.Prefixes = %q, want the prefixes of %v", forward.Prefixes, fuzzMarkets)
	}

	canary := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { w.canaryHits.Add(1) }))
	f.Cleanup(canary.Close)
	w.canaryAddr = canary.Listener.Addr().String()

	quiet := log.New(io.Discard, "", 0)
	base := func(m exchangeinfo.Market, path, user string) (raw, host string) {
		srv := httptest.NewUnstartedServer(w.baseHandler())
		srv.Config.ErrorLog = quiet
		srv.Start()
		f.Cleanup(srv.Close)
		host = srv.Listener.Addr().String()
		b := fuzzBase{market: m, path: strings.TrimSuffix(path, "/")}
		raw = "http://" + host + path
		if user != "" {
			name, pw, _ := strings.Cut(user, ":")
			r := &http.Request{Header: http.Header{}}
			r.SetBasicAuth(name, pw)
			b.auth = r.Header.Get("Authorization")
			raw = "http://" + user + "@" + host + path
		}
		w.bases[host] = b
		return raw, host
	}
	spot, spotAddr := base(exchangeinfo.Spot, "/gw/spot", "")
	usdm, _ := base(exchangeinfo.USDM, "", "")
	coinm, _ := base(exchangeinfo.COINM, "/c/", "u:p")
	w.spotAddr = spotAddr
	refused := testutil.FreeAddr(f)
	w.bases[refused] = fuzzBase{market: exchangeinfo.COINM, auth: "Basic Zmlyc3Q6c2VjcmV0"} // first:secret

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DisableCompression = true
	f.Cleanup(tr.CloseIdleConnections)
	fwd, err := forward.New(forward.Config{
		BaseURLs: map[exchangeinfo.Market][]string{
			exchangeinfo.Spot:  {spot},
			exchangeinfo.USDM:  {usdm},
			exchangeinfo.COINM: {"http://first:secret@" + refused, coinm},
		},
		Transport: fuzzTransport{w, tr},
		Timeout:   2 * time.Second,
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		f.Fatalf("forward.New = %v", err)
	}
	w.front = fwd

	srv := httptest.NewUnstartedServer(w)
	srv.Config.ErrorLog = log.New(&w.serverLog, "", 0)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			w.conns.Add(1)
		case http.StateHijacked, http.StateClosed:
			w.conns.Add(-1)
		}
	}
	srv.Start()
	f.Cleanup(srv.Close)
	w.frontAddr = srv.Listener.Addr().String()
	w.expand = strings.NewReplacer("{canary}", w.canaryAddr, "{self}", w.frontAddr, "{up}", w.spotAddr)
	return w
}

// checkGoroutines fails f if, once f's servers are closed, more goroutines
// run than before it began. Fuzzing workers are left alone: the fuzzing
// engine has goroutines of its own.
func checkGoroutines(f *testing.F) {
	if fl := flag.Lookup("test.fuzz"); fl != nil && fl.Value.String() != "" {
		return
	}
	before := runtime.NumGoroutine()
	f.Cleanup(func() { // registered first: runs after every server is closed
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			f.Errorf("%d goroutines left once the servers closed, want at most %d:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
	})
}

// ServeHTTP is the Forwarder's, noting what it got and turning a panic into
// a problem of the input.
func (w *fuzzWorld) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.running.Add(1)
	defer w.running.Add(-1)
	w.mu.Lock()
	w.seq++
	seq := w.seq
	done := make(chan struct{})
	context.AfterFunc(r.Context(), func() { close(done) })
	w.seen[seq] = fuzzSeen{remote: r.RemoteAddr, method: r.Method, target: r.RequestURI, header: r.Header.Clone(), done: done, tried: new(atomic.Bool), passed: new(atomic.Bool)}
	if _, ok := w.firstSeq[r.RemoteAddr]; !ok {
		w.firstSeq[r.RemoteAddr] = seq
	}
	w.mu.Unlock()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v) // the ReverseProxy's way of cutting an answer short
			}
			w.problem("%s %q: the Forwarder panicked: %v\n%s", r.Method, r.RequestURI, v, debug.Stack())
			panic(http.ErrAbortHandler)
		}
	}()
	r = r.WithContext(context.WithValue(r.Context(), seqKey{}, seq))
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = fuzzBody{r.Body, w}
	}
	w.front.ServeHTTP(rw, r)
}

// fuzzBody is a request body that notes when a Read is waiting for the
// client.
type fuzzBody struct {
	io.ReadCloser
	w *fuzzWorld
}

func (b fuzzBody) Read(p []byte) (int, error) {
	b.w.reading.Store(time.Now().UnixNano())
	defer b.w.reading.Store(0)
	return b.ReadCloser.Read(p)
}

// baseHandler records each request a base URL gets and answers 200 {}.
// When the input's client half-closes, it answers only once the Forwarder's
// request context has ended (or after 300ms), as a base URL slower than
// net/http's notice of the half-close would: what the client then gets does
// not depend on which came first.
func (w *fuzzWorld) baseHandler() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.running.Add(1)
		defer w.running.Add(-1)
		w.mu.Lock()
		w.received = append(w.received, fuzzReceived{base: r.Context().Value(http.LocalAddrContextKey).(net.Addr).String(),
			method: r.Method, target: r.RequestURI, host: r.Host, header: r.Header.Clone()})
		w.mu.Unlock()
		io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		if w.halfClose.Load() {
			seq, _ := strconv.ParseUint(r.Header.Get("X-Fuzz-Seq"), 10, 64)
			w.mu.Lock()
			done := w.seen[seq].done
			w.mu.Unlock()
			select {
			case <-done:
				time.Sleep(10 * time.Millisecond) // and the Forwarder's Transport has seen it end
			case <-time.After(300 * time.Millisecond):
			}
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("X-Fuzz-Base", "1")
		io.WriteString(rw, "{}")
	})
}

func (w *fuzzWorld) problem(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

// fuzzTransport is the Forwarder's Transport: it checks where each request
// goes, sends it to base URLs only, and tags it with its seq.
type fuzzTransport struct {
	w  *fuzzWorld
	rt http.RoundTripper
}

func (ft fuzzTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	w := ft.w
	seq, _ := req.Context().Value(seqKey{}).(uint64)
	b, ok := w.bases[req.URL.Host]
	if !ok {
		w.problem("the Transport got %s %s for %q, not a base URL's host", req.Method, req.URL.Opaque, req.URL.Host)
		return nil, errors.New("fuzz: not a base URL")
	}
	if req.Host != "" && req.Host != req.URL.Host {
		w.problem("the Transport got %s %s for %s with Host %q", req.Method, req.URL.Opaque, req.URL.Host, req.Host)
	}
	w.mu.Lock()
	s, ok := w.seen[seq]
	w.mu.Unlock()
	if ok {
		s.tried.Store(true)
	}
	path := cmp.Or(req.URL.Opaque, req.URL.EscapedPath())
	if !ok {
		w.problem("the Transport got %s %s for %s, from no request the Forwarder got", req.Method, path, req.URL.Host)
	} else if msg := pathProblem(b, path, s); msg != "" {
		w.problem("the Transport got %s %s for %s: %s", req.Method, path, req.URL.Host, msg)
	}
	req = req.Clone(req.Context())
	req.Header.Set("X-Fuzz-Seq", strconv.FormatUint(seq, 10))
	resp, err := ft.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if ok {
		s.passed.Store(true)
	}
	// An answer from the base URL's net/http, not its handler, says that
	// what went out was not the request that came in: a broken request
	// line, say. An Expect other than 100-continue is the client's own.
	if resp.Header.Get("X-Fuzz-Base") == "" && !(resp.StatusCode == http.StatusExpectationFailed && req.Header.Get("Expect") != "") {
		w.problem("the Transport sent %s %q to %s, and its server answered %s", req.Method, req.URL.RequestURI(), req.URL.Host, resp.Status)
	}
	return resp, nil
}

// run sends one input, waits for every handler to return, and checks.
func (w *fuzzWorld) run(t *testing.T, method, target, query, header string, body []byte, flags byte) {
	target, query, header = w.expand.Replace(target), w.expand.Replace(query), w.expand.Replace(header)
	if query != "" || flags&fuzzForceQuery != 0 {
		target += "?" + query
	}
	w.halfClose.Store(flags&fuzzHalfClose != 0)
	defer w.halfClose.Store(false)
	remote, status, h, b := w.sendRaw(t, w.rawRequest(method, target, header, body, flags), method, flags&fuzzHalfClose != 0)
	w.settle(t)
	defer w.check(t)
	s, ok := w.first(remote)
	switch {
	case ok && s.method == method && s.target == target && status != 0:
		w.checkAnswer(t, s, status, h, b)
	case !ok && strings.HasPrefix(target, "/") && isToken(method):
		// net/http refused it (a control character, a bad header): hand
		// it to ServeHTTP as another server or router might.
		w.halfClose.Store(false)
		remote, status, h, b, ok := w.serveDirect(method, target, header, body)
		if !ok {
			return
		}
		w.settle(t)
		if s, ok := w.first(remote); ok {
			w.checkAnswer(t, s, status, h, b)
		}
	}
}

// rawRequest is the bytes a client writes: the request line, the header
// lines (split at \n), a Host and a Content-Length unless header has its own
// or flags say fuzzVerbatim, and body.
func (w *fuzzWorld) rawRequest(method, target, header string, body []byte, flags byte) []byte {
	var b bytes.Buffer
	proto := "HTTP/1.1"
	if flags&fuzzHTTP10 != 0 {
		proto = "HTTP/1.0"
	}
	fmt.Fprintf(&b, "%s %s %s\r\n", method, target, proto)
	hasHost, hasFraming := false, false
	for line := range strings.Lines(header) {
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			continue // it would end the header
		}
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(name) {
		case "host":
			hasHost = true
		case "content-length", "transfer-encoding":
			hasFraming = true
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	if flags&fuzzVerbatim == 0 {
		if !hasHost {
			fmt.Fprintf(&b, "Host: %s\r\n", w.frontAddr)
		}
		if !hasFraming && len(body) > 0 {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// sendRaw writes raw on a new connection to the Forwarder, shuts down its
// writing side if halfClose, and reads the first answer. remote is the
// connection's address as the server sees it; status is 0 when no whole
// answer came.
func (w *fuzzWorld) sendRaw(t *testing.T, raw []byte, method string, halfClose bool) (remote string, status int, h http.Header, body []byte) {
	conn, err := net.DialTimeout("tcp", w.frontAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial the Forwarder: %v", err)
	}
	defer conn.Close()
	remote = conn.LocalAddr().String()
	conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	conn.Write(raw) // the server may answer and hang up before reading it all
	if halfClose {
		conn.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(conn)
	// An answer takes milliseconds, unless the framing promised more body
	// than was sent: then the Forwarder waits for it, and hanging up (the
	// deferred Close) ends the wait. The handlers must then return.
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := br.Peek(1)
		if err == nil {
			break
		}
		if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() || time.Now().After(deadline) {
			return remote, 0, nil, nil
		}
		if since := w.reading.Load(); since != 0 && time.Since(time.Unix(0, since)) > 100*time.Millisecond {
			return remote, 0, nil, nil
		}
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	req := &http.Request{Method: method}
	for range 10 {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return remote, 0, nil, nil
		}
		if resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // 100 Continue: the answer follows
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return remote, 0, nil, nil // cut short
		}
		return remote, resp.StatusCode, resp.Header, body
	}
	return remote, 0, nil, nil
}

// serveDirect hands the request to ServeHTTP as built from its parts: the
// header lines that are "name: value" with a token name, and body whole.
// The target must be one a server could parse but for control characters;
// ok is false if it is not.
func (w *fuzzWorld) serveDirect(method, target, header string, body []byte) (remote string, status int, h http.Header, b []byte, ok bool) {
	u, err := url.ParseRequestURI(strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return 'x'
		}
		return c
	}, target))
	if err != nil {
		return "", 0, nil, nil, false
	}
	u.RawQuery, _ = cutQuery(target)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	remote = "direct-" + strconv.FormatInt(w.directN.Add(1), 10)
	req := (&http.Request{
		Method: method, URL: u, RequestURI: target,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Host: w.frontAddr, RemoteAddr: remote, Body: http.NoBody,
	}).WithContext(ctx)
	for line := range strings.Lines(header) {
		name, value, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		if !ok || !isToken(name) {
			continue
		}
		value = strings.Trim(value, " \t")
		switch name = http.CanonicalHeaderKey(name); name {
		case "Host":
			req.Host = value
		case "Content-Length", "Transfer-Encoding":
			// body is whole
		default:
			req.Header.Add(name, value)
		}
	}
	if len(body) > 0 {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	rec := httptest.NewRecorder()
	func() {
		defer func() { recover() }() // http.ErrAbortHandler: ServeHTTP noted any other panic
		w.ServeHTTP(rec, req)
	}()
	if method == http.MethodHead {
		return remote, rec.Code, rec.Result().Header, nil, true
	}
	return remote, rec.Code, rec.Result().Header, rec.Body.Bytes(), true
}

// settle waits until every handler has returned and every connection to
// the Forwarder is closed.
func (w *fuzzWorld) settle(t *testing.T) {
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; w.running.Load() != 0 || w.conns.Load() != 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d handlers running and %d connections open 10s after the client hung up, want none", w.running.Load(), w.conns.Load())
		}
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// first returns the first request the Forwarder got on the connection from
// remote.
func (w *fuzzWorld) first(remote string) (fuzzSeen, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seq, ok := w.firstSeq[remote]
	delete(w.firstSeq, remote)
	if !ok {
		return fuzzSeen{}, false
	}
	return w.seen[seq], true
}

// checkAnswer checks the answer to s, the request the Forwarder got.
func (w *fuzzWorld) checkAnswer(t *testing.T, s fuzzSeen, status int, h http.Header, body []byte) {
	t.Helper()
	path := requestPath(s.method, s.target)
	own := !s.passed.Load() // not a base URL's, nor its server's
	switch {
	case prefixOf(path) == "":
		if status != http.StatusNotFound || !own {
			t.Errorf("%s %q = %d (from a base URL: %v), want the Forwarder's 404: %q is under none of %q", s.method, s.target, status, !own, path, forward.Prefixes)
			return
		}
	case !slices.Contains(forward.Methods, s.method):
		if status != http.StatusMethodNotAllowed || !own || h.Get("Allow") == "" {
			t.Errorf("%s %q = %d (from a base URL: %v), want the Forwarder's 405 with Allow: %s is not forwarded", s.method, s.target, status, !own, s.method)
			return
		}
	case !own:
		return
	case status == http.StatusNotFound:
		t.Errorf("%s %q = 404 from the Forwarder, want it forwarded: %q is under %s", s.method, s.target, path, prefixOf(path))
		return
	case status != http.StatusBadRequest && status != http.StatusBadGateway && status != http.StatusGatewayTimeout:
		t.Errorf("%s %q = %d from the Forwarder, want 400, 502 or 504 (or a base URL's answer)", s.method, s.target, status)
		return
	}
	if s.method == http.MethodHead {
		return // no body
	}
	var e struct {
		Code *int    `json:"code"`
		Msg  *string `json:"msg"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == nil || e.Msg == nil || *e.Code >= 0 || *e.Msg == "" {
		t.Errorf("%s %q = %d %q, want a Binance error", s.method, s.target, status, body)
	} else if status == http.StatusNotFound && *e.Code != -1000 {
		t.Errorf("%s %q = 404 with code %d, want -1000", s.method, s.target, *e.Code)
	} else if (*e.Code == -1006 || *e.Code == -1007) && !s.tried.Load() {
		t.Errorf("%s %q = %d %q: sent, it says, but the Transport never got it", s.method, s.target, status, body)
	}
}

// check reports the problems noted since the last check and checks every
// request the base URLs got since then.
func (w *fuzzWorld) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	problems, received := w.problems, w.received
	w.problems, w.received = nil, nil
	for _, p := range problems {
		t.Error(p)
	}
	if n := w.canaryHits.Swap(0); n != 0 {
		t.Errorf("the canary got %d requests, want 0", n)
	}
	if out := w.serverLog.String(); strings.Contains(out, "panic") || strings.Contains(out, "superfluous") {
		t.Errorf("the Forwarder's server logged:\n%s", out)
	}
	w.serverLog.Reset()
	for _, r := range received {
		if msg := w.receivedProblem(r); msg != "" {
			t.Errorf("base URL %s got %s %q: %s", r.base, r.method, r.target, msg)
		}
	}
	// Forget what no late request can still refer to.
	if len(w.seen) > 8192 {
		for seq, s := range w.seen {
			if seq+4096 < w.seq {
				delete(w.seen, seq)
				delete(w.firstSeq, s.remote)
			}
		}
	}
}

// receivedProblem says what is wrong with r, a request a base URL got, or
// "". w.mu is held.
func (w *fuzzWorld) receivedProblem(r fuzzReceived) string {
	b := w.bases[r.base]
	seq, err := strconv.ParseUint(r.header.Get("X-Fuzz-Seq"), 10, 64)
	s, ok := w.seen[seq]
	if err != nil || !ok {
		return "from no request the Forwarder got"
	}
	if msg := pathProblem(b, r.target, s); msg != "" {
		return msg
	}
	if r.method != s.method {
		return fmt.Sprintf("the Forwarder got %s %q", s.method, s.target)
	}
	if r.host != r.base {
		return fmt.Sprintf("with Host %q, want its own", r.host)
	}
	inQuery, inHas := cutQuery(s.target)
	outQuery, outHas := cutQuery(r.target)
	if inQuery != outQuery || inHas != outHas {
		return fmt.Sprintf("query %q (? %v), want %q (? %v) as the Forwarder got it in %q", outQuery, outHas, inQuery, inHas, s.target)
	}
	gone := []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization"}
	if s.method != http.MethodGet && s.method != http.MethodHead {
		gone = append(gone, "Idempotency-Key", "X-Idempotency-Key") // they would let net/http send it twice
	}
	for _, k := range gone {
		if v, ok := r.header[k]; ok {
			return fmt.Sprintf("with %s: %q, want none", k, v)
		}
	}
	named := connectionNamed(s.header)
	for k := range named {
		switch k {
		case "Connection", "Upgrade", "Te", "Host", "Content-Length", "Transfer-Encoding", "X-Fuzz-Seq":
			continue // the ReverseProxy or the Transport sets them
		}
		if v, ok := r.header[k]; ok {
			return fmt.Sprintf("with %s: %q, which the client's Connection: %q named", k, v, s.header["Connection"])
		}
	}
	// End-to-end headers go as they came: the API key, and the client's
	// own Authorization (a base URL's userinfo never replaces it).
	for _, k := range []string{"X-Mbx-Apikey", "Authorization"} {
		if named[k] || k == "Authorization" && s.header.Get(k) == "" {
			continue
		}
		if !slices.Equal(r.header[k], s.header[k]) {
			return fmt.Sprintf("with %s: %q, want %q as the client sent it", k, r.header[k], s.header[k])
		}
	}
	for _, a := range r.header["Authorization"] {
		if a != b.auth && !slices.Contains(s.header["Authorization"], a) {
			return fmt.Sprintf("with Authorization %q, neither the client's %q nor its base URL's %q", a, s.header["Authorization"], b.auth)
		}
	}
	return ""
}

// connectionNamed returns the header names h's Connection lists, as the
// ReverseProxy reads them.
func connectionNamed(h http.Header) map[string]bool {
	named := make(map[string]bool)
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.Trim(tok, " \t\r\n"); tok != "" {
				named[http.CanonicalHeaderKey(tok)] = true
			}
		}
	}
	return named
}

// pathProblem says what is wrong with out, the path (and query) of a
// request for base URL b made of s, or "".
func pathProblem(b fuzzBase, out string, s fuzzSeen) string {
	outPath, _, _ := strings.Cut(out, "?")
	rest, ok := strings.CutPrefix(outPath, b.path)
	prefix := prefixOf(rest)
	switch {
	case !ok || prefix == "":
		return fmt.Sprintf("path %q is not under %q and one of %q", outPath, b.path, forward.Prefixes)
	case fuzzMarkets[prefix] != b.market:
		return fmt.Sprintf("path %q is under %s, not one of %s's prefixes", outPath, prefix, b.market)
	}
	in := requestPath(s.method, s.target)
	switch {
	case !strings.HasPrefix(in, prefix):
		return fmt.Sprintf("path %q is under %s, and the Forwarder got %s %q (path %q)", outPath, prefix, s.method, s.target, in)
	case strings.HasPrefix(s.target, "/") && rest != in:
		return fmt.Sprintf("path %q, want %q%q as the Forwarder got it", outPath, b.path, in)
	}
	return ""
}

// requestPath is the path of a request-target as the client wrote it: an
// origin form's up to the query; an absolute form's after its authority
// (CONNECT's authority form has none).
func requestPath(method, target string) string {
	if strings.HasPrefix(target, "/") {
		p, _, _ := strings.Cut(target, "?")
		return p
	}
	if method == http.MethodConnect {
		target = "http://" + target
	}
	_, rest, ok := strings.Cut(target, ":")
	if !ok {
		return ""
	}
	rest, _, _ = strings.Cut(rest, "?")
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		i := strings.IndexByte(after, '/')
		if i < 0 {
			return ""
		}
		return after[i:]
	}
	if strings.HasPrefix(rest, "/") {
		return rest
	}
	return ""
}

// prefixOf returns the one of forward.Prefixes that path starts with, or "".
func prefixOf(path string) string {
	for _, p := range forward.Prefixes {
		if strings.HasPrefix(path, p) {
			return p
		}
	}
	return ""
}

// cutQuery returns a request-target's raw query, and whether it has a "?".
func cutQuery(target string) (string, bool) {
	_, q, ok := strings.Cut(target, "?")
	return q, ok
}

// isToken reports whether s is an HTTP token (RFC 9110 5.6.2), as a method
// or a header name must be.
func isToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(c rune) bool {
		return c >= 0x7f || c <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	})
}
