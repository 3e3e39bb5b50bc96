package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// The write deadline's defaults (Config.MinClientRate, Config.WriteGrace).
const (
	defaultMinClientRate = 64 << 10 // bytes a second
	defaultWriteGrace    = 10 * time.Second
)

// writeDeadline bounds the time an answer may take to reach its client: the
// grace for any answer, plus its size at the least rate a client must read
// at. A client slower than that has its connection closed, so that it holds
// neither a connection nor the snapshot its answer came from for long.
type writeDeadline struct {
	rate  int64         // bytes a second; <= 0: no deadline
	grace time.Duration // on top of size/rate
	slow  prometheus.Counter
	log   *slog.Logger
}

func newWriteDeadline(cfg Config) writeDeadline {
	d := writeDeadline{rate: cfg.MinClientRate, grace: cfg.WriteGrace, log: cfg.Logger}
	if d.rate == 0 {
		d.rate = defaultMinClientRate
	}
	if d.grace <= 0 {
		d.grace = defaultWriteGrace
	}
	d.slow = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "symcache_slow_clients_total",
		Help: "Answers cut off because the client read them slower than the least client rate (SYMCACHE_MIN_CLIENT_RATE): the connection was closed.",
	})
	return d
}

// set gives the answer being written to w, of n bytes (0 for headers only),
// until now plus the grace plus n at the least rate. The deadline is the
// connection's: it replaces the one of an earlier answer on the same
// connection. A ResponseWriter that cannot take one (a recorder, HTTP/2
// without support) is left without.
func (d writeDeadline) set(w http.ResponseWriter, n int) {
	if d.rate <= 0 {
		return
	}
	d.setAt(w, n)
}

// extend moves the deadline set when the request came in to fit an answer
// of n bytes, unless n takes less than a second at the least rate: then
// the grace given at the start is enough, and the hot path of small
// answers sets one deadline, not two.
func (d writeDeadline) extend(w http.ResponseWriter, n int) {
	if d.rate <= 0 || int64(n) < d.rate {
		return
	}
	d.setAt(w, n)
}

func (d writeDeadline) setAt(w http.ResponseWriter, n int) {
	// The deadline is the operating system's, so it is read on the real
	// clock, never Config.Now.
	http.NewResponseController(w).SetWriteDeadline(d.at(time.Now(), n)) // the error is http.ErrNotSupported at most
}

// at is the deadline of n bytes written from now.
func (d writeDeadline) at(now time.Time, n int) time.Time {
	return now.Add(d.grace + time.Duration(float64(n)/float64(d.rate)*float64(time.Second)))
}

// cutOff reports whether err is a write that missed its deadline, which
// net/http ends by closing the connection; it counts and logs it.
func (d writeDeadline) cutOff(err error, c echo.Context) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	d.slow.Inc()
	r := c.Request()
	d.log.Warn("client too slow: answer cut off", "path", r.URL.Path, "remote_addr", r.RemoteAddr, "min_client_rate", d.rate, "err", err)
	return true
}
