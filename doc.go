// Package symcache keeps Binance exchangeInfo snapshots close to the code that
// needs them. A Get looks like:
//
//  1. L1: the in-process cache (package l1). A fresh snapshot is served as is
//     (HitL1).
//  2. L2: Redis (package l2), shared by every process of a deployment. A fresh
//     snapshot is promoted to L1 and served (HitL2).
//  3. Upstream: Binance (package fetch), one request per market at a time
//     however many callers wait for it (singleflight). A valid answer is
//     written to L1 and L2 and served (Miss).
//  4. Last good: when the fetch fails, the newest snapshot that ever passed
//     validation, from L2's last_good key or from memory, is served (Stale),
//     unless it is older than Config.StaleMax. With nothing to serve, Get
//     returns an error matching ErrUnavailable.
//
// A snapshot is fresh while its age (since it was fetched from Binance) is
// below Config.TTL, in every tier. A background refresher per market fetches
// every Config.RefreshInterval so that requests rarely wait for Binance; after
// a failed fetch, Binance is left alone for a backoff that doubles up to a
// minute (with jitter), and Get serves last good meanwhile.
//
// Snapshots are immutable and shared: the bytes a Result holds must not be
// modified.
package symcache
