package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
)

// laneTwins is one Server behind two listeners: a plain http.Server and a
// FastLane over another, with the same settings.
type laneTwins struct {
	plain, lane string // addresses
	laneSrv     *httpapi.FastLane
	states      atomic.Int64 // the lane's open connections, by ConnState
}

func newLaneTwins(t testing.TB, tweaks ...func(*http.Server)) *laneTwins {
	t.Helper()
	w := newWorld(t, false)
	w.clock = testutil.NewClock(time.Now()) // Age and max-age the same for both
	c := w.cache()
	s, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Now: w.clock.Now}))
	if err != nil {
		t.Fatal(err)
	}
	tw := &laneTwins{}
	server := func() *http.Server {
		srv := &http.Server{Handler: s, ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second, IdleTimeout: 5 * time.Second,
			MaxHeaderBytes: 64 << 10, ErrorLog: discardLog()}
		for _, tweak := range tweaks {
			tweak(srv)
		}
		return srv
	}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	plain, plainLn := server(), listen()
	go plain.Serve(httpapi.Listener(plainLn))
	t.Cleanup(func() { plain.Close() })
	laneHTTP, laneLn := server(), listen()
	laneHTTP.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			tw.states.Add(1)
		case http.StateClosed, http.StateHijacked:
			tw.states.Add(-1)
		}
	}
	lane, err := httpapi.NewFastLane(laneHTTP)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- lane.Serve(laneLn) }()
	t.Cleanup(func() {
		lane.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("FastLane.Serve after Close = %v, want http.ErrServerClosed", err)
		}
	})
	tw.plain, tw.lane, tw.laneSrv = plainLn.Addr().String(), laneLn.Addr().String(), lane
	// Both markets loaded, so that no first MISS is compared.
	for _, p := range []string{spotPath, usdmPath} {
		exchange(t, tw.plain, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	return tw
}

// laneEnd ends what exchange sends: the server closes the connection
// after answering it (or after a timeout, if what came before left it
// waiting for more).
const laneEnd = "GET /v1/symbols/spot/ETHUSDT HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

// exchange sends raw and laneEnd on a new connection to addr, and returns
// all the server sent until it closed the connection.
func exchange(t testing.TB, addr, raw string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw+laneEnd); err != nil && !isReset(err) {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("reading the answer to %.60q: %v", raw, err)
	}
	return out
}

