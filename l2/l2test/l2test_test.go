package l2test_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/symcache/symcache/l2/l2test"
)

func TestStart(t *testing.T) {
	srv := l2test.Start(t)
	if got := srv.Addr(); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("Addr() = %q, want 127.0.0.1:PORT", got)
	}
	if got, want := srv.URL(), "redis://"+srv.Addr()+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q) = %v, want nil", srv.URL(), err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("Set = %v, want nil", err)
	}
	if got, err := srv.Client(t).Get(ctx, "k").Result(); got != "v" || err != nil {
		t.Errorf("Get(%q) = %q, %v, want %q, nil", "k", got, err, "v")
	}
	// No persistence.
	for param, want := range map[string]string{"save": "", "appendonly": "no"} {
		got, err := rdb.ConfigGet(ctx, param).Result()
		if err != nil || got[param] != want {
			t.Errorf("CONFIG GET %s = %q, %v, want %q", param, got[param], err, want)
		}
	}
}

func TestStart_twoServers(t *testing.T) {
	a, b := l2test.Start(t), l2test.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	ctx := context.Background()
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Client(t).Exists(ctx, "k").Result(); n != 0 || err != nil {
		t.Errorf("Exists(%q) on the other server = %d, %v, want 0, nil", "k", n, err)
	}
}

func TestServer_StopRestart(t *testing.T) {
	srv := l2test.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	srv.Stop() // idempotent
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("Ping after Stop = nil, want an error")
	}

	srv.Restart(t)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Ping after Restart = %v, want nil", err)
	}
	if n, err := rdb.Exists(ctx, "k").Result(); n != 0 || err != nil {
		t.Errorf("Exists(%q) after Restart = %d, %v, want 0, nil (empty)", "k", n, err)
	}
}

// rawPing sends PING on c and returns the answer line, or an error if none
// came within wait.
func rawPing(t *testing.T, c net.Conn, wait time.Duration) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatalf("write PING: %v", err)
	}
	return readLine(c, wait)
}

func readLine(c net.Conn, wait time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(wait))
	return bufio.NewReader(c).ReadString('\n')
}

