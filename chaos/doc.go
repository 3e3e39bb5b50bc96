// Package chaos holds symcache's fault-matrix test, and nothing else: a bounded
// run, on 127.0.0.1 only, of three in-process sidecars (each a symcache.Cache
// behind httpapi, with its own L1 and fetch Gate; one also keeps a disk copy)
// over one real redis-server and one fake Binance, while 16 clients hammer
// every endpoint and a seeded script kills and restarts Redis, flips the
// upstream between healthy (several valid snapshot versions), 5xx, slow,
// 429/418 with Retry-After and invalid bodies, and restarts one sidecar at a
// time. It also plays the hostile inputs of docs/design.md:
//
//   - a future-dated value: an envelope dated hours ahead around a poisoned
//     version (a valid exchangeInfo that is none of the versions: one
//     symbol HALT, the same length), written as current, sometimes as
//     last_good, in the meta hash (sometimes with an etag over 1 KiB) and
//     announced;
//   - a refresh lock without a TTL: a random token, "backoff:chaos", or the
//     lock in place PERSISTed. A backoff marker, once a sidecar gave it its
//     5 minutes, is deleted by the script a second later, as an operator
//     would, so that the run goes on;
//   - an oversized answer, for less than a TTL: a valid answer more than 4
//     times the largest version (sent only while every sidecar holds a last
//     good snapshot: with none, there is nothing to compare with), or one
//     with a symbol of 2 MiB; each a new answer, and one sidecar asked to
//     refresh meanwhile;
//   - a flood of announcements for a second: dated ahead, forged, of an
//     unknown market, not JSON, larger than 1 KiB.
//
// It asserts what symcache promises under those faults (docs/design.md):
//
//  1. Once a sidecar holds a valid snapshot of a market, no answer for that
//     market is a 5xx; before that, only a 503 with Retry-After, and not
//     while Redis has held a valid last_good all along. No answer is a 4xx:
//     every request is valid for every snapshot version.
//  2. Every body is one of the valid snapshot versions, or the answer one of
//     them gives to the query, byte for byte (gzip-decoded when sent so).
//     An answer made from the poisoned version, a Last-Modified, page or
//     /readyz state dated ahead, or /readyz naming the poisoned ETag, is
//     reported as WRONG DATA SERVED: the future-dated value is never served,
//     fresh or stale. Oversized answers are none of the versions.
//  3. Upstream requests stay within the refresh budget: at most one in
//     flight per sidecar and market (singleflight), a total per sidecar
//     bounded by its lifetime over RefreshInterval, no burst across sidecars
//     within 50 ms, and none from a sidecar while a Retry-After it received
//     is running.
//  4. Redis's current and last_good keys, whenever present, and the disk
//     copy hold one of the valid versions, which passed exchangeinfo.Parse,
//     or exactly what the script wrote; last_good never goes back in time
//     (except across a Redis restart, or a meta key the script replaced:
//     then the write script has nothing to compare with).
//  5. A refresh lock without a TTL has one once a sidecar's Lock met it (the
//     lease, or at most 5 minutes for a backoff marker); holding a token, a
//     sidecar takes the lock within a few leases of that: refreshing resumes.
//
// What it observes but does not assert (a sidecar repeating a fetch within
// 50 ms, requests during another sidecar's Retry-After, slow answers, how
// soon refreshing resumes after a backoff marker, how many requests got an
// oversized answer, what the sidecars counted: Stats().FutureDated,
// Fetches["grown"], l2 Errors() "lock_no_ttl", "too_large", "watch") is
// logged at the end with the fault script.
//
// Run it with `go test ./chaos` (8 s, skipped under -short), or for a
// minute: SYMCACHE_CHAOS_DURATION=60s go test -race -count=1 -run '^TestChaos$'
// -v ./chaos. The seed is logged; SYMCACHE_CHAOS_SEED=<seed> replays the same
// fault script (the timing of clients and servers still varies).
package chaos
