package changes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

var (
	fetched1 = time.Date(2026, 12, 6, 19, 47, 0, 0, time.UTC)
	fetched2 = fetched1.Add(time.Minute)
)

// parsed remembers parse's snapshots: the tests edit one 3.7 MB answer in
// many ways, and a body is never modified.
var parsed sync.Map // parseKey → *exchangeinfo.Snapshot

type parseKey struct {
	m     exchangeinfo.Market
	first *byte
	n     int
	at    time.Time
}

func parse(tb testing.TB, m exchangeinfo.Market, body []byte, at time.Time) *exchangeinfo.Snapshot {
	tb.Helper()
	key := parseKey{m, &body[0], len(body), at}
	if s, ok := parsed.Load(key); ok {
		return s.(*exchangeinfo.Snapshot)
	}
	s, err := exchangeinfo.Parse(m, body, at)
	if err != nil {
		tb.Fatalf("Parse(%s) = %v, want nil", m, err)
	}
	parsed.Store(key, s)
	return s
}

// span returns where the object of symbol name is in body: the object
// around its "symbol" member when that is the object's first (as in the
// recorded answers), read with encoding/json; else the one Parse finds.
func span(tb testing.TB, body []byte, name string) (start, end int) {
	tb.Helper()
	q, _ := json.Marshal(name)
	for from := 0; ; {
		k := bytes.Index(body[from:], q)
		if k < 0 {
			break
		}
		k += from
		from = k + 1
		key := bytes.TrimRight(body[:k], " \t\n\r:")
		if !bytes.HasSuffix(key, []byte(`"symbol"`)) {
			continue
		}
		start = bytes.LastIndexByte(body[:k], '{')
		var raw json.RawMessage
		var sym struct{ Symbol string }
		if err := json.NewDecoder(bytes.NewReader(body[start:])).Decode(&raw); err == nil &&
			json.Unmarshal(raw, &sym) == nil && sym.Symbol == name {
			return start, start + len(raw)
		}
		break
	}
	sym, ok := parse(tb, exchangeinfo.Spot, body, fetched1).Lookup(name)
	if start = bytes.Index(body, sym.Raw); !ok || start < 0 {
		tb.Fatalf("no symbol %s", name)
	}
	return start, start + len(sym.Raw)
}

// replace returns a copy of body with old replaced by new, once, within the
// object of symbol name, or anywhere when name is "". old must be there
// exactly once.
func replace(tb testing.TB, m exchangeinfo.Market, body []byte, name, old, new string) []byte {
	tb.Helper()
	start, end := 0, len(body)
	if name != "" {
		start, end = span(tb, body, name)
	}
	in := body[start:end]
	if n := bytes.Count(in, []byte(old)); n != 1 {
		tb.Fatalf("replace: %q is %d times in %s, want once", old, n, cmpOr(name, "the body"))
	}
	i := start + bytes.Index(in, []byte(old))
	return slices.Concat(body[:i], []byte(new), body[i+len(old):])
}

// edits applies replace to the symbol name for each pair of old, new.
func edits(tb testing.TB, body []byte, name string, pairs ...string) []byte {
	tb.Helper()
	for i := 0; i < len(pairs); i += 2 {
		body = replace(tb, exchangeinfo.Spot, body, name, pairs[i], pairs[i+1])
	}
	return body
}

// manyX returns body with twenty more filters of type X in ETHBTC, each
// {"filterType":"X","v":v}.
func manyX(tb testing.TB, body []byte, v string) []byte {
	tb.Helper()
	x := strings.Repeat(`,{"filterType":"X","v":"`+v+`"}`, 20)
	return replace(tb, exchangeinfo.Spot, body, "ETHBTC", algoFilter+"]", algoFilter+x+"]")
}

