package compare

import (
	"sync"
	"testing"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// input is one answer the benchmarks run on.
type input struct {
	name   string
	market exchangeinfo.Market
	file   string // under testdata/
	grow   int    // when > 0, fixtures.Grow(file's bytes, grow)
}

// inputs are the recorded spot, USD-M and COIN-M answers and the ~15 MB spot
// answer fixtures.Grow makes, which stands in for today's live spot answer.
var inputs = []input{
	{name: "spot", market: exchangeinfo.Spot, file: "binance/spot_exchangeinfo.json"},
	{name: "usdm", market: exchangeinfo.USDM, file: "binance/usdm_exchangeinfo.json"},
	{name: "coinm", market: exchangeinfo.COINM, file: "binance/coinm_exchangeinfo.json"},
	{name: "spot15MB", market: exchangeinfo.Spot, file: "binance/spot_exchangeinfo.json", grow: 15 << 20},
}

var (
	bodiesMu sync.Mutex
	bodies   = map[string][]byte{}
)

// body returns in's bytes, made once per process. Callers must not modify it.
func (in input) body(tb testing.TB) []byte {
	tb.Helper()
	bodiesMu.Lock()
	defer bodiesMu.Unlock()
	if b, ok := bodies[in.name]; ok {
		return b
	}
	b := fixtures.Read(tb, in.file)
	if in.grow > 0 {
		b = fixtures.Grow(tb, b, in.grow)
	}
	bodies[in.name] = b
	return b
}

var (
	refMu sync.Mutex
	refs  = map[string]*fixtures.ExchangeInfo{}
)

// reference returns in decoded by encoding/json, decoded once per process.
// Callers must not modify it.
func (in input) reference(tb testing.TB) *fixtures.ExchangeInfo {
	tb.Helper()
	body := in.body(tb)
	refMu.Lock()
	defer refMu.Unlock()
	if v, ok := refs[in.name]; ok {
		return v
	}
	v := new(fixtures.ExchangeInfo)
	if err := Codecs[0].Unmarshal(body, v); err != nil {
		tb.Fatalf("%s: encoding/json: %v", in.name, err)
	}
	refs[in.name] = v
	return v
}
