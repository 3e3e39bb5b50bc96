package httpapi

import (
	"net"
	"sync"
	"time"
)

// deadlineSlack is how much later than asked a connection from Listener
// may cut a write off: a deadline asked for within it of the one in force
// is already met, and costs nothing.
const deadlineSlack = time.Second

// Listener returns ln with connections whose write deadlines cost a system
// call only when they must. Every answer has a write deadline (see
// Config.MinClientRate), set when its request comes in and cleared when
// the connection goes idle (by the sidecar's http.Server.ConnState); on a
// busy keep-alive connection the second answer's deadline is the first's
// moved on by a few microseconds. A connection from Listener keeps the
// deadline in force when a new one is at most deadlineSlack earlier, and
// when one is set, sets it deadlineSlack late; it clears one only before a
// write that has none. So a write is never cut off before its deadline,
// and at most a second after it, and a busy connection arms its deadline
// about once a second rather than twice an answer. Read deadlines are left
// as they are.
//
// For TLS, wrap the plain listener and give the result to tls.NewListener.
func Listener(ln net.Listener) net.Listener { return lazyListener{ln} }

type lazyListener struct{ net.Listener }

func (l lazyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lazyConn{Conn: c}, nil
}

// lazyConn is a connection from Listener.
type lazyConn struct {
	net.Conn
	mu    sync.Mutex
	want  time.Time // the write deadline asked for; zero: none
	armed time.Time // the socket's write deadline; zero: none
}

// SetWriteDeadline asks for t: see Listener.
func (c *lazyConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want = t
	if t.IsZero() || !c.armed.IsZero() && !c.armed.Before(t) && !c.armed.After(t.Add(deadlineSlack)) {
		return nil // cleared before the next write if still zero then; or met already
	}
	return c.arm(t.Add(deadlineSlack))
}

// SetDeadline sets both deadlines: the write one as SetWriteDeadline does.
func (c *lazyConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *lazyConn) arm(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	c.armed = t
	return nil
}

// Write writes b, first clearing a deadline in force that was not asked for.
func (c *lazyConn) Write(b []byte) (int, error) {
	if err := c.clearUnasked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// writeBuffers writes a then b, in one system call where the connection
// can (writev), first clearing a deadline not asked for as Write does.
func (c *lazyConn) writeBuffers(a, b []byte) (int64, error) {
	if err := c.clearUnasked(); err != nil {
		return 0, err
	}
	bufs := net.Buffers{a, b}
	return bufs.WriteTo(c.Conn)
}

func (c *lazyConn) clearUnasked() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.want.IsZero() && !c.armed.IsZero() {
		return c.arm(time.Time{})
	}
	return nil
}