func isReset(err error) bool { return strings.Contains(err.Error(), "connection reset") }

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r\n]*\r$`)

// same asks both twins raw and reports what differs, Date aside.
func (tw *laneTwins) same(t testing.TB, raw string) {
	t.Helper()
	a := dateLine.ReplaceAll(exchange(t, tw.plain, raw), []byte("Date: -\r"))
	b := dateLine.ReplaceAll(exchange(t, tw.lane, raw), []byte("Date: -\r"))
	if !bytes.Equal(a, b) {
		i := 0
		for i < len(a) && i < len(b) && a[i] == b[i] {
			i++
		}
		from := max(0, i-200)
		t.Errorf("request %.200q:\nnet/http sent %d bytes, the fast lane %d; they differ at %d:\nnet/http:  %q\nfast lane: %q",
			raw, len(a), len(b), i, a[from:min(len(a), i+200)], b[from:min(len(b), i+200)])
	}
}

// The fast lane's answers are byte for byte net/http's (Date aside), for
// the requests it answers and the ones it hands over, pipelined or not,
// down to closing the connection when net/http does.
func TestFastLane_SameAsNetHTTP(t *testing.T) {
	tw := newLaneTwins(t)
	const probe = "GET /v1/symbols/spot/ETHUSDT HTTP/1.1\r\nHost: x\r\n\r\n"
	etag := func(target string, hdr string) string {
		out := exchange(t, tw.plain, "GET "+target+" HTTP/1.1\r\nHost: x\r\n"+hdr+"\r\n")
		m := regexp.MustCompile(`(?m)^Etag: ("[^"\r]*")`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no ETag for %s: %.200q", target, out)
		}
		return string(m[1])
	}
	spotGz := etag(spotPath, "Accept-Encoding: gzip\r\n")
	sym := etag("/v1/symbols/spot/BTCUSDT", "")
	query := etag(spotPath+"?symbol=BTCUSDT", "")
	post := "POST " + spotPath + " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	heads := []string{
		"GET " + spotPath + " HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"HEAD " + spotPath + " HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"GET " + spotPath + " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET " + spotPath + " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nIf-None-Match: " + spotGz + "\r\n\r\n",
		"GET " + spotPath + " HTTP/1.1\r\nHost: x\r\naccept-encoding: gzip\r\nif-none-match: W/" + spotGz + "\r\n\r\n",
		"HEAD " + spotPath + " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nIf-None-Match: " + spotGz + "\r\n\r\n",
		"GET " + usdmPath + " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0\r\n\r\n",
		"GET " + usdmPath + " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip\r\nAccept-Encoding: deflate\r\n\r\n",
		"GET " + coinmPath + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + spotPath + "?symbol=BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + spotPath + "?symbol=BTCUSDT HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + query + "\r\n\r\n",
		"GET " + spotPath + "?symbol=NOPE HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + spotPath + "?symbol=%ZZ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + spotPath + "?symbols=%5B%22BTCUSDT%22,%22ETHUSDT%22%5D HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + spotPath + `?symbols=["BTCUSDT","ETHUSDT"] HTTP/1.1` + "\r\nHost: x\r\n\r\n",
		"GET " + spotPath + "?bogus=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + spotPath + "? HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + spotPath + "?symbol=BTCUSDT#frag HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + sym + "\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"a\", " + sym + "\r\n\r\n",
		"GET /v1/symbols/spot/btcusdt HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/usdm/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/NOPE HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/nope/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/coinm/BTCUSD_PERP HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT/rules HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols//BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/BTC%2FUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"DELETE /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		post,
		// Heads the lane leaves to net/http, or reads as it does.
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.0\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\nHost: x\n\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nExpect: nothing\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("a", 5000) + "\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nX-Huge: " + strings.Repeat("a", 70000) + "\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHo",
		"GET /v1/symbols/spot/BTC",
		"GET http://x/v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET  /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"\r\nGET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"get /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nAccept: */*\r\nX-MBX-APIKEY: k\r\nx-custom-thing: 1\r\nX-Custom-Thing: 2\r\n\r\n",
		"GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Spaces:   \t v \t \r\n\r\n",
		"",
		"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
	}
	lanes := func(raw string) (answered, handed uint64) {
		a0, h0 := tw.laneSrv.Counts()
		tw.same(t, raw)
		a1, h1 := tw.laneSrv.Counts()
		return a1 - a0, h1 - h0
	}
	if a, h := lanes(heads[0]); a != 2 || h != 0 {
		t.Errorf("a GET of spot and the end: the lane answered %d, handed over %d connections; want 2 and 0", a, h)
	}
	if a, h := lanes(post); a != 0 || h != 1 {
		t.Errorf("a POST: the lane answered %d, handed over %d; want 0 and 1", a, h)
	}
	for _, head := range heads {
		tw.same(t, head)
		tw.same(t, head+probe) // pipelined
		tw.same(t, strings.Replace(head, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)+probe)
		tw.same(t, strings.Replace(head, "\r\n\r\n", "\r\nConnection: keep-alive, close\r\n\r\n", 1)+probe)
	}
	// Many answers on one connection, the large ones among them.
	tw.same(t, strings.Repeat(heads[0]+heads[2]+heads[18]+heads[20], 4))
	// One connection's requests with the same headers, then other values,
	// then fewer headers: each request sees its own.
	symInm := func(tag string) string {
		return "GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + tag + "\r\n\r\n"
	}
	tw.same(t, symInm(sym)+symInm(sym)+symInm(`"other"`)+symInm(sym)+heads[18]+symInm(sym)+strings.Replace(heads[18], "Host: x", "Host: y", 1))
}