// moveFirst returns body with the member field of symbol name moved first.
func moveFirst(tb testing.TB, body []byte, name, field string) []byte {
	tb.Helper()
	start, end := span(tb, body, name)
	o := decodeObject(tb, body[start:end])
	i := o.find(field)
	first := o[i]
	o = append(object{first}, slices.Delete(o, i, i+1)...)
	return slices.Concat(body[:start], o.bytes(), body[end:])
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// removeSymbol returns a copy of body without the symbol name.
func removeSymbol(tb testing.TB, m exchangeinfo.Market, body []byte, name string) []byte {
	tb.Helper()
	start, end := span(tb, body, name)
	if body[end] == ',' {
		end++
	} else {
		start = bytes.LastIndexByte(body[:start], ',')
	}
	return slices.Concat(body[:start], body[end:])
}

// addSymbol returns a copy of body with a copy of symbol like, named name,
// after it.
func addSymbol(tb testing.TB, m exchangeinfo.Market, body []byte, like, name string) []byte {
	tb.Helper()
	start, end := span(tb, body, like)
	clone := bytes.Replace(body[start:end], []byte(`"symbol":"`+like+`"`), []byte(`"symbol":"`+name+`"`), 1)
	return slices.Concat(body[:end], []byte(","), clone, body[end:])
}

// diff parses both bodies and diffs them, checking the answer against the
// reference and the context every change carries.
func diff(t *testing.T, m exchangeinfo.Market, from, to []byte) []Change {
	t.Helper()
	a, b := parse(t, m, from, fetched1), parse(t, m, to, fetched2)
	got := Diff(a, b)
	checkReference(t, got, reduce(t, a, b), reduce(t, b, a))
	wantFrom := Ref{FetchedAt: fetched1, ETag: exchangeinfo.ETag(from), ServerTime: a.ServerTime().UnixMilli()}
	wantTo := Ref{FetchedAt: fetched2, ETag: exchangeinfo.ETag(to), ServerTime: b.ServerTime().UnixMilli()}
	for _, c := range got {
		if c.ID != "" || c.Market != m || c.From != wantFrom || c.To != wantTo {
			t.Fatalf("change %s: ID %q, Market %s, From %+v, To %+v; want \"\", %s, %+v, %+v", show(c), c.ID, c.Market, c.From, c.To, m, wantFrom, wantTo)
		}
	}
	return got
}

// reduce returns s's body with only the symbols that are not the same
// bytes in other: all the reference needs to read, since equal bytes make no
// change. The rest of the body stays as it is.
func reduce(tb testing.TB, s, other *exchangeinfo.Snapshot) []byte {
	tb.Helper()
	body, syms := s.Body(), s.Symbols()
	start := bytes.Index(body, syms[0].Raw)
	end := bytes.LastIndex(body, syms[len(syms)-1].Raw) + len(syms[len(syms)-1].Raw)
	var keep [][]byte
	for _, sym := range syms {
		if o, ok := other.Lookup(sym.Name); !ok || !bytes.Equal(o.Raw, sym.Raw) {
			keep = append(keep, sym.Raw)
		}
	}
	return slices.Concat(body[:start], bytes.Join(keep, []byte(",")), body[end:])
}

const (
	ethbtcPerms = `["SPOT","MARGIN","TRD_GRP_004","TRD_GRP_005","TRD_GRP_006","TRD_GRP_008","TRD_GRP_009","TRD_GRP_010","TRD_GRP_011","TRD_GRP_012","TRD_GRP_013","TRD_GRP_014"]`
	spotLimits  = `[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":%d},{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":50},{"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":160000},{"rateLimitType":"RAW_REQUESTS","interval":"MINUTE","intervalNum":5,"limit":61000}]`
	algoFilter  = `{"filterType":"MAX_NUM_ALGO_ORDERS","maxNumAlgoOrders":5}`
	extraPrice  = `{"filterType":"PRICE_FILTER","minPrice":"1.00000000","maxPrice":"2.00000000","tickSize":"1.00000000"}`
)

// TestDiff_OneEdit edits a recorded answer in one place and checks the one
// change (or the few) it makes, exactly.
func TestDiff_OneEdit(t *testing.T) {
	spot := fixtures.Read(t, "binance/spot_exchangeinfo.json")
	usdm := fixtures.Read(t, "binance/usdm_exchangeinfo.json")
	coinm := fixtures.Read(t, "binance/coinm_exchangeinfo.json")
	rs := func(s string) json.RawMessage { return json.RawMessage(s) }
	// spot with a second PRICE_FILTER in ETHBTC, after the others.
	twoPrices := replace(t, exchangeinfo.Spot, spot, "ETHBTC", algoFilter+"]", algoFilter+","+extraPrice+"]")
	// spot with ETHBTC's object written in other ways, before an edit.
	escaped := replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"baseAsset":"ETH"`, `"b\u0061seAsset":"ETH"`)
	noted := replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"symbol":"ETHBTC",`, `"symbol":"ETHBTC","note":"]}[[{",`)
	nested := replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"symbol":"ETHBTC",`, `"symbol":"ETHBTC","nest":{"filters":[{"filterType":"PRICE_FILTER","tickSize":"9"}]},`)
	filtersFirst := moveFirst(t, spot, "ETHBTC", "filters")
	dupTick := replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00001000","tickSize":"0.5"`)
	words := replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"symbol":"ETHBTC",`, `"symbol":"ETHBTC","note":"filters","xfilters":"[",`)
	twoFilters := replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"defaultSelfTradePreventionMode"`, `"filters":[{"filterType":"LOT_SIZE","minQty":"7"}],"defaultSelfTradePreventionMode"`)
	tests := []struct {
		name     string
		m        exchangeinfo.Market
		from, to []byte
		want     []Change
	}{
		{
			name: "delisted", m: exchangeinfo.Spot,
			from: spot, to: removeSymbol(t, exchangeinfo.Spot, spot, "ETHBTC"),
			want: []Change{{Kind: Delisted, Symbol: "ETHBTC", Status: "TRADING"}},
		},
		{
			name: "listed", m: exchangeinfo.Spot,
			from: spot, to: addSymbol(t, exchangeinfo.Spot, spot, "ETHBTC", "ETHBTX"),
			want: []Change{{Kind: Listed, Symbol: "ETHBTX", Status: "TRADING"}},
		},
		{
			name: "tick size", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.00001000"`), New: rs(`"0.00000100"`)}},
		},
		{
			name: "status", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"status":"TRADING"`, `"status":"BREAK"`),
			want: []Change{{Kind: Status, Symbol: "ETHBTC", Field: "status", Old: rs(`"TRADING"`), New: rs(`"BREAK"`)}},
		},
		{
			name: "permission", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `["SPOT","MARGIN",`, `["SPOT","TRD_GRP_099",`),
			want: []Change{{Kind: Permissions, Symbol: "ETHBTC", Added: []string{"TRD_GRP_099"}, Removed: []string{"MARGIN"},
				Old: rs(ethbtcPerms), New: rs(strings.Replace(ethbtcPerms, "MARGIN", "TRD_GRP_099", 1))}},
		},
		{
			name: "orderTypes", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"STOP_LOSS_LIMIT",`, ``),
			want: []Change{{Kind: Field, Symbol: "ETHBTC", Field: "orderTypes",
				Old: rs(`["LIMIT","LIMIT_MAKER","MARKET","STOP_LOSS_LIMIT","TAKE_PROFIT_LIMIT"]`), New: rs(`["LIMIT","LIMIT_MAKER","MARKET","TAKE_PROFIT_LIMIT"]`)}},
		},
		{
			name: "rate limit", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "", `"limit":6000}`, `"limit":5000}`),
			want: []Change{{Kind: RateLimits, Old: rs(strings.Replace(spotLimits, "%d", "6000", 1)), New: rs(strings.Replace(spotLimits, "%d", "5000", 1))}},
		},
		{
			name: "filter disappears", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", ","+algoFilter, ""),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "MAX_NUM_ALGO_ORDERS", Old: rs(algoFilter)}},
		},
		{
			name: "filter appears", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", algoFilter, algoFilter+`,{"filterType":"MAX_POSITION","maxPosition":"10.00000000"}`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "MAX_POSITION", New: rs(`{"filterType":"MAX_POSITION","maxPosition":"10.00000000"}`)}},
		},
		{
			name: "filter field appears", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"limit":10}`, `"limit":10,"maxParts":12}`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "ICEBERG_PARTS", Field: "maxParts", New: rs(`12`)}},
		},
		{
			name: "member appears", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"ocoAllowed":true,`, `"ocoAllowed":true,"otoAllowed":false,`),
			want: []Change{{Kind: Field, Symbol: "ETHBTC", Field: "otoAllowed", New: rs(`false`)}},
		},
		{
			name: "member disappears", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"icebergAllowed":true,`, ``),
			want: []Change{{Kind: Field, Symbol: "ETHBTC", Field: "icebergAllowed", Old: rs(`true`)}},
		},
		{
			name: "a member and a filter", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"stepSize":"0.00010000"`, `"stepSize":"0.00100000"`),
				"ETHBTC", `"quotePrecision":8`, `"quotePrecision":6`),
			want: []Change{
				{Kind: Filter, Symbol: "ETHBTC", Filter: "LOT_SIZE", Field: "stepSize", Old: rs(`"0.00010000"`), New: rs(`"0.00100000"`)},
				{Kind: Field, Symbol: "ETHBTC", Field: "quotePrecision", Old: rs(`8`), New: rs(`6`)},
			},
		},
		{
			name: "repeated filter type, the second changed", m: exchangeinfo.Spot,
			from: twoPrices, to: replace(t, exchangeinfo.Spot, twoPrices, "ETHBTC", `"tickSize":"1.00000000"`, `"tickSize":"2.00000000"`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"1.00000000"`), New: rs(`"2.00000000"`)}},
		},
		{
			// Matched in order: the first PRICE_FILTER of the new object is
			// the old second one, so its fields changed, and the old second
			// one has no match.
			name: "repeated filter type, the first gone", m: exchangeinfo.Spot,
			from: twoPrices, to: replace(t, exchangeinfo.Spot, twoPrices, "ETHBTC", `{"filterType":"PRICE_FILTER","minPrice":"0.00001000","maxPrice":"922327.00000000","tickSize":"0.00001000"},`, ``),
			want: []Change{
				{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Old: rs(extraPrice)},
				{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "maxPrice", Old: rs(`"922327.00000000"`), New: rs(`"2.00000000"`)},
				{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "minPrice", Old: rs(`"0.00001000"`), New: rs(`"1.00000000"`)},
				{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.00001000"`), New: rs(`"1.00000000"`)},
			},
		},
		{
			name: "two filters", m: exchangeinfo.Spot,
			from: spot, to: edits(t, spot, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`, `"stepSize":"0.00010000"`, `"stepSize":"0.00100000"`),
			want: []Change{
				{Kind: Filter, Symbol: "ETHBTC", Filter: "LOT_SIZE", Field: "stepSize", Old: rs(`"0.00010000"`), New: rs(`"0.00100000"`)},
				{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.00001000"`), New: rs(`"0.00000100"`)},
			},
		},
		{
			name: "a filter and a member after filters", m: exchangeinfo.Spot,
			from: spot, to: edits(t, spot, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`, `"defaultSelfTradePreventionMode":"NONE"`, `"defaultSelfTradePreventionMode":"EXPIRE_MAKER"`),
			want: []Change{
				{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.00001000"`), New: rs(`"0.00000100"`)},
				{Kind: Field, Symbol: "ETHBTC", Field: "defaultSelfTradePreventionMode", Old: rs(`"NONE"`), New: rs(`"EXPIRE_MAKER"`)},
			},
		},
		{
			name: "a filter type changed", m: exchangeinfo.Spot,
			from: spot, to: edits(t, spot, "ETHBTC", `"filterType":"ICEBERG_PARTS"`, `"filterType":"ICEBERG_LIMIT"`),
			want: []Change{
				{Kind: Filter, Symbol: "ETHBTC", Filter: "ICEBERG_LIMIT", New: rs(`{"filterType":"ICEBERG_LIMIT","limit":10}`)},
				{Kind: Filter, Symbol: "ETHBTC", Filter: "ICEBERG_PARTS", Old: rs(`{"filterType":"ICEBERG_PARTS","limit":10}`)},
			},
		},
		{
			name: "escapes before filters", m: exchangeinfo.Spot,
			from: escaped, to: edits(t, escaped, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.00001000"`), New: rs(`"0.00000100"`)}},
		},
		{
			name: "escapes and a member", m: exchangeinfo.Spot,
			from: escaped, to: edits(t, escaped, "ETHBTC", `"quotePrecision":8`, `"quotePrecision":6`),
			want: []Change{{Kind: Field, Symbol: "ETHBTC", Field: "quotePrecision", Old: rs(`8`), New: rs(`6`)}},
		},
		{
			name: "brackets in a string before filters", m: exchangeinfo.Spot,
			from: noted, to: edits(t, noted, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.00001000"`), New: rs(`"0.00000100"`)}},
		},
		{
			name: "a nested filters member before filters", m: exchangeinfo.Spot,
			from: nested, to: edits(t, nested, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.00001000"`), New: rs(`"0.00000100"`)}},
		},
		{
			name: "the nested filters member changed", m: exchangeinfo.Spot,
			from: nested, to: edits(t, nested, "ETHBTC", `"tickSize":"9"`, `"tickSize":"8"`),
			want: []Change{{Kind: Field, Symbol: "ETHBTC", Field: "nest", Old: rs(`{"filters":[{"filterType":"PRICE_FILTER","tickSize":"9"}]}`), New: rs(`{"filters":[{"filterType":"PRICE_FILTER","tickSize":"8"}]}`)}},
		},
		{
			name: "filters first", m: exchangeinfo.Spot,
			from: filtersFirst, to: edits(t, filtersFirst, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.00001000"`), New: rs(`"0.00000100"`)}},
		},
		{
			// encoding/json keeps the last filters: a change to the first is none.
			name: "filters twice, the first changed", m: exchangeinfo.Spot,
			from: twoFilters, to: edits(t, twoFilters, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`),
		},
		{
			name: "filters twice, the last changed", m: exchangeinfo.Spot,
			from: twoFilters, to: edits(t, twoFilters, "ETHBTC", `"minQty":"7"`, `"minQty":"6"`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "LOT_SIZE", Field: "minQty", Old: rs(`"7"`), New: rs(`"6"`)}},
		},
		{
			name: "many filters of one type", m: exchangeinfo.Spot,
			from: manyX(t, spot, "1"), to: manyX(t, spot, "2"),
			want: slices.Repeat([]Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "X", Field: "v", Old: rs(`"1"`), New: rs(`"2"`)}}, 20),
		},
		{
			name: "a filter field twice, the first changed", m: exchangeinfo.Spot,
			from: dupTick, to: edits(t, dupTick, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`),
		},
		{
			name: "a filter field twice, the last changed", m: exchangeinfo.Spot,
			from: dupTick, to: edits(t, dupTick, "ETHBTC", `"tickSize":"0.5"`, `"tickSize":"0.6"`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.5"`), New: rs(`"0.6"`)}},
		},
		{
			name: "the word filters before filters", m: exchangeinfo.Spot,
			from: words, to: edits(t, words, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`),
			want: []Change{{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize", Old: rs(`"0.00001000"`), New: rs(`"0.00000100"`)}},
		},
		{
			// The second filters wins: the first's change is none.
			name: "filters twice, changes in the first and after the second", m: exchangeinfo.Spot,
			from: twoFilters, to: edits(t, twoFilters, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00000100"`,
				`"defaultSelfTradePreventionMode":"NONE"`, `"defaultSelfTradePreventionMode":"EXPIRE_BOTH"`),
			want: []Change{{Kind: Field, Symbol: "ETHBTC", Field: "defaultSelfTradePreventionMode", Old: rs(`"NONE"`), New: rs(`"EXPIRE_BOTH"`)}},
		},
		{
			// é as a \u escape in one member, as UTF-8 in the other: Old and
			// New are Binance's bytes, names are decoded.
			name: "names and values not ASCII", m: exchangeinfo.Spot,
			from: spot, to: edits(t, spot, "ETHBTC", `"tickSize":"0.00001000"`, `"tickSize":"0.00001000","t\u00e9":"\u00e9","n`+"\u00e9"+`":"`+"\u00e9"+`"`),
			want: []Change{
				{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "n\u00e9", New: rs(`"` + "\u00e9" + `"`)},
				{Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "t\u00e9", New: rs(`"\u00e9"`)},
			},
		},
		{
			name: "permissionSets", m: exchangeinfo.USDM,
			from: usdm, to: replace(t, exchangeinfo.USDM, usdm, "BTCUSDT", "\"COPY\",\n                \"RPI\"", `"RPI"`),
			want: []Change{{Kind: Field, Symbol: "BTCUSDT", Field: "permissionSets", Old: rs(`["GRID","COPY","RPI"]`), New: rs(`["GRID","RPI"]`)}},
		},
		{
			name: "deliveryDate", m: exchangeinfo.USDM,
			from: usdm, to: replace(t, exchangeinfo.USDM, usdm, "BTCUSDT", `"deliveryDate": 4133404802000`, `"deliveryDate": 4133404800000`),
			want: []Change{{Kind: Field, Symbol: "BTCUSDT", Field: "deliveryDate", Old: rs(`4133404802000`), New: rs(`4133404800000`)}},
		},
		{
			name: "contractStatus", m: exchangeinfo.COINM,
			from: coinm, to: replace(t, exchangeinfo.COINM, coinm, "BTCUSD_PERP", `"contractStatus":"TRADING"`, `"contractStatus":"DELIVERING"`),
			want: []Change{{Kind: Status, Symbol: "BTCUSD_PERP", Field: "contractStatus", Old: rs(`"TRADING"`), New: rs(`"DELIVERING"`)}},
		},
		{
			name: "delisted on COIN-M", m: exchangeinfo.COINM,
			from: coinm, to: removeSymbol(t, exchangeinfo.COINM, coinm, "BTCUSD_PERP"),
			want: []Change{{Kind: Delisted, Symbol: "BTCUSD_PERP", Status: "TRADING"}},
		},
		{
			name: "permissions null", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"permissions":`+ethbtcPerms, `"permissions":null`),
			want: []Change{{Kind: Field, Symbol: "ETHBTC", Field: "permissions", Old: rs(ethbtcPerms), New: rs(`null`)}},
		},
		{
			name: "permissions reordered", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `["SPOT","MARGIN",`, `["MARGIN","SPOT","SPOT",`),
		},
		{
			name: "escaped member name", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"status":"TRADING"`, `"st\u0061tus":"TRADING"`),
		},
		{
			name: "repeated member, the last wins", m: exchangeinfo.Spot,
			from: spot, to: replace(t, exchangeinfo.Spot, spot, "ETHBTC", `"status":"TRADING"`, `"status":"BREAK","status":"TRADING"`),
		},
		{
			name: "filters and members reordered", m: exchangeinfo.Spot,
			from: spot, to: reorder(t, exchangeinfo.Spot, spot, "ETHBTC"),
		},
		{
			name: "whitespace", m: exchangeinfo.Spot,
			from: spot, to: indent(t, spot),
		},
		{
			name: "USD-M compacted", m: exchangeinfo.USDM,
			from: usdm, to: compactBody(t, usdm),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diff(t, tt.m, tt.from, tt.to)
			if len(got) != len(tt.want) {
				t.Fatalf("Diff = %d changes %v, want %d", len(got), showAll(got), len(tt.want))
			}
			for i := range got {
				if show(got[i]) != show(tt.want[i]) {
					t.Errorf("Diff[%d] = %s\nwant      %s", i, show(got[i]), show(tt.want[i]))
				}
			}
		})
	}
}

func showAll(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = show(c)
	}
	return out
}

// reorder returns body with the members of symbol name in sorted order and
// its filters reversed.
func reorder(tb testing.TB, m exchangeinfo.Market, body []byte, name string) []byte {
	tb.Helper()
	start, end := span(tb, body, name)
	var sym map[string]json.RawMessage
	if err := json.Unmarshal(body[start:end], &sym); err != nil {
		tb.Fatal(err)
	}
	var filters []json.RawMessage
	if err := json.Unmarshal(sym["filters"], &filters); err != nil {
		tb.Fatal(err)
	}
	slices.Reverse(filters)
	sym["filters"], _ = json.Marshal(filters)
	out, err := json.Marshal(sym) // sorted keys
	if err != nil {
		tb.Fatal(err)
	}
	if bytes.Equal(out, body[start:end]) {
		tb.Fatal("reorder changed nothing")
	}
	return slices.Concat(body[:start], out, body[end:])
}

func indent(tb testing.TB, body []byte) []byte {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "\t"); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func compactBody(tb testing.TB, body []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TestDiff_Same checks that a snapshot has no changes from itself: parsed
// twice from the same bytes, or from the bytes reformatted.
func TestDiff_Same(t *testing.T) {
	for _, tt := range []struct {
		file string
		m    exchangeinfo.Market
	}{
		{"spot_exchangeinfo.json", exchangeinfo.Spot},
		{"usdm_exchangeinfo.json", exchangeinfo.USDM},
		{"coinm_exchangeinfo.json", exchangeinfo.COINM},
		{"usdm_exchangeinfo_2024-02-12.json", exchangeinfo.USDM},
		{"spot_testnet_exchangeinfo_2021-07-11.json", exchangeinfo.Spot},
	} {
		t.Run(tt.file, func(t *testing.T) {
			body := fixtures.Read(t, "binance/"+tt.file)
			a := parse(t, tt.m, body, fetched1)
			if got := Diff(a, a); got != nil {
				t.Errorf("Diff(a, a) = %v, want nil", showAll(got))
			}
			for name, other := range map[string][]byte{
				"same bytes":  bytes.Clone(body),
				"indented":    indent(t, body),
				"compacted":   compactBody(t, body),
				"serverTime":  bytes.Replace(body, []byte(`"serverTime":`), []byte(`"serverTime":1,"x":`), 1),
				"other field": bytes.Replace(body, []byte(`"timezone":`), []byte(`"timezone":"X","y":`), 1),
			} {
				if got := Diff(a, parse(t, tt.m, other, fetched2)); got != nil {
					t.Errorf("%s: Diff = %v, want nil", name, showAll(got))
				}
			}
		})
	}
}

// TestDiff_RealPairs diffs recorded answers far apart in time, both ways,
// against the reference.
func TestDiff_RealPairs(t *testing.T) {
	for _, tt := range []struct {
		name, old, new string
		m              exchangeinfo.Market
		kinds          []Kind // that the pair has
	}{
		{"usdm 22 months", "usdm_exchangeinfo_2024-02-12.json", "usdm_exchangeinfo.json", exchangeinfo.USDM,
			[]Kind{RateLimits, Listed, Delisted, Status, Filter, Field}},
		{"spot testnet to spot", "spot_testnet_exchangeinfo_2021-07-11.json", "spot_exchangeinfo.json", exchangeinfo.Spot,
			[]Kind{RateLimits, Listed, Permissions, Filter, Field}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			old, new := fixtures.Read(t, "binance/"+tt.old), fixtures.Read(t, "binance/"+tt.new)
			forward := diff(t, tt.m, old, new)
			backward := diff(t, tt.m, new, old)
			count := map[Kind]int{}
			for _, c := range forward {
				count[c.Kind]++
			}
			t.Logf("%d changes: %v", len(forward), count)
			for _, k := range tt.kinds {
				if count[k] == 0 {
					t.Errorf("no %s change, want some", k)
				}
			}
			if len(backward) != len(forward) {
				t.Errorf("%d changes backward, %d forward; want as many", len(backward), len(forward))
			}
		})
	}
}

func TestDiff_Pair22MonthsExamples(t *testing.T) {
	old := parse(t, exchangeinfo.USDM, fixtures.Read(t, "binance/usdm_exchangeinfo_2024-02-12.json"), fetched1)
	new := parse(t, exchangeinfo.USDM, fixtures.Read(t, "binance/usdm_exchangeinfo.json"), fetched2)
	got := Diff(old, new)
	if got[0].Kind != RateLimits || !strings.Contains(string(got[0].Old), `"limit":2400`) || !strings.Contains(string(got[0].New), `"limit":6000`) {
		t.Errorf("Diff[0] = %s, want rate_limits from 2400 to 6000 a minute", show(got[0]))
	}
	// BTCUSDT had settlePlan, and gained permissionSets.
	var settle, sets bool
	for _, c := range got {
		if c.Symbol == "BTCUSDT" && c.Kind == Field {
			settle = settle || c.Field == "settlePlan" && c.New == nil
			sets = sets || c.Field == "permissionSets" && c.Old == nil && string(c.New) == `["GRID","COPY","RPI"]`
		}
	}
	if !settle || !sets {
		t.Errorf("BTCUSDT: settlePlan gone %v, permissionSets appeared %v; want both", settle, sets)
	}
}

func TestChange_JSON(t *testing.T) {
	c := Change{
		Market: exchangeinfo.Spot, Kind: Filter, Symbol: "ETHBTC", Filter: "PRICE_FILTER", Field: "tickSize",
		Old: json.RawMessage(`"0.00001000"`), New: json.RawMessage(`"0.00000100"`),
		From: Ref{FetchedAt: fetched1, ETag: `"a"`, ServerTime: 1},
		To:   Ref{FetchedAt: fetched2, ETag: `"b"`, ServerTime: 2},
	}
	got, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"market":"spot","kind":"filter","symbol":"ETHBTC","filter":"PRICE_FILTER","field":"tickSize","old":"0.00001000","new":"0.00000100",` +
		`"from":{"fetched_at":"2026-12-06T19:47:00Z","etag":"\"a\"","server_time":1},"to":{"fetched_at":"2026-12-06T19:48:00Z","etag":"\"b\"","server_time":2}}`
	if string(got) != want {
		t.Errorf("Marshal = %s\nwant      %s", got, want)
	}
	var back Change
	if err := json.Unmarshal(got, &back); err != nil || show(back) != show(c) || back.From != c.From || back.To != c.To {
		t.Errorf("Unmarshal(Marshal(c)) = %+v, %v; want %+v", back, err, c)
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range Kinds() {
		if got, err := ParseKind(" " + strings.ToUpper(string(k)) + " "); got != k || err != nil {
			t.Errorf("ParseKind(%q) = %q, %v; want %q, nil", k, got, err, k)
		}
	}
	for _, s := range []string{"", "rate-limits", "list", "filters"} {
		if got, err := ParseKind(s); err == nil {
			t.Errorf("ParseKind(%q) = %q, nil; want an error", s, got)
		}
	}
}

// TestDiff_Large diffs symbols far larger than Binance's (a real answer's
// objects are under 3 kB; the fetcher holds back those over 64 KiB, but
// Diff may be given anything Parse accepts): every one of their filters,
// permissions and members changed, and many brackets before filters. Each
// comparison is linear in such an object, or near it: Diff takes a fraction
// of a second here, where a quadratic one would take minutes.
func TestDiff_Large(t *testing.T) {
	const n = 40_000
	build := func(v int) []byte {
		var b bytes.Buffer
		b.WriteString(`{"serverTime":1,"rateLimits":[],"symbols":[{"symbol":"BIG","status":"TRADING","note":"`)
		b.WriteString(strings.Repeat("[", n))
		b.WriteString(`","deep":`)
		b.WriteString(strings.Repeat("[", 5000) + strings.Repeat("]", 5000))
		for i := range n {
			fmt.Fprintf(&b, `,"m%d":%d`, i, v)
		}
		b.WriteString(`,"filters":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"filterType":"F%d","x":%d}`, i%(n/2), v)
		}
		b.WriteString(`],"permissions":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"P%d"`, i*2+v)
		}
		b.WriteString(`]}]}`)
		return b.Bytes()
	}
	got := Diff(parse(t, exchangeinfo.Spot, build(0), fetched1), parse(t, exchangeinfo.Spot, build(1), fetched2))
	checkOrder(t, got)
	count := map[Kind]int{}
	for _, c := range got {
		count[c.Kind]++
	}
	if count[Field] != n || count[Filter] != n || count[Permissions] != 1 || len(got) != 2*n+1 {
		t.Errorf("Diff = %d changes %v, want %d fields, %d filters, 1 permissions", len(got), count, n, n)
	}
}
