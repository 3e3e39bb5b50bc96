// Package l2 is symcache's Redis tier, shared by every sidecar of a deployment.
//
// It has two halves:
//
//   - The JSON helpers [Store.ReadJSON] and [Store.WriteJSON] (read_json /
//     write_json: reads degrade to a miss, writes report failure): any value, as JSON, under a key with a TTL.
//   - The snapshot envelopes of one market: [Store.Put] writes <prefix>{market}:current
//     (with a TTL), <prefix>{market}:last_good (no TTL) and the small hash
//     <prefix>{market}:meta naming the snapshot, all at once and only when no later
//     snapshot is stored, then announces it on <prefix>invalidate; [Store.Current],
//     [Store.LastGood] and [Store.Meta] read them back, [Store.Watch] listens.
//   - The refresh lock <prefix>{market}:lock ([Store.Lock], [Store.Unlock],
//     [Store.Hold], [Store.ClearBackoff]), so that one process of a deployment
//     asks Binance at a time.
//
// A market's keys share the {market} hash tag: one Redis Cluster slot, so the
// script that writes them runs on one node.
//
// An envelope is a small JSON object whose last field, exchange_info, is Binance's
// body byte for byte (it is appended, never re-marshaled). With [Gzip] the same bytes
// are gzip-compressed; readers detect gzip by its magic bytes, so every sidecar reads
// what any sidecar wrote, whatever its own [Encoding].
//
// Every read failure is a miss: absence returns [ErrMiss] itself, while a Redis error
// or a corrupt value is logged at Warn and returned as an error that matches
// errors.Is(err, ErrMiss) and wraps the cause. The read path then falls through to
// the next tier. redis.Nil never leaves this package.
//
// Every byte read is bounded, against a Redis that holds what no sidecar
// wrote: a value longer than [Config.MaxValueBytes] (33 MiB) is refused
// before it is sent, and a gzip value stops inflating there; a meta field or
// an announcement over 1 KiB is refused too. Times are
// bounded as well: a meta key dated more than [MaxSkew] past Redis' clock
// blocks no write, a refresh lock found without a TTL is given one, and a
// backoff lasts at most [Config.MaxHold] (72h).
//
// Every call has a budget: [Config.Timeout] (50ms) for a read, so that a slow or
// stalled Redis delays a request by at most that, and [Config.WriteTimeout] (1s)
// for a write, which happens after a fetch rather than while a client waits for a hit.
package l2
