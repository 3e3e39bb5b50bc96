package l2

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file shares Binance's bans among the processes of a deployment: they
// usually leave by one egress IP, which Binance bans as a whole, so a 429 or
// 418 one of them sees must stop them all.

// BansKey is the key, relative to the prefix, of the hash of Binance hosts
// that answered 429 or 418: a field per host ("api.binance.com", with the
// port unless the scheme's default), valued "<end in ms by Redis' clock>
// <status code>". The key expires with its longest ban.
const BansKey = "{upstream}:bans"

// BansChannel is the channel, relative to the prefix, on which Ban and
// Unban announce a change: "ban <host>" or "unban <host>".
const BansChannel = "bans"

// Ban is a host that no process may send to for Left from now, because
// it answered Code (429 or 418). A Ban with Left zero is lifted (Unban).
type Ban struct {
	Host string
	Code int
	Left time.Duration
	// Seen is when the read that found the ban began (this process's
	// clock): the ban was recorded before then. A process that lifted the
	// host's ban after Seen knows the ban is one it lifted, not a new one.
	Seen time.Time
}

// maxBans bounds the hosts BansKey may hold: a deployment talks to a few.
// A longer hash is refused whole, as corrupt.
const maxBans = 64

// maxBanField bounds a field's name (a host) and value in BansKey.
const maxBanField = 300

// banScript records a ban of host ARGV[1] for ARGV[3] ms from Redis' clock
// with status ARGV[2] in the hash KEYS[1], unless it holds one that ends
// later; it drops the bans that have ended, and keeps the key as long as
// its longest ban. A KEYS[1] that is no hash, or holds more than ARGV[4]
// fields, is corrupt and replaced; a field longer than ARGV[5] bytes, or
// unreadable, is dropped unread. It returns 1 when it recorded the ban.
var banScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[3])
local n = redis.pcall('HLEN', KEYS[1])
if type(n) == 'table' or n > tonumber(ARGV[4]) then
	redis.call('DEL', KEYS[1])
end
local keep = 0
for _, host in ipairs(redis.call('HKEYS', KEYS[1])) do
	local e = nil
	if #host <= tonumber(ARGV[5]) and redis.call('HSTRLEN', KEYS[1], host) <= tonumber(ARGV[5]) then
		e = tonumber(string.match(redis.call('HGET', KEYS[1], host), '^(%d+) %d+$'))
	end
	if e == nil or e <= now then
		redis.call('HDEL', KEYS[1], host)
	elseif host == ARGV[1] and e >= now + ms then
		return 0
	else
		keep = math.max(keep, e - now)
	end
end
redis.call('HSET', KEYS[1], ARGV[1], (now + ms) .. ' ' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.max(keep, ms))
return 1
`)

// bansScript returns the bans in force in the hash KEYS[1] as host, code,
// ms left (by Redis' clock) triples, at most ARGV[3] ms left each. It
// refuses a KEYS[1] that is no hash, or holds more than ARGV[1] fields, and
// skips fields longer than ARGV[2] bytes or unreadable: nothing larger is
// read.
var bansScript = redis.NewScript(`
local n = redis.pcall('HLEN', KEYS[1])
if type(n) == 'table' then
	return redis.error_reply('not a hash')
end
if n > tonumber(ARGV[1]) then
	return redis.error_reply('more than ' .. ARGV[1] .. ' fields')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for _, host in ipairs(redis.call('HKEYS', KEYS[1])) do
	if #host <= tonumber(ARGV[2]) and redis.call('HSTRLEN', KEYS[1], host) <= tonumber(ARGV[2]) then
		local e, code = string.match(redis.call('HGET', KEYS[1], host), '^(%d+) (%d+)$')
		e = tonumber(e)
		if e ~= nil and e > now then
			table.insert(out, host)
			table.insert(out, tonumber(code))
			table.insert(out, math.min(e - now, tonumber(ARGV[3])))
		end
	end
