// Package chaos holds symcache's fault-matrix test, and nothing else: a bounded
// run, on 127.0.0.1 only, of three in-process sidecars (each a symcache.Cache
// behind httpapi, with its own L1 and fetch Gate; one also keeps a disk copy)
// over one real redis-server and one fake Binance, while 16 clients hammer
// every endpoint and a seeded script kills and restarts Redis, flips the
// upstream between healthy (several valid snapshot versions), 5xx, slow,
// 429/418 with Retry-After and invalid bodies, and restarts one sidecar at a
// time.
//
// It asserts what symcache promises under those faults (docs/design.md):
//
//  1. Once a sidecar holds a valid snapshot of a market, no answer for that
//     market is a 5xx; before that, only a 503 with Retry-After, and not
//     while Redis has held a valid last_good all along. No answer is a 4xx:
//     every request is valid for every snapshot version.
//  2. Every body is one of the valid snapshot versions, or the answer one of
//     them gives to the query, byte for byte (gzip-decoded when sent so).
//  3. Upstream requests stay within the refresh budget: at most one in
//     flight per sidecar and market (singleflight), a total per sidecar
//     bounded by its lifetime over RefreshInterval, no burst across sidecars
//     within 50 ms, and none from a sidecar while a Retry-After it received
//     is running.
//  4. Redis's current and last_good keys, whenever present, and the disk
//     copy hold one of the valid versions, which passed exchangeinfo.Parse.
//
// What it observes but does not assert (a sidecar repeating a fetch within
// 50 ms, requests during another sidecar's Retry-After, slow answers,
// last_good going back in time) is logged at the end with the fault script.
//
// Run it with `go test ./chaos` (8 s, skipped under -short), or for a
// minute: SYMCACHE_CHAOS_DURATION=60s go test -race -count=1 -run '^TestChaos$'
// -v ./chaos. The seed is logged; SYMCACHE_CHAOS_SEED=<seed> replays the same
// fault script (the timing of clients and servers still varies).
package chaos
