package httpapi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/httpapi"
)

// recordingConn records the write deadlines set on it.
type recordingConn struct {
	net.Conn // nil: only the methods below are called
	set      []time.Time
	writes   int
}

func (c *recordingConn) SetWriteDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

func (c *recordingConn) Write(b []byte) (int, error) { c.writes++; return len(b), nil }

type oneConn struct {
	net.Listener
	c net.Conn
}

func (l oneConn) Accept() (net.Conn, error) { return l.c, nil }

// TestListener_arms follows the write deadlines a connection from Listener
// gives its socket: armed a second late; kept while the deadline asked for
// is at most a second earlier; armed again when later, or earlier by more;
// never cleared but before a write with none.
func TestListener_arms(t *testing.T) {
	rec := &recordingConn{}
	c, err := httpapi.Listener(oneConn{c: rec}).Accept()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	past := time.Unix(1, 0)
	steps := []struct {
		set   time.Time // zero: a Write
		write bool
		armed []time.Time // what the socket got, in order
	}{
		{set: t0.Add(10 * time.Second), armed: []time.Time{t0.Add(11 * time.Second)}},
		{set: t0.Add(10*time.Second + time.Millisecond)},     // within the second: kept
		{set: t0.Add(10*time.Second + 900*time.Millisecond)}, // still
		{write: true},
		{set: time.Time{}}, // idle: not cleared yet
		{set: t0.Add(10*time.Second + 999*time.Millisecond)}, // next answer, still met
		{write: true},
		{set: t0.Add(11*time.Second + time.Millisecond), armed: []time.Time{t0.Add(12*time.Second + time.Millisecond)}}, // later than armed
		{set: t0.Add(70 * time.Second), armed: []time.Time{t0.Add(71 * time.Second)}},                                   // a large answer
		{set: t0.Add(12 * time.Second), armed: []time.Time{t0.Add(13 * time.Second)}},                                   // a small one after it: earlier by more than the slack
		{set: time.Time{}},
		{write: true, armed: []time.Time{{}}}, // a write with no deadline: cleared first
		{write: true},
		{set: past, armed: []time.Time{past.Add(time.Second)}}, // a deadline in the past still cuts at once
	}
	for i, st := range steps {
		before := len(rec.set)
		if st.write {
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		} else if err := c.SetWriteDeadline(st.set); err != nil {
			t.Fatal(err)
		}
		got := rec.set[before:]
		if len(got) != len(st.armed) {
			t.Fatalf("step %d: socket deadlines set %v, want %v", i, got, st.armed)
		}
		for j := range got {
			if !got[j].Equal(st.armed[j]) {
				t.Fatalf("step %d: socket deadlines set %v, want %v", i, got, st.armed)
			}
		}
	}
	if rec.writes != 4 {
		t.Errorf("%d writes reached the socket, want 4", rec.writes)
	}
}

// TestListener_slowClientAndIdle runs the write-deadline tests' server on a
// Listener with the sidecar's idle hook: a slow client is still cut off,
// kept-alive connections still serve after a deadline passed, and after an
// idle time longer than the last answer's deadline (plus the slack) a bad
// request still gets net/http's own 400, which needs the stale deadline
// cleared before that write.
func TestListener_slowClientAndIdle(t *testing.T) {
	w := newWorld(t, false)
	c := w.cache(exchangeinfo.Spot)
	if _, err := c.Get(t.Context(), exchangeinfo.Spot); err != nil { // loaded: the first answer has only its grace
		t.Fatal(err)
	}
	h, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Now: w.clock.Now, MinClientRate: 64 << 20, WriteGrace: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = httpapi.Listener(srv.Listener)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateIdle {
			c.SetWriteDeadline(time.Time{})
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	ask := func(req string) string {
		t.Helper()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", strings.Fields(req)[0:2], err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Status
	}
	if got := ask("GET /v1/symbols/spot/BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n"); got != "200 OK" {
		t.Fatalf("GET = %s, want 200 OK", got)
	}
	time.Sleep(1300 * time.Millisecond) // past the answer's deadline and the slack
	if got := ask("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); got != "200 OK" {
		t.Fatalf("GET after the deadline passed = %s, want 200 OK", got)
	}
	time.Sleep(1300 * time.Millisecond)
	if got := ask("GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"); !strings.HasPrefix(got, "400") {
		t.Fatalf("a malformed request after the deadline passed = %s, want net/http's 400", got)
	}
}
