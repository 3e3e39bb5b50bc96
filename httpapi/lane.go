package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FastLane serves a Server's busiest requests on its own, without
// net/http, and every other connection with an http.Server.
//
// Most of the time an answer from the cache takes is net/http's work per
// request: reading the head into a fresh header map, a goroutine that
// watches the connection while the handler runs, three or four deadlines,
// sorting and writing the headers through two buffers. The lane reads a
// request head in place and, when it is a plain GET or HEAD of a path the
// Server answers without echo's router (a market's exchangeInfo path and
// /v1/symbols/{market}/{symbol}; see parseLaneRequest for what "plain"
// means), runs the same handler with a reused request and a writer that
// frames the answer as net/http would, in one system call. The first
// request that is anything else hands the connection, with what was read
// of it, to the http.Server for good: its errors, limits and every other
// route stay net/http's and echo's.
//
// The lane takes the http.Server's ReadHeaderTimeout, ReadTimeout and
// IdleTimeout (read deadlines are kept as the Listener keeps write ones:
// up to a second late), its ErrorLog, BaseContext, ConnContext and
// ConnState: a connection is StateNew, StateActive and StateIdle in the
// lane, StateHijacked when it is handed over (net/http then reports it
// again, from StateNew), StateClosed when the lane closes it. Connections
// get Listener's write deadlines.
type FastLane struct {
	s   *Server
	srv *http.Server

	handoff chan net.Conn // to the http.Server, through handoffListener
	hl      *handoffListener

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*laneConn]struct{}
	closing atomic.Bool
	done    chan struct{} // closed when closing starts
	wg      sync.WaitGroup

	answered, handedOver atomic.Uint64
}

// Counts returns how many requests the lane has answered itself, and how
// many connections it has handed to the http.Server (the Server's metrics
// symcache_fast_lane_answers_total and symcache_fast_lane_handovers_total
// count them for every lane of the Server).
func (f *FastLane) Counts() (answered, handedOver uint64) {
	return f.answered.Load(), f.handedOver.Load()
}

// NewFastLane returns a FastLane for srv, whose Handler must be a *Server.
func NewFastLane(srv *http.Server) (*FastLane, error) {
	s, ok := srv.Handler.(*Server)
	if !ok {
		return nil, fmt.Errorf("httpapi: fast lane: the http.Server's Handler is a %T, not an *httpapi.Server", srv.Handler)
	}
	f := &FastLane{s: s, srv: srv, handoff: make(chan net.Conn), conns: map[*laneConn]struct{}{}, done: make(chan struct{})}
	f.hl = &handoffListener{f: f, closed: make(chan struct{})}
	return f, nil
}

// Serve accepts connections on ln and serves them until Shutdown or
// Close, then returns http.ErrServerClosed; it returns another error when
// ln fails for good (after closing the lane). Like http.Server.Serve, it
// backs off on temporary accept errors.
func (f *FastLane) Serve(ln net.Listener) error {
	f.mu.Lock()
	if f.ln != nil || f.closing.Load() {
		f.mu.Unlock()
		return errors.New("httpapi: fast lane: Serve called twice or after Close")
	}
	f.ln = ln
	f.hl.addr = ln.Addr()
	f.mu.Unlock()
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(f.hl) }()

	base := context.Background()
	if f.srv.BaseContext != nil {
		if base = f.srv.BaseContext(ln); base == nil {
			panic("BaseContext returned a nil context")
		}
	}
	base = context.WithValue(base, http.ServerContextKey, f.srv)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if f.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				f.logf("http: Accept error: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			f.Close()
			<-served
			return err
		}
		backoff = 0
		lc := f.track(c)
		if lc == nil {
			c.Close()
			continue
		}
		ctx := context.WithValue(base, http.LocalAddrContextKey, c.LocalAddr())
		if f.srv.ConnContext != nil {
			if ctx = f.srv.ConnContext(ctx, lc.conn); ctx == nil {
				panic("ConnContext returned nil")
			}
		}
		go lc.serve(ctx)
	}
}

// Shutdown stops the lane as http.Server.Shutdown stops a server: no new
// connections, idle ones closed, each busy one closed after its answer
// (which says Connection: close), and the http.Server shut down with the
// connections handed to it. It returns when all are closed, or ctx's
// error when it ends first.
func (f *FastLane) Shutdown(ctx context.Context) error {
	f.startClosing()
	srvDone := make(chan error, 1)
	go func() { srvDone <- f.srv.Shutdown(ctx) }()
	laneDone := make(chan struct{})
	go func() { f.wg.Wait(); close(laneDone) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		f.closeIdle()
		select {
		case <-laneDone:
			return <-srvDone
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the lane's listener and every connection at once, and the
// http.Server (http.Server.Close).
func (f *FastLane) Close() error {
	f.startClosing()
	f.mu.Lock()
	for lc := range f.conns {
		lc.conn.Close()
	}
	f.mu.Unlock()
	return f.srv.Close()
}

func (f *FastLane) startClosing() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Swap(true) {
		return
	}
	close(f.done)
	if f.ln != nil {
		f.ln.Close()
	}
	f.hl.Close()
}

func (f *FastLane) closeIdle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for lc := range f.conns {
		if lc.idle.Load() {
			lc.conn.Close()
		}
	}
}

func (f *FastLane) track(c net.Conn) *laneConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		return nil
	}
	lc := newLaneConn(f, c)
	f.conns[lc] = struct{}{}
	f.wg.Add(1)
	f.setState(lc.conn, http.StateNew)
	return lc
}

