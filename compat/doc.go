// Package compat checks that real Binance clients work with the symcache
// sidecar as their one base URL. Its tests build ../cmd/sidecar, run it as a
// process on a loopback port in front of a fake Binance (fetchtest, one
// handler behind three loopback servers standing for the spot, USD-M and
// COIN-M hosts), and point the clients at it:
//
//   - github.com/adshao/go-binance/v2: exchangeInfo of each market through
//     the sidecar equals the fake's own; a signed order and a signed GET
//     reach the fake once, byte for byte, with a valid signature; a 429 or
//     418 from Binance blocks its host for the client's requests and the
//     cache's refreshes alike, with nothing sent, until its time has passed,
//     and with two sidecars on one Redis, in both; the sidecar's 503 when
//     nothing can be served is an APIError -1007; Client.UsedWeight gets
//     Binance's weight from answers served by the cache.
//   - ccxt's binance (Node, compat/node, pinned by its package-lock.json):
//     loadMarkets with default options and API keys gives the same markets
//     through the sidecar as from the fake directly, and rejects with a
//     RequestTimeout (a NetworkError) when nothing can be served.
//   - @binance/connector's Spot (Node, compat/node): exchangeInfo, a signed
//     order and openOrders as with go-binance; the 503 is an AxiosError
//     with the sidecar's -1007 body; response.headers carry the weight.
//
// It is a module of its own (github.com/symcache/symcache/compat) so that
// the clients it tests, and go-cmp, stay out of symcache's go.mod: the
// standard library cannot stand in for a client whose compatibility is the
// point. README.md says how to run it and which versions were tested.
package compat