// closedByPeer reports whether err says the other end closed the connection
// (a reset, when it closed with bytes unread).
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func dialProxy(t *testing.T, p *l2test.Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestProxy(t *testing.T) {
	srv := l2test.Start(t)
	p := srv.Proxy(t)
	if got := p.Addr(); !strings.HasPrefix(got, "127.0.0.1:") || got == srv.Addr() {
		t.Errorf("Addr() = %q, want 127.0.0.1:PORT other than the server's %s", got, srv.Addr())
	}
	if got, want := p.URL(), "redis://"+p.Addr()+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	ctx := context.Background()
	rdb := p.Client(t)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("Set through the proxy = %v, want nil", err)
	}
	if got, err := srv.Client(t).Get(ctx, "k").Result(); got != "v" || err != nil {
		t.Errorf("Get(%q) on the server = %q, %v, want %q, nil", "k", got, err, "v")
	}
	// A value bigger than a chunk, both ways.
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	if err := rdb.Set(ctx, "big", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rdb.Get(ctx, "big").Result(); got != big || err != nil {
		t.Errorf("Get(%q) through the proxy = %d bytes, %v, want %d bytes, nil", "big", len(got), err, len(big))
	}
}

func TestProxy_Stall(t *testing.T) {
	srv := l2test.Start(t)
	p := srv.Proxy(t)
	held := dialProxy(t, p) // connected before the stall
	if got, err := rawPing(t, held, 5*time.Second); got != "+PONG\r\n" || err != nil {
		t.Fatalf("PING through the proxy = %q, %v, want +PONG", got, err)
	}

	p.Stall()
	if got, err := rawPing(t, held, 300*time.Millisecond); err == nil {
		t.Errorf("PING while stalled = %q, want no answer", got)
	}
	fresh := dialProxy(t, p) // accepted while stalled, but silent
	if got, err := rawPing(t, fresh, 300*time.Millisecond); err == nil {
		t.Errorf("PING on a new connection while stalled = %q, want no answer", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Client(t).Ping(ctx).Err(); err == nil {
		t.Error("go-redis Ping while stalled = nil, want an error")
	}
	if err := srv.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Errorf("Ping on the server itself = %v, want nil (only the proxy stalls)", err)
	}

	// What was held is delivered on Resume, in order.
	p.Resume()
	if got, err := readLine(held, 5*time.Second); got != "+PONG\r\n" || err != nil {
		t.Errorf("held PING after Resume = %q, %v, want +PONG", got, err)
	}
	if got, err := readLine(fresh, 5*time.Second); got != "+PONG\r\n" || err != nil {
		t.Errorf("held PING on the new connection after Resume = %q, %v, want +PONG", got, err)
	}
	if err := p.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Errorf("go-redis Ping after Resume = %v, want nil", err)
	}
}

func TestProxy_Delay(t *testing.T) {
	srv := l2test.Start(t)
	p := srv.Proxy(t)
	c := dialProxy(t, p)
	const d = 150 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	if got, err := rawPing(t, c, 10*time.Second); got != "+PONG\r\n" || err != nil {
		t.Fatalf("PING with a delay = %q, %v, want +PONG", got, err)
	}
	if rtt := time.Since(start); rtt < 2*d { // a lower bound: timers never fire early
		t.Errorf("PING round trip with Delay(%v) = %v, want at least %v", d, rtt, 2*d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d/2)
	defer cancel()
	if err := p.Client(t).Ping(ctx).Err(); err == nil {
		t.Errorf("go-redis Ping within %v through Delay(%v) = nil, want an error", d/2, d)
	}
	p.Resume()
	if err := p.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Errorf("go-redis Ping after Resume = %v, want nil", err)
	}
}

func TestProxy_Drop(t *testing.T) {
	srv := l2test.Start(t)
	p := srv.Proxy(t)
	c := dialProxy(t, p)
	rdb := p.Client(t)
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	p.Drop()
	if _, err := readLine(c, 5*time.Second); !closedByPeer(err) {
		t.Errorf("read on a connection the proxy dropped = %v, want EOF", err)
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Error("dial while dropped = nil error, want the connection refused")
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := rdb.Ping(tctx).Err(); err == nil {
		t.Error("go-redis Ping while dropped = nil, want an error")
	}

	p.Resume()
	if got, err := rawPing(t, dialProxy(t, p), 5*time.Second); got != "+PONG\r\n" || err != nil {
		t.Errorf("PING after Resume = %q, %v, want +PONG", got, err)
	}
	if err := p.Client(t).Ping(ctx).Err(); err != nil {
		t.Errorf("go-redis Ping after Resume = %v, want nil", err)
	}
}

// TestProxy_serverDown checks that the proxy passes Redis' absence on: a
// connection it accepts is closed when the server cannot be reached.
func TestProxy_serverDown(t *testing.T) {
	srv := l2test.Start(t)
	p := srv.Proxy(t)
	c := dialProxy(t, p)
	srv.Stop()
	if _, err := readLine(c, 5*time.Second); !closedByPeer(err) {
		t.Errorf("read through the proxy after Stop = %v, want EOF", err)
	}
	if got, err := rawPing(t, dialProxy(t, p), 5*time.Second); err == nil {
		t.Errorf("PING through the proxy with the server down = %q, want EOF", got)
	}
	srv.Restart(t)
	if got, err := rawPing(t, dialProxy(t, p), 5*time.Second); got != "+PONG\r\n" || err != nil {
		t.Errorf("PING after Restart = %q, %v, want +PONG", got, err)
	}
}

// TestProxy_cleanup checks that the proxy closes its connections when its
// test ends, even stalled ones holding data.
func TestProxy_cleanup(t *testing.T) {
	srv := l2test.Start(t)
	var c net.Conn
	t.Run("inner", func(t *testing.T) {
		p := srv.Proxy(t)
		var err error
		if c, err = net.Dial("tcp", p.Addr()); err != nil {
			t.Fatal(err)
		}
		p.Stall()
		c.Write([]byte("PING\r\n"))
	})
	defer c.Close()
	if got, err := readLine(c, 5*time.Second); !closedByPeer(err) {
		t.Errorf("read after the proxy's test ended = %q, %v, want EOF or a reset", got, err)
	}
}
