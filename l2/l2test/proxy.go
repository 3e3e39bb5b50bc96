package l2test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// chunkSize is the most a Proxy reads at once in either direction.
const chunkSize = 32 << 10

// Proxy is a loopback TCP proxy in front of a Redis server, to make it slow,
// stalled or unreachable while a test runs. It starts passing bytes through;
// [Proxy.Delay], [Proxy.Stall], [Proxy.Drop] and [Proxy.Resume] switch its mode
// at any time, for current and new connections alike. Its goroutines end, and
// its connections close, in t.Cleanup.
type Proxy struct {
	t      testing.TB
	target string
	addr   string
	wg     sync.WaitGroup

	mu      sync.Mutex
	ln      net.Listener // nil while dropped or closed
	delay   time.Duration
	stalled bool
	changed chan struct{} // closed, and replaced, on every mode change
	links   map[*link]struct{}
	closed  bool
}

// link is one proxied connection: the client's and the server's ends.
type link struct {
	client, server net.Conn
	done           chan struct{} // closed by close
	once           sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.done)
		l.client.Close()
		l.server.Close()
	})
}

// chunk is bytes read from one end, and when.
type chunk struct {
	b  []byte
	at time.Time
}

// Proxy returns a Proxy in front of s, on a free 127.0.0.1 port.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	return NewProxy(t, s.Addr())
}

// NewProxy returns a Proxy in front of the TCP address target, on a free
// 127.0.0.1 port. Each connection it accepts is a new connection to target;
// when target cannot be reached, the accepted connection is closed.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("l2test: proxy listen: %v", err)
	}
	p := &Proxy{
		t:       t,
		target:  target,
		addr:    ln.Addr().String(),
		ln:      ln,
		changed: make(chan struct{}),
		links:   make(map[*link]struct{}),
	}
	t.Cleanup(p.close)
	p.serve(ln)
	return p
}

// Addr returns the proxy's address, "127.0.0.1:PORT". It stays the same after
// a Drop and Resume.
func (p *Proxy) Addr() string { return p.addr }

// URL returns the proxy's URL, "redis://127.0.0.1:PORT/0", for redis.ParseURL.
func (p *Proxy) URL() string { return "redis://" + p.addr + "/0" }

// Client returns a new client of the server through the proxy, closed in
// t.Cleanup. Its context deadlines bound socket I/O (ContextTimeoutEnabled),
// as symcache's own clients do.
func (p *Proxy) Client(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: p.addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Delay forwards each chunk of bytes, in both directions, d after the proxy
// read it (a one-way latency of d): a slow Redis, or a slow network.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay, p.stalled = d, false
	p.notify()
}

// Stall keeps accepting connections and reading what either end sends, but
// forwards nothing until [Proxy.Resume]: a Redis that hangs. What was read
// meanwhile is forwarded, in order, on Resume (unless Drop discards it), as a
// network that was stuck would deliver it.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
	p.notify()
}

// Drop closes every current connection, discarding what they hold, and
// refuses new ones (the port is closed) until [Proxy.Resume]: a Redis that
// went away.
func (p *Proxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for l := range p.links {
		l.close()
	}
}

// Resume passes bytes through again, without delay, and after a Drop listens
// again on the same address. Call it from the test's goroutine: if the port
// cannot be had again, it fails the test.
func (p *Proxy) Resume() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.delay, p.stalled = 0, false
	p.notify()
	if p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.t.Fatalf("l2test: proxy listen again on %s: %v", p.addr, err)
		}
		p.ln = ln
		p.serve(ln)
	}
}

// notify wakes every writer waiting for a mode change. Callers hold p.mu.
func (p *Proxy) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// close stops everything and waits for every goroutine.
func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Drop()
	p.wg.Wait()
}

// serve accepts connections on ln until it is closed.
func (p *Proxy) serve(ln net.Listener) {
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Drop or close
			}
			p.wg.Go(func() { p.handle(ln, c) })
		}
	})
}

// handle connects the client c, accepted on ln, to the target and pumps bytes
// both ways until either end closes or the proxy drops it.
func (p *Proxy) handle(ln net.Listener, c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close() // Redis is down: the client sees the connection close
		return
	}
	l := &link{client: c, server: s, done: make(chan struct{})}
	p.mu.Lock()
	if p.ln != ln { // dropped while dialing
		p.mu.Unlock()
		l.close()
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { p.pump(l, c, s) })
	wg.Go(func() { p.pump(l, s, c) })
	wg.Wait()
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// pump copies src to dst through the proxy's mode, and closes the link when
// src has ended and what it sent has been forwarded.
func (p *Proxy) pump(l *link, src, dst net.Conn) {
	chunks := make(chan chunk, 16) // then the reader blocks: TCP backpressure
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(chunks)
		for {
			b := make([]byte, chunkSize)
			n, err := src.Read(b)
			if n > 0 {
				select {
				case chunks <- chunk{b[:n], time.Now()}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	defer wg.Wait()
	defer l.close() // ends the reader too, if dst failed
	for c := range chunks {
		if !p.wait(l, c.at) {
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}

// wait returns when a chunk read at t may be forwarded (true), or when the
// link is closed (false).
func (p *Proxy) wait(l *link, at time.Time) bool {
	for {
		p.mu.Lock()
		stalled, due, changed := p.stalled, at.Add(p.delay), p.changed
		p.mu.Unlock()
		if !stalled && !time.Now().Before(due) {
			return true
		}
		var timer *time.Timer
		var expired <-chan time.Time
		if !stalled {
			timer = time.NewTimer(time.Until(due))
			expired = timer.C
		}
		select {
		case <-l.done:
		case <-changed:
		case <-expired:
		}
		if timer != nil {
			timer.Stop()
		}
		select {
		case <-l.done:
			return false
		default: // look again: the mode changed or the delay passed
		}
	}
}
