package symcache

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/l2"
)

// banPoll is how often the bans shared through the Coordinator are read
// again, besides each announcement: it catches up announcements lost while
// a connection was down.
const banPoll = 2 * time.Second

// banQueue is how many of the Gate's changes may wait to be shared. More
// are dropped with a Warn: each stays in force here, and the processes that
// did not hear of it are stopped by Binance's own 429 or 418 in turn.
const banQueue = 64

// shareBans carries the Gate's blocks to the other processes through the
// Coordinator, and theirs to the Gate, until ctx ends.
func (c *Cache) shareBans(ctx context.Context, gate *fetch.Gate) {
	log := c.sh.log.With("tier", "l2")
	changes := make(chan fetch.Change, banQueue)
	var lf lifts
	gate.OnChange(func(ch fetch.Change) {
		if ch.Lifted() {
			lf.begin(ch.Host)
			// A ban read from Redis before the lift may have been applied
			// between Unblock's lift and this call: lift again.
			gate.Apply(ch)
		}
		select {
		case changes <- ch:
		default:
			if ch.Lifted() {
				lf.end(ch.Host)
			}
			log.Warn("too many bans waiting to be shared; this one stays in this process", "host", ch.Host, "status", ch.Code, "until", ch.Until)
		}
	})
	c.wg.Go(func() {
		defer gate.OnChange(nil)
		for {
			select {
			case <-ctx.Done():
				return
			case ch := <-changes:
				c.publishBan(ctx, log, ch)
				if ch.Lifted() {
					lf.end(ch.Host)
				}
			}
		}
	})
	c.wg.Go(func() {
		for b := range c.sh.co.WatchBans(ctx, banPoll) {
			now := time.Now()
			_, _, was := gate.Blocked(b.Host, now)
			if b.Left <= 0 {
				gate.Apply(fetch.Change{Host: b.Host})
				lifted := c.liftBans(b.Host)
				if was || len(lifted) > 0 {
					log.Info("binance host unblocked by another process", "host", b.Host, "markets", lifted)
				}
				continue
			}
			if !lf.apply(gate, b, now) {
				log.Debug("a ban read before this process lifted it is not applied", "host", b.Host, "status", b.Code)
				continue
			}
			if !was {
				log.Warn("binance host blocked by another process: nothing is sent to it until the time has passed",
					"host", b.Host, "status", b.Code, "retry_after", b.Left.Round(time.Millisecond).String())
			}
		}
	})
}

// lifts keeps this process's lifts of a host's ban (an operator's
// ClearBackoff) until Redis has them, so that a ban read from Redis before
// then does not block the host again: it is the ban just lifted.
type lifts struct {
	mu      sync.Mutex
	pending map[string]int       // lifts not yet recorded in Redis, by host
	done    map[string]time.Time // when the last lift was recorded (or given up)
}

func (l *lifts) begin(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending == nil {
		l.pending = make(map[string]int)
	}
	l.pending[host]++
}

func (l *lifts) end(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending[host]--; l.pending[host] <= 0 {
		delete(l.pending, host)
	}
	if l.done == nil {
		l.done = make(map[string]time.Time)
	}
	l.done[host] = time.Now()
}

// apply takes b, another process's ban, into gate and reports whether it
// did: not while a lift of its host is on its way to Redis, nor when it was
// read before the last lift reached Redis. A Ban whose Seen is zero (a
// Coordinator that does not say) is taken unless a lift is on its way.
func (l *lifts) apply(gate *fetch.Gate, b l2.Ban, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending[b.Host] > 0 || (!b.Seen.IsZero() && b.Seen.Before(l.done[b.Host])) {
		return false
	}
	gate.Apply(fetch.Change{Host: b.Host, Code: b.Code, Until: now.Add(b.Left)})
	return true
}

// publishBan records ch in Redis for the other processes.
func (c *Cache) publishBan(ctx context.Context, log *slog.Logger, ch fetch.Change) {
	var err error
	if ch.Lifted() {
		err = c.sh.co.Unban(ctx, ch.Host)
	} else if d := time.Until(ch.Until); d > 0 {
		err = c.sh.co.Ban(ctx, ch.Host, ch.Code, d)
	}
	if err != nil && ctx.Err() == nil {
		log.Warn("sharing a ban of a binance host failed; it holds in this process", "host", ch.Host, "status", ch.Code, "err", err)
	}
}

// liftBans ends the backoff of each market whose last failure was host's
// 429 or 418 (or the Gate's block of it), when another process lifted that
// ban, and returns their names.
func (c *Cache) liftBans(host string) []exchangeinfo.Market {
	var lifted []exchangeinfo.Market
	for _, name := range c.order {
		m := c.markets[name]
		if bannedHost(m.backoff.lastErr()) == host {
			m.backoff.succeed()
			lifted = append(lifted, name)
		}
	}
	return lifted
}

// bannedHost is the host (as fetch.GateHost) that err says blocked a fetch
// with a 429 or 418, or "".
func bannedHost(err error) string {
	var be *fetch.BackoffError
	var se *fetch.StatusError
	switch {
	case errors.As(err, &be) && be.Host != "":
		return be.Host
	case errors.As(err, &se) && se.RetryAfter > 0:
		if u, perr := url.Parse(se.URL); perr == nil {
			return fetch.GateHost(u)
		}
	}
	return ""
}
