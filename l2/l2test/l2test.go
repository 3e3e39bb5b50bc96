// Package l2test runs throwaway Redis servers for tests, as net/http/httptest
// runs HTTP servers: each [Start] is a real redis-server on a free 127.0.0.1
// port, without persistence, stopped when the test ends. [Server.Stop] and
// [Server.Restart] take it down and bring it back empty; a [Proxy] in front of
// it makes it slow, stalled or unreachable. [StartCluster] and [StartSentinel]
// run the other deployment forms the same way: a Redis Cluster of three
// masters, and a master with a replica and a sentinel that fails over to it
// ([StartSentinelWith] makes its servers ask for passwords).
package l2test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/symcache/symcache/internal/testutil"
)

// readyTimeout bounds how long Start and Restart wait for PING to answer.
const readyTimeout = 5 * time.Second

// Server is a throwaway redis-server on a free 127.0.0.1 TCP port, with no
// persistence (--save "" --appendonly no).
type Server struct {
	port int
	dir  string
	// args returns redis-server's arguments for port; nil means plainArgs.
	// Cluster nodes, replicas and sentinels set their own.
	args func(port int) []string

	mu   sync.Mutex
	proc *process // nil when stopped
}

// process is one run of redis-server.
type process struct {
	cmd  *exec.Cmd
	out  *testutil.LogBuffer // its stdout and stderr
	done chan struct{}       // closed when it has exited
	err  error               // cmd.Wait's, once done is closed
}

// Start starts a redis-server and waits until it answers PING (up to 5s). The
// server is stopped in t.Cleanup. If redis-server is not installed, Start fails t.
func Start(t testing.TB) *Server {
	t.Helper()
	requireRedis(t)
	s := &Server{dir: t.TempDir()}
	t.Cleanup(s.Stop)
	if err := s.startFree(freePort); err != nil {
		t.Fatalf("l2test: start redis-server: %v", err)
	}
	return s
}

// requireRedis fails tb if redis-server is not installed.
func requireRedis(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatal("redis-server not installed: run `apt-get install -y redis-server` (or `make test`, which does)")
	}
}

// startFree starts s on a port from pick and waits until it answers PING. It
// tries again with another port when another process took the port first.
func (s *Server) startFree(pick func() (int, error)) error {
	var errs []error
	for range 5 { // another process may take the free port before redis binds it
		port, err := pick()
		if err != nil {
			return fmt.Errorf("find a free port: %w", errors.Join(append(errs, err)...))
		}
		s.port = port
		p, err := s.start()
		if err == nil {
			s.mu.Lock()
			s.proc = p
			s.mu.Unlock()
			return nil
		}
		errs = append(errs, err)
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	return errors.Join(errs...)
}

// Addr returns the server's address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns the server's URL, "redis://127.0.0.1:PORT/0", for redis.ParseURL.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a new client of the server, closed in t.Cleanup. Its context
// deadlines bound socket I/O (ContextTimeoutEnabled), as symcache's own clients do.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Stop kills the server (SIGKILL) and waits for it to exit, simulating
// "Redis down". Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// Restart stops the server if it runs and starts it again on the same port,
// empty, then waits until it answers PING.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	p, err := s.start()
	if err != nil {
		t.Fatalf("l2test: restart redis-server: %v", err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
}

// plainArgs returns the arguments of a plain server on port, with s.dir as
// its working directory: loopback only, no persistence.
func (s *Server) plainArgs(port int) []string {
	return []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--dir", s.dir,
	}
}

// start runs redis-server on s.port and waits until it answers PING.
// On failure, the process is gone and the error holds its output.
func (s *Server) start() (*process, error) {
	args := s.plainArgs
	if s.args != nil {
		args = s.args
	}
	cmd := exec.Command("redis-server", args(s.port)...)
	p := &process{cmd: cmd, out: new(testutil.LogBuffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = sysProcAttr() // dies with us, even if cleanups never run
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("redis-server on port %d exited (%v):\n%s", s.port, p.err, p.out)
		default:
		}
		if ping(s.Addr()) == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within %v:\n%s", s.port, readyTimeout, p.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// output returns what the running server has printed so far, or "" if it is stopped.
func (s *Server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return ""
	}
	return s.proc.out.String()
}

// poll calls f every 50ms until it returns nil, and returns nil then; when ctx
// ends first, it returns f's last error.
func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// ping sends PING over a bare connection: a go-redis client would log its dial
// retries. A server that asks for a password answers -NOAUTH, which means it is
// up too.
func ping(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" && !strings.HasPrefix(line, "-NOAUTH ") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
