package symcache

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
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
	gate.OnChange(func(ch fetch.Change) {
		select {
		case changes <- ch:
		default:
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
			gate.Apply(fetch.Change{Host: b.Host, Code: b.Code, Until: now.Add(b.Left)})
			if !was {
				log.Warn("binance host blocked by another process: nothing is sent to it until the time has passed",
					"host", b.Host, "status", b.Code, "retry_after", b.Left.Round(time.Millisecond).String())
			}
		}
	})
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
