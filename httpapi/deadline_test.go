package httpapi_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
)

// smallBuffers gives every accepted connection a small send buffer. On
// loopback the kernel would otherwise take megabytes of an answer from a
// client that reads nothing, and the server's write would not block.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}

// deadlineServer serves a spot cache through httpapi configured with rate
// and grace, logging to log, on a listener with small send buffers (then
// given to wrap, if any).
func deadlineServer(t *testing.T, rate int64, grace time.Duration, log *slog.Logger, wrap ...func(net.Listener) net.Listener) *server {
	t.Helper()
	w := newWorld(t, false)
	h, err := httpapi.New(w.withTiers(httpapi.Config{Cache: w.cache(exchangeinfo.Spot), Logger: log, Now: w.clock.Now, MinClientRate: rate, WriteGrace: grace}))
	if err != nil {
		t.Fatalf("httpapi.New = %v", err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = smallBuffers{srv.Listener}
	for _, f := range wrap {
		srv.Listener = f(srv.Listener)
	}
	srv.Start()
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(func() { tr.CloseIdleConnections(); srv.Close() })
	return &server{tb: t, url: srv.URL, client: &http.Client{Transport: tr}}
}

func slowClients(t *testing.T, srv *server) float64 {
	t.Helper()
	n, ok := scrape(t, srv)["symcache_slow_clients_total"]
	if !ok {
		t.Fatal("GET /metrics has no symcache_slow_clients_total")
	}
	return n
}

// TestWriteDeadline_SlowClient: a client reading the 3.7 MB spot answer a
// byte a second is cut off once the answer's time (the grace plus its size
// at the least rate) is up, and counted; a client reading at full speed on
// the same server gets the whole answer and is not counted. So on a plain
// listener, and on one from httpapi.Listener (cut off up to a second later).
func TestWriteDeadline_SlowClient(t *testing.T) {
	t.Run("net", func(t *testing.T) { testSlowClient(t, 0) })
	t.Run("Listener", func(t *testing.T) { testSlowClient(t, time.Second, httpapi.Listener) })
}

func testSlowClient(t *testing.T, slack time.Duration, wrap ...func(net.Listener) net.Listener) {
	const rate, grace = 2 << 20, time.Second
	var logs testutil.LogBuffer
	srv := deadlineServer(t, rate, grace, logs.Logger(), wrap...)
	want := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	deadline := grace + time.Duration(float64(len(want))/rate*float64(time.Second)) // 2.8 s

	// A normal client, which also loads the cache.
	resp, body := srv.get(spotPath, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("GET %s = %d, %d bytes; want 200 and the %d bytes of the fixture", spotPath, resp.StatusCode, len(body), len(want))
	}
	if n := slowClients(t, srv); n != 0 {
		t.Fatalf("symcache_slow_clients_total after a normal client = %v, want 0", n)
	}

	conn, err := net.Dial("tcp", srv.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	sent := time.Now()
	if _, err := io.WriteString(conn, "GET "+spotPath+" HTTP/1.1\r\nHost: symcache\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got := 0
	var cut time.Duration
	for i := 0; ; i++ {
		if i%10 == 0 { // a byte a second
			conn.SetReadDeadline(time.Now().Add(time.Second))
			n, err := conn.Read(make([]byte, 1))
			got += n
			if err != nil {
				t.Fatalf("read byte %d: %v, want a byte", got, err)
			}
		}
		if slowClients(t, srv) == 1 {
			cut = time.Since(sent)
			break
		}
		if time.Since(sent) > deadline+slack+5*time.Second {
			t.Fatalf("symcache_slow_clients_total still 0 %v after the request, want 1 after about %v", time.Since(sent), deadline)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cut < deadline-100*time.Millisecond {
		t.Errorf("slow client cut off %v after its request, want not before the answer's deadline, %v", cut, deadline)
	}
	t.Logf("slow client cut off after %v (deadline %v), having read %d bytes", cut, deadline, got)

	// The connection is closed: what the kernel holds comes (let it come
	// faster), then the end.
	conn.(*net.TCPConn).SetReadBuffer(1 << 20)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.Copy(io.Discard, bufio.NewReader(conn))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open 10 s after the cut: %v", err)
	}
	if total := int64(got) + rest; total >= int64(len(want)) {
		t.Errorf("slow client received %d bytes in all, want fewer than the %d-byte body", total, len(want))
	}

	if n := slowClients(t, srv); n != 1 {
		t.Errorf("symcache_slow_clients_total = %v, want 1", n)
	}
	if n := logs.Count(t, "level", "WARN", "msg", "client too slow: answer cut off", "path", spotPath); n != 1 {
		t.Errorf("warnings of the cut = %d, want 1:\n%s", n, logs.String())
	}
}

// TestWriteDeadline_KeepAlive: an answer's deadline does not outlive it: a
// kept-alive connection serves its next request after the last one's
// deadline has passed.
func TestWriteDeadline_KeepAlive(t *testing.T) {
	srv := deadlineServer(t, 64<<20, 100*time.Millisecond, discard())
	reused := 0
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			reused++
		}
	}}
	for i, path := range []string{"/healthz", "/v1/symbols/spot/BTCUSDT", "/healthz"} {
		time.Sleep(300 * time.Millisecond) // past the last answer's deadline
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, srv.url+path, nil)
		resp, err := srv.client.Do(req)
		if err != nil {
			t.Fatalf("GET %s #%d on a kept-alive connection: %v", path, i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, resp.StatusCode)
		}
	}
	if reused != 2 {
		t.Errorf("requests on a reused connection = %d, want 2", reused)
	}
	if n := slowClients(t, srv); n != 0 {
		t.Errorf("symcache_slow_clients_total = %v, want 0", n)
	}
}