// untrack forgets lc, and reports st unless it is StateHijacked (reported
// before the handover) or negative.
func (f *FastLane) untrack(lc *laneConn, st http.ConnState) {
	f.mu.Lock()
	delete(f.conns, lc)
	f.mu.Unlock()
	if st >= 0 && st != http.StateHijacked {
		f.setState(lc.conn, st)
	}
	f.wg.Done()
}

func (f *FastLane) setState(c net.Conn, st http.ConnState) {
	if f.srv.ConnState != nil {
		f.srv.ConnState(c, st)
	}
}

func (f *FastLane) logf(format string, args ...any) {
	if f.srv.ErrorLog != nil {
		f.srv.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// laneBuffer is the size of a connection's read buffer: a request head
// larger than that goes to net/http.
const laneBuffer = 4 << 10

// laneConn is one connection the lane serves.
type laneConn struct {
	lane *FastLane
	conn *lazyConn
	br   *bufio.Reader
	idle atomic.Bool // waiting for a request: Shutdown may close it

	readArmed time.Time // the read deadline in force; zero: none
	req       laneRequest
	// The request being answered, as strings: its target (path, query),
	// route and Host; and the header values kept for the next requests.
	target, path, query, host string
	rt                        route
	pp                        pathParams
	values                    map[string][]string
	hr                        *http.Request
	url                       url.URL
	w                         laneWriter
}

func newLaneConn(f *FastLane, c net.Conn) *laneConn {
	lz, ok := c.(*lazyConn)
	if !ok {
		lz = &lazyConn{Conn: c}
	}
	lc := &laneConn{lane: f, conn: lz}
	lc.w = laneWriter{lc: lc, hdr: http.Header{}, out: make([]byte, 0, 2<<10)}
	return lc
}

func (lc *laneConn) serve(ctx context.Context) {
	f := lc.lane
	state := http.StateClosed
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			const size = 64 << 10
			buf := make([]byte, size)
			buf = buf[:runtime.Stack(buf, false)]
			f.logf("http: panic serving %v: %v\n%s", lc.conn.RemoteAddr(), p, buf)
		}
		cancel()
		if state == http.StateClosed {
			lc.conn.Close()
		}
		f.untrack(lc, state)
	}()
	lc.br = bufio.NewReaderSize(lc.conn, laneBuffer)
	lc.hr = (&http.Request{
		Method: http.MethodGet, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, RemoteAddr: lc.conn.RemoteAddr().String(),
	}).WithContext(ctx)
	lc.hr.URL = &lc.url
	for {
		if f.closing.Load() {
			return
		}
		lc.idle.Store(true)
		lc.armIdle()
		if _, err := lc.br.Peek(1); err != nil {
			return
		}
		lc.idle.Store(false)
		f.setState(lc.conn, http.StateActive)
		n, ok := lc.readHead()
		if !ok {
			return
		}
		if n == 0 {
			state = lc.handOver()
			return
		}
		lc.fill()
		lc.br.Discard(n)
		lc.w.reset(lc.req.head, lc.hr.Close || f.closing.Load())
		f.s.serve(&lc.w, lc.hr, lc.rt, lc.pp)
		f.answered.Add(1)
		f.s.h.laneAnswers.Inc()
		if !lc.w.finish() {
			return
		}
		f.setState(lc.conn, http.StateIdle)
	}
}

// handOver gives the connection, with what lc read of it, to the
// http.Server, and returns the state for untrack: StateHijacked is
// reported here, before net/http reports the connection as new.
func (lc *laneConn) handOver() http.ConnState {
	f := lc.lane
	f.setState(lc.conn, http.StateHijacked)
	select {
	case f.handoff <- &handoffConn{lazyConn: lc.conn, br: lc.br}:
		f.handedOver.Add(1)
		f.s.h.laneHandovers.Inc()
		return http.StateHijacked
	case <-f.done:
		lc.conn.Close()
		return -1 // reported already
	}
}