// A connection the lane has answered and then hands over goes on with
// net/http, which answers what the lane did not.
func TestFastLane_HandsOverMidConnection(t *testing.T) {
	tw := newLaneTwins(t)
	raw := "GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /v1/symbols/spot/ETHUSDT HTTP/1.1\r\nHost: x\r\n\r\n"
	out := exchange(t, tw.lane, raw)
	if n := bytes.Count(out, []byte("HTTP/1.1 200 OK\r\n")); n != 4 {
		t.Errorf("four requests on one connection, the second for net/http: %d answers 200, want 4:\n%.600q", n, out)
	}
	tw.same(t, raw)
	testutil.WaitFor(t, 5*time.Second, "every connection closed", func() bool { return tw.states.Load() == 0 })
	answered, handed := tw.laneSrv.Counts()
	metrics := string(exchange(t, tw.plain, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
	for _, want := range []string{
		fmt.Sprintf("symcache_fast_lane_answers_total %d\n", answered),
		fmt.Sprintf("symcache_fast_lane_handovers_total %d\n", handed),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", strings.TrimSpace(want), grep(metrics, "symcache_fast_lane"))
		}
	}
}

// Shutdown closes idle connections, lets one being answered finish with
// Connection: close, and returns once all are closed.
func TestFastLane_Shutdown(t *testing.T) {
	tw := newLaneTwins(t)
	idle, err := net.Dial("tcp", tw.lane)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n")
	br := make([]byte, 64<<10)
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.Read(br); err != nil || !bytes.HasPrefix(br[:n], []byte("HTTP/1.1 200 OK")) {
		t.Fatalf("first answer: %q, %v", br[:n], err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tw.laneSrv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if _, err := idle.Read(br); err == nil {
		t.Error("an idle connection is still open after Shutdown")
	}
	if _, err := net.DialTimeout("tcp", tw.lane, time.Second); err == nil {
		t.Error("the lane still accepts connections after Shutdown")
	}
	if n := tw.states.Load(); n != 0 {
		t.Errorf("%d connections open after Shutdown, by ConnState", n)
	}
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }

// The lane closes a connection idle for longer than IdleTimeout, and one
// whose request head takes longer than ReadHeaderTimeout, as net/http.
func TestFastLane_Timeouts(t *testing.T) {
	tw := newLaneTwins(t, func(srv *http.Server) {
		srv.IdleTimeout, srv.ReadHeaderTimeout, srv.ReadTimeout = 200*time.Millisecond, 200*time.Millisecond, 300*time.Millisecond
	})
	for _, tt := range []struct{ name, raw string }{
		{"idle after an answer", "GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"idle before a request", ""},
		{"a head begun, never ended", "GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n"},
	} {
		c, err := net.Dial("tcp", tw.lane)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, tt.raw)
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) // far beyond the server's timeouts and slack
		out, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Errorf("%s: the lane did not close the connection: %v", tt.name, err)
		}
		if answered := bytes.HasPrefix(out, []byte("HTTP/1.1 200 OK")); answered != strings.HasSuffix(tt.raw, "\r\n\r\n") {
			t.Errorf("%s: the lane sent %.60q", tt.name, out)
		}
	}
}

// FuzzFastLane: whatever a client sends, the fast lane sends what net/http
// sends (Date aside), and closes the connection when net/http does. The
// seed corpus in testdata/fuzz/FuzzFastLane holds requests of each kind
// the lane answers or hands over.
func FuzzFastLane(f *testing.F) {
	tw := newLaneTwins(f)
	f.Fuzz(func(t *testing.T, raw string) {
		tw.same(t, raw)
	})
}

// A client that sends its request and closes its sending side, while the
// answer needs Binance, gets no answer rather than an empty 200 (net/http
// cancels the request when it reads the end); the fast lane, which does
// not watch the connection, answers it. Redis does not matter here.
func TestHalfClosedClient_NoEmpty200(t *testing.T) {
	w := newWorld(t, false)
	w.upstream.Set(spotPath, fetchtest.Response{Body: fixtures.Read(t, "binance/spot_exchangeinfo.json"), Delay: 300 * time.Millisecond})
	s, err := httpapi.New(w.withTiers(httpapi.Config{Cache: w.cache(), Logger: discard(), Now: w.clock.Now}))
	if err != nil {
		t.Fatal(err)
	}
	for _, lane := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: s, ErrorLog: discardLog()}
		if lane {
			fl, err := httpapi.NewFastLane(srv)
			if err != nil {
				t.Fatal(err)
			}
			go fl.Serve(ln)
			defer fl.Close()
		} else {
			go srv.Serve(ln)
			defer srv.Close()
		}
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET "+spotPath+"?symbol=BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n")
		c.(*net.TCPConn).CloseWrite()
		out, _ := io.ReadAll(c)
		switch {
		case !lane && len(out) != 0:
			t.Errorf("net/http, half-closed client: sent %.120q, want nothing", out)
		case lane && !bytes.HasPrefix(out, []byte("HTTP/1.1 200 OK\r\n")) || bytes.Contains(out, []byte("Content-Length: 0\r\n")):
			t.Errorf("fast lane, half-closed client: sent %.120q, want the answer", out)
		}
		w.clock.Advance(time.Hour) // the next client needs Binance again
	}
}

// A head longer than the server's MaxHeaderBytes goes to net/http, which
// applies its own limit.
func TestFastLane_MaxHeaderBytes(t *testing.T) {
	tw := newLaneTwins(t, func(srv *http.Server) { srv.MaxHeaderBytes = 200 })
	long := "GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 300) + "\r\n\r\n"
	_, h0 := tw.laneSrv.Counts()
	tw.same(t, long)
	if _, h1 := tw.laneSrv.Counts(); h1-h0 != 1 {
		t.Errorf("a %d-byte head with MaxHeaderBytes 200: %d connections handed to net/http, want 1", len(long), h1-h0)
	}
}
