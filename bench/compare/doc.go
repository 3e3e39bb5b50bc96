// Package compare holds benchmarks that choose, by measurement, how symcache
// handles Binance's exchangeInfo JSON and which gzip library compresses a
// snapshot. It is a module of its own (github.com/symcache/symcache/bench/compare)
// so that the main module never depends on the libraries compared here:
// encoding/json, encoding/json/v2 (GOEXPERIMENT=jsonv2 only),
// github.com/goccy/go-json, github.com/bytedance/sonic,
// github.com/segmentio/encoding/json, the project's own exchangeinfo.Parse,
// compress/gzip and github.com/klauspost/compress/gzip.
//
// fixtures.ExchangeInfo (from the main module's internal/fixtures, whose
// benchmarks use it too) is a typed model of every field of the spot, USD-M
// and COIN-M answers; the codecs registry lists each JSON library's decode,
// encode and validity check. The tests check that every library decodes each recorded
// answer to the same value as encoding/json and that every gzip output
// decompresses back to its input; the benchmarks measure them. See README.md
// for how to run them and the results.
package compare