end
return out
`)

// Ban records in Redis that no process may send to host for d, because it
// answered code, unless a longer ban of host is recorded, and announces it
// on BansChannel. A d longer than MaxHold is cut to it. It takes at most
// WriteTimeout.
func (s *Store) Ban(ctx context.Context, host string, code int, d time.Duration) error {
	if err := checkBanHost(host); err != nil {
		return err
	}
	d = min(d, s.maxHold)
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	n, err := banScript.Run(ctx, s.rdb, []string{s.prefix + BansKey}, host, code, max(d.Milliseconds(), 1), maxBans, maxBanField).Int()
	if err != nil {
		s.fail("ban")
		return fmt.Errorf("l2 ban %q: %w", host, err)
	}
	if n == 1 {
		s.publishBan(ctx, "ban "+host)
	}
	return nil
}

// Unban deletes host's ban from Redis and announces it on BansChannel, for
// an operator who lifts it. It takes at most WriteTimeout.
func (s *Store) Unban(ctx context.Context, host string) error {
	if err := checkBanHost(host); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	// A BansKey that is no hash is corrupt: HDEL fails, and the next Ban
	// replaces it.
	if err := s.rdb.HDel(ctx, s.prefix+BansKey, host).Err(); err != nil {
		s.fail("ban")
		return fmt.Errorf("l2 unban %q: %w", host, err)
	}
	s.publishBan(ctx, "unban "+host)
	return nil
}

func (s *Store) publishBan(ctx context.Context, msg string) {
	if err := s.rdb.Publish(ctx, s.prefix+BansChannel, msg).Err(); err != nil {
		s.fail("publish")
		s.log.Warn("l2 announcing a ban failed; other processes learn of it within their poll", "channel", s.prefix+BansChannel, "err", err)
	}
}

func checkBanHost(host string) error {
	if host == "" || len(host) > maxBanField || strings.ContainsAny(host, " \r\n") {
		return fmt.Errorf("l2 ban: not a host name: %q", truncate(host, 64))
	}
	return nil
}

// Bans returns the bans recorded in Redis, each with the time left by
// Redis' clock (at most MaxHold). It takes at most Timeout.
func (s *Store) Bans(ctx context.Context) ([]Ban, error) {
	seen := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := bansScript.Run(ctx, s.rdb, []string{s.prefix + BansKey}, maxBans, maxBanField, s.maxHold.Milliseconds()).Slice()
	if err == nil && len(res)%3 != 0 {
		err = fmt.Errorf("unexpected reply of %d values", len(res))
	}
	if err != nil {
		s.fail("bans")
		return nil, fmt.Errorf("l2 bans: %w", err)
	}
	bans := make([]Ban, 0, len(res)/3)
	for i := 0; i < len(res); i += 3 {
		host, _ := res[i].(string)
		code, _ := res[i+1].(int64)
		ms, _ := res[i+2].(int64)
		if host == "" || ms <= 0 {
			continue
		}
		bans = append(bans, Ban{Host: host, Code: int(code), Left: time.Duration(ms) * time.Millisecond, Seen: seen})
	}
	return bans, nil
}

// WatchBans delivers the bans recorded in Redis until ctx ends, then closes
// the channel: all of them once subscribed to BansChannel, again after every
// "ban" announcement and every poll interval (announcements are lost while
// the connection is down: the poll catches up), and a lifted Ban (Left
// zero) for every "unban" announcement. A failed read is counted as "bans"
// and logged at Warn (the first, then at most one a minute); an unreadable
// announcement is dropped and counted as "watch".
func (s *Store) WatchBans(ctx context.Context, poll time.Duration) <-chan Ban {
	out := make(chan Ban, 16)
	ps := s.rdb.Subscribe(ctx, s.prefix+BansChannel)
	go func() {
		defer close(out)
		defer ps.Close()
		// Read after the subscription is confirmed, so that no ban falls
		// between the read and the first announcement.
		rctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
		ps.Receive(rctx)
		cancel()
		ch := ps.Channel()
		ticker := time.NewTicker(poll)
		defer ticker.Stop()
		var warned time.Time
		send := func(b Ban) bool {
			select {
			case out <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		readAll := func() bool {
			bans, err := s.Bans(ctx)
			if err != nil {
				if ctx.Err() == nil && time.Since(warned) >= time.Minute {
					s.log.Warn("l2 reading the shared bans failed", "key", s.prefix+BansKey, "err", err)
					warned = time.Now()
				}
				return ctx.Err() == nil
			}
			for _, b := range bans {
				if !send(b) {
					return false
				}
			}
			return true
		}
		if !readAll() {
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				if !readAll() {
					return
				}
			case msg, ok := <-ch:
				if !ok {
					return
				}
				verb, host, _ := strings.Cut(msg.Payload, " ")
				switch {
				case checkBanHost(host) != nil:
					s.fail("watch")
				case verb == "ban":
					if !readAll() {
						return
					}
				case verb == "unban":
					if !send(Ban{Host: host, Seen: time.Now()}) {
						return
					}
				default:
					s.fail("watch")
				}
			}
		}
	}()
	return out
}