// readHead reads until the buffer holds a whole request head, and returns
// its length if the lane answers it, 0 if net/http is to; ok is false
// when the connection failed or timed out first.
func (lc *laneConn) readHead() (n int, ok bool) {
	armed := false
	for {
		buf, _ := lc.br.Peek(lc.br.Buffered())
		n, more := parseLaneRequest(buf, &lc.req)
		if max := lc.lane.srv.MaxHeaderBytes; n > 0 && max > 0 && n > max {
			return 0, true // net/http's limit, however small, is net/http's to apply
		}
		if n > 0 {
			lc.target = reuse(lc.target, lc.req.target)
			path, query, _ := strings.Cut(lc.target, "?")
			var ok bool
			if lc.rt, lc.pp, ok = lc.lane.s.route(path); !ok {
				return 0, true
			}
			lc.path, lc.query = path, query
			return n, true
		}
		if !more || len(buf) == laneBuffer {
			return 0, true
		}
		if !armed {
			armed = true
			d := lc.lane.srv.ReadHeaderTimeout
			if d <= 0 {
				d = lc.lane.srv.ReadTimeout
			}
			if d > 0 {
				lc.readArmed = time.Now().Add(d)
				lc.conn.SetReadDeadline(lc.readArmed)
			}
		}
		if _, err := lc.br.Peek(len(buf) + 1); err != nil {
			return 0, false
		}
	}
}

// armIdle gives the wait for the next request the http.Server's idle
// timeout (or its ReadTimeout, as net/http), armed at most a second late
// so that a busy connection does not arm it for every request.
func (lc *laneConn) armIdle() {
	d := lc.lane.srv.IdleTimeout
	if d <= 0 {
		d = lc.lane.srv.ReadTimeout
	}
	if d <= 0 {
		if !lc.readArmed.IsZero() {
			lc.readArmed = time.Time{}
			lc.conn.SetReadDeadline(time.Time{})
		}
		return
	}
	want := time.Now().Add(d)
	if !lc.readArmed.Before(want) && !lc.readArmed.After(want.Add(deadlineSlack)) {
		return
	}
	lc.readArmed = want.Add(deadlineSlack)
	lc.conn.SetReadDeadline(lc.readArmed)
}

// fill makes lc.hr the request lc.req holds, as net/http reads it.
func (lc *laneConn) fill() {
	r, q := lc.hr, &lc.req
	if q.head {
		r.Method = http.MethodHead
	} else {
		r.Method = http.MethodGet
	}
	lc.url = url.URL{Path: lc.path, RawQuery: lc.query}
	r.Form, r.PostForm, r.MultipartForm = nil, nil, nil // what a handler may have parsed
	r.RequestURI = lc.target
	lc.host = reuse(lc.host, q.host)
	r.Host = lc.host
	r.Close = q.close
	h := r.Header
	clear(h)
	for _, kv := range q.headers {
		k := canonicalLaneKey(kv[0])
		if vs, ok := h[k]; ok {
			h[k] = append(vs, string(kv[1]))
			continue
		}
		// A client sends the same headers on every request of a
		// connection: their one-value slices are kept and given again.
		if vs, ok := lc.values[k]; ok && vs[0] == string(kv[1]) {
			h[k] = vs
			continue
		}
		vs := []string{string(kv[1])}
		if lc.values == nil {
			lc.values = make(map[string][]string)
		}
		if _, ok := lc.values[k]; ok || len(lc.values) < laneKeptValues {
			lc.values[k] = vs
		}
		h[k] = vs
	}
	// net/http's fixPragmaCacheControl.
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
}

// laneKeptValues bounds the header values a connection keeps for reuse.
const laneKeptValues = 32

// reuse returns old if it holds b's bytes, else b as a new string: a
// connection's requests repeat their target and Host.
func reuse(old string, b []byte) string {
	if old == string(b) {
		return old
	}
	return string(b)
}

// laneKeys are header names clients send often, by their lower case: the
// canonical key without an allocation.
var laneKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Cache-Control", "Connection",
		"If-Modified-Since", "If-None-Match", "Pragma", "Referer", "User-Agent", "X-Mbx-Apikey", "X-Request-Id",
		"Content-Type", "Origin", "Authorization", "Cookie"} {
		m[string(bytesLower(nil, k))] = k
	}
	return m
}()

func canonicalLaneKey(name []byte) string {
	var scratch [32]byte
	if len(name) <= len(scratch) {
		if k, ok := laneKeys[string(bytesLower(scratch[:0], string(name)))]; ok {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

func bytesLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// handoffConn is a connection handed to net/http: what the lane read and
// did not answer is read first.
type handoffConn struct {
	*lazyConn
	br *bufio.Reader
}

func (c *handoffConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.lazyConn.Read(p)
}

// handoffListener gives the http.Server the connections the lane hands
// over.
type handoffListener struct {
	f      *FastLane
	addr   net.Addr
	once   sync.Once
	closed chan struct{}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.f.handoff:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
