// Package symcache keeps Binance exchangeInfo snapshots close to the code that
// needs them. A Get looks like:
//
//  1. L1: the in-process cache (package l1). A fresh snapshot is served as is
//     (HitL1).
//  2. L2: Redis (package l2), shared by every process of a deployment. A fresh
//     snapshot is promoted to L1 and served (HitL2).
//  3. Upstream: Binance (package fetch), one request per market at a time
//     however many callers wait for it, and, with a Config.Coordinator, one
//     at a time across every process sharing that Redis: a refresh lock
//     decides which process asks, the others take its snapshot from L2
//     (HitL2). A valid answer is written to L1 and L2 and served (Miss).
//  4. Last good: when the fetch fails, the newest snapshot that ever passed
//     validation, from L2's last_good key or from memory, is served (Stale),
//     unless it is older than Config.StaleMax. With nothing to serve, Get
//     returns an error matching ErrUnavailable.
//
// The read path of one market is market.go, top to bottom. A snapshot is
// fresh while its age (since it was fetched from Binance) is below
// Config.TTL, in every tier. A background refresher per market fetches every
// Config.RefreshInterval so that requests rarely wait for Binance; after a
// failed fetch, Binance is left alone for a backoff that doubles up to a
// minute (with jitter), or as long as Binance's Retry-After says, and Get
// serves last good meanwhile. Refresh fetches on demand, and returns a
// *BackoffError instead during a backoff.
//
// With a Coordinator the refreshers of all processes tick at the start of
// each refresh period, so Binance sees one request per market per period
// from the whole deployment; every write is announced on a Redis channel and
// every process moves its L1 to the new snapshot at once; a failed fetch
// holds the lock as the deployment's backoff.
//
// Embedding: build an Upstream per market with fetch.New, optionally an L2
// with l2.New over l2.NewClient(redisURL) (a single server, a Redis Cluster or
// Sentinel), passed as both Config.L2 and Config.Coordinator, and call New;
// Get is safe for concurrent use and cheap on a hit (a few hundred
// nanoseconds, no allocation). Package httpapi serves a Cache over HTTP as
// the sidecar does; package rules turns a symbol's filters into trading rules
// and normalises orders.
//
// Snapshots are immutable and shared: the bytes a Result holds must not be
// modified.
package symcache
