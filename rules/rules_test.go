package rules_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/rules"
)

// recordings are the recorded Binance answers, by market.
var recordings = []struct {
	market exchangeinfo.Market
	file   string
}{
	{exchangeinfo.Spot, "spot_exchangeinfo.json"},
	{exchangeinfo.Spot, "spot_testnet_exchangeinfo_2021-07-11.json"},
	{exchangeinfo.USDM, "usdm_exchangeinfo.json"},
	{exchangeinfo.USDM, "usdm_exchangeinfo_2024-02-12.json"},
	{exchangeinfo.COINM, "coinm_exchangeinfo.json"},
}

// snapshot parses a fixture once per test binary.
var snapshots = map[string]*exchangeinfo.Snapshot{}

func snapshot(t testing.TB, m exchangeinfo.Market, file string) *exchangeinfo.Snapshot {
	t.Helper()
	if s, ok := snapshots[file]; ok {
		return s
	}
	s, err := exchangeinfo.Parse(m, fixtures.Read(t, "binance/"+file), time.Now())
	if err != nil {
		t.Fatalf("Parse(%s) = %v", file, err)
	}
	snapshots[file] = s
	return s
}

func symbol(t testing.TB, m exchangeinfo.Market, file, name string) exchangeinfo.Symbol {
	t.Helper()
	sym, ok := snapshot(t, m, file).Lookup(name)
	if !ok {
		t.Fatalf("%s: no symbol %s", file, name)
	}
	return sym
}

func rulesFor(t testing.TB, m exchangeinfo.Market, file, name string) rules.Rules {
	t.Helper()
	r, err := rules.For(m, symbol(t, m, file, name))
	if err != nil {
		t.Fatalf("For(%s, %s) = %v", m, name, err)
	}
	return r
}

func intp(n int) *int { return &n }

// wantRules reads a symbol's rules straight from its raw object with
// encoding/json, as the filter documentation describes them, without the
// code under test.
func wantRules(t *testing.T, m exchangeinfo.Market, raw []byte) rules.Rules {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("decode symbol: %v", err)
	}
	str := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		}
		return ""
	}
	w := rules.Rules{
		Market:     m,
		Symbol:     str(obj["symbol"]),
		Status:     str(obj["status"]),
		BaseAsset:  str(obj["baseAsset"]),
		QuoteAsset: str(obj["quoteAsset"]),
	}
	if w.Status == "" {
		w.Status = str(obj["contractStatus"])
	}
	filters := map[string]map[string]any{}
	list, _ := obj["filters"].([]any)
	for _, f := range list {
		f := f.(map[string]any)
		filters[f["filterType"].(string)] = f
	}
	if f, ok := filters["PRICE_FILTER"]; ok {
		w.TickSize, w.MinPrice, w.MaxPrice = str(f["tickSize"]), str(f["minPrice"]), str(f["maxPrice"])
	}
	if f, ok := filters["LOT_SIZE"]; ok {
		w.StepSize, w.MinQty, w.MaxQty = str(f["stepSize"]), str(f["minQty"]), str(f["maxQty"])
	}
	if f, ok := filters["MARKET_LOT_SIZE"]; ok {
		w.MarketStepSize, w.MarketMinQty, w.MarketMaxQty = str(f["stepSize"]), str(f["minQty"]), str(f["maxQty"])
	}
	if f, ok := filters["NOTIONAL"]; ok {
		w.NotionalFilter = "NOTIONAL"
		w.MinNotional, w.MaxNotional = str(f["minNotional"]), str(f["maxNotional"])
		w.ApplyMinNotionalToMarket, _ = f["applyMinToMarket"].(bool)
		w.ApplyMaxNotionalToMarket, _ = f["applyMaxToMarket"].(bool)
	} else if f, ok := filters["MIN_NOTIONAL"]; ok {
		w.NotionalFilter = "MIN_NOTIONAL"
		if m == exchangeinfo.Spot {
			w.MinNotional = str(f["minNotional"])
			w.ApplyMinNotionalToMarket, _ = f["applyToMarket"].(bool)
		} else {
			w.MinNotional = str(f["notional"]) // futures: "notional", always applied to MARKET orders
			w.ApplyMinNotionalToMarket = true
		}
	}
	if n, ok := obj["pricePrecision"].(json.Number); ok {
		i, _ := n.Int64()
		w.PricePrecision = intp(int(i))
	}
	if n, ok := obj["quantityPrecision"].(json.Number); ok {
		i, _ := n.Int64()
		w.QuantityPrecision = intp(int(i))
	}
	if m == exchangeinfo.COINM {
		w.ContractSize = str(obj["contractSize"])
	}
	return w
}

func TestFor(t *testing.T) {
	for _, tt := range []struct {
		name   string
		market exchangeinfo.Market
		file   string
		symbol string
		want   rules.Rules // the values that matter, copied by hand from the fixture
	}{
		{"spot BTCUSDT", exchangeinfo.Spot, "spot_exchangeinfo.json", "BTCUSDT", rules.Rules{
			Market: exchangeinfo.Spot, Symbol: "BTCUSDT", Status: "TRADING", BaseAsset: "BTC", QuoteAsset: "USDT",
			TickSize: "0.01000000", MinPrice: "0.01000000", MaxPrice: "1000000.00000000",
			StepSize: "0.00001000", MinQty: "0.00001000", MaxQty: "9000.00000000",
			MarketStepSize: "0.00000000", MarketMinQty: "0.00000000", MarketMaxQty: "168.82682004",
			NotionalFilter: "NOTIONAL", MinNotional: "5.00000000", MaxNotional: "9000000.00000000",
			ApplyMinNotionalToMarket: true, ApplyMaxNotionalToMarket: false,
		}},
		{"spot ETHBTC", exchangeinfo.Spot, "spot_exchangeinfo.json", "ETHBTC", rules.Rules{
			Market: exchangeinfo.Spot, Symbol: "ETHBTC", Status: "TRADING", BaseAsset: "ETH", QuoteAsset: "BTC",
			TickSize: "0.00001000", MinPrice: "0.00001000", MaxPrice: "922327.00000000",
			StepSize: "0.00010000", MinQty: "0.00010000", MaxQty: "100000.00000000",
			MarketStepSize: "0.00000000", MarketMinQty: "0.00000000", MarketMaxQty: "5598.55135291",
			NotionalFilter: "NOTIONAL", MinNotional: "0.00010000", MaxNotional: "9000000.00000000",
			ApplyMinNotionalToMarket: true,
		}},
		{"spot without MARKET_LOT_SIZE", exchangeinfo.Spot, "spot_exchangeinfo.json", "BCCBTC", rules.Rules{
			Market: exchangeinfo.Spot, Symbol: "BCCBTC", Status: "BREAK", BaseAsset: "BCC", QuoteAsset: "BTC",
			TickSize: "0.00000100", MinPrice: "0.00000100", MaxPrice: "1000.00000000",
			StepSize: "0.00100000", MinQty: "0.00100000", MaxQty: "92141578.00000000",
			NotionalFilter: "NOTIONAL", MinNotional: "0.00010000", MaxNotional: "9000000.00000000",
			ApplyMinNotionalToMarket: true,
		}},
		{"spot leveraged token", exchangeinfo.Spot, "spot_exchangeinfo.json", "BTCUPUSDT", rules.Rules{
			Market: exchangeinfo.Spot, Symbol: "BTCUPUSDT", Status: "TRADING", BaseAsset: "BTCUP", QuoteAsset: "USDT",
			TickSize: "0.00100000", MinPrice: "0.45700000", MaxPrice: "8.67400000",
			StepSize: "0.01000000", MinQty: "0.01000000", MaxQty: "3000.00000000",
			MarketStepSize: "0.00000000", MarketMinQty: "0.00000000", MarketMaxQty: "3000.00000000",
			NotionalFilter: "NOTIONAL", MinNotional: "10.00000000", MaxNotional: "9000000.00000000",
			ApplyMinNotionalToMarket: true,
		}},
		{"spot testnet legacy MIN_NOTIONAL", exchangeinfo.Spot, "spot_testnet_exchangeinfo_2021-07-11.json", "BNBBUSD", rules.Rules{
			Market: exchangeinfo.Spot, Symbol: "BNBBUSD", Status: "TRADING", BaseAsset: "BNB", QuoteAsset: "BUSD",
			TickSize: "0.01000000", MinPrice: "0.01000000", MaxPrice: "10000.00000000",
			StepSize: "0.01000000", MinQty: "0.01000000", MaxQty: "9000.00000000",
			MarketStepSize: "0.00000000", MarketMinQty: "0.00000000", MarketMaxQty: "1000.00000000",
			NotionalFilter: "MIN_NOTIONAL", MinNotional: "10.00000000", ApplyMinNotionalToMarket: true,
		}},
		{"USD-M BTCUSDT", exchangeinfo.USDM, "usdm_exchangeinfo.json", "BTCUSDT", rules.Rules{
			Market: exchangeinfo.USDM, Symbol: "BTCUSDT", Status: "TRADING", BaseAsset: "BTC", QuoteAsset: "USDT",
			TickSize: "0.10", MinPrice: "261.10", MaxPrice: "809484",
			StepSize: "0.001", MinQty: "0.001", MaxQty: "1000",
			MarketStepSize: "0.001", MarketMinQty: "0.001", MarketMaxQty: "1000",
			NotionalFilter: "MIN_NOTIONAL", MinNotional: "100", ApplyMinNotionalToMarket: true,
			PricePrecision: intp(2), QuantityPrecision: intp(3),
		}},
		{"USD-M zero tickSize", exchangeinfo.USDM, "usdm_exchangeinfo.json", "OPENUSDT", rules.Rules{
			Market: exchangeinfo.USDM, Symbol: "OPENUSDT", Status: "PENDING_TRADING", BaseAsset: "OPEN", QuoteAsset: "USDT",
			TickSize: "0", MinPrice: "0", MaxPrice: "200",
			StepSize: "0.0000001", MinQty: "1", MaxQty: "1000000",
			MarketStepSize: "0.0000001", MarketMinQty: "1", MarketMaxQty: "100000",
			NotionalFilter: "MIN_NOTIONAL", MinNotional: "5", ApplyMinNotionalToMarket: true,
			PricePrecision: intp(0), QuantityPrecision: intp(7),
		}},
		{"COIN-M BTCUSD_PERP", exchangeinfo.COINM, "coinm_exchangeinfo.json", "BTCUSD_PERP", rules.Rules{
			Market: exchangeinfo.COINM, Symbol: "BTCUSD_PERP", Status: "TRADING", BaseAsset: "BTC", QuoteAsset: "USD",
			TickSize: "0.1", MinPrice: "1000", MaxPrice: "4520958",
			StepSize: "1", MinQty: "1", MaxQty: "1000000",
			MarketStepSize: "1", MarketMinQty: "1", MarketMaxQty: "60000",
			PricePrecision: intp(1), QuantityPrecision: intp(0), ContractSize: "100",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sym := symbol(t, tt.market, tt.file, tt.symbol)
			got, err := rules.For(tt.market, sym)
			if err != nil {
				t.Fatalf("For(%s, %s) = %v", tt.market, tt.symbol, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("For(%s, %s) = %+v, want %+v", tt.market, tt.symbol, got, tt.want)
			}
			if indep := wantRules(t, tt.market, sym.Raw); !reflect.DeepEqual(got, indep) {
				t.Errorf("For(%s, %s) = %+v, want (decoded with encoding/json) %+v", tt.market, tt.symbol, got, indep)
			}
		})
	}
}

// TestFor_everySymbol reads every symbol of every fixture: no error, and the
// same rules as a plain encoding/json decoding of the object.
func TestFor_everySymbol(t *testing.T) {
	for _, fx := range recordings {
		t.Run(fx.file, func(t *testing.T) {
			s := snapshot(t, fx.market, fx.file)
			for _, sym := range s.Symbols() {
				got, err := rules.For(fx.market, sym)
				if err != nil {
					t.Errorf("For(%s, %s) = %v", fx.market, sym.Name, err)
					continue
				}
				if want := wantRules(t, fx.market, sym.Raw); !reflect.DeepEqual(got, want) {
					t.Errorf("For(%s, %s) = %+v, want %+v", fx.market, sym.Name, got, want)
				}
			}
		})
	}
}

func TestFor_malformed(t *testing.T) {
	for _, tt := range []struct {
		name, raw string
		market    exchangeinfo.Market
		wantErr   string // a part of the message
	}{
		{"tickSize not a decimal", `{"symbol":"X","filters":[{"filterType":"PRICE_FILTER","minPrice":"0","maxPrice":"0","tickSize":"abc"}]}`, exchangeinfo.Spot, `PRICE_FILTER tickSize "abc" is not a decimal`},
		{"exponent", `{"symbol":"X","filters":[{"filterType":"LOT_SIZE","minQty":"1e1000000","maxQty":"0","stepSize":"1"}]}`, exchangeinfo.Spot, "LOT_SIZE minQty"},
		{"negative", `{"symbol":"X","filters":[{"filterType":"LOT_SIZE","minQty":"-1","maxQty":"0","stepSize":"1"}]}`, exchangeinfo.Spot, "LOT_SIZE minQty"},
		{"too many digits", `{"symbol":"X","filters":[{"filterType":"PRICE_FILTER","minPrice":"0","maxPrice":"123456789012345678901","tickSize":"1"}]}`, exchangeinfo.Spot, "maxPrice"},
		{"missing field", `{"symbol":"X","filters":[{"filterType":"MARKET_LOT_SIZE","minQty":"0","maxQty":"0"}]}`, exchangeinfo.Spot, "MARKET_LOT_SIZE has no stepSize"},
		{"flag not a boolean", `{"symbol":"X","filters":[{"filterType":"NOTIONAL","minNotional":"5","applyMinToMarket":"yes","maxNotional":"9","applyMaxToMarket":false}]}`, exchangeinfo.Spot, "applyMinToMarket"},
		{"futures MIN_NOTIONAL without notional", `{"symbol":"X","filters":[{"filterType":"MIN_NOTIONAL"}]}`, exchangeinfo.USDM, "MIN_NOTIONAL has no minNotional"},
		{"twice", `{"symbol":"X","filters":[{"filterType":"LOT_SIZE","minQty":"0","maxQty":"0","stepSize":"1"},{"filterType":"LOT_SIZE","minQty":"0","maxQty":"0","stepSize":"1"}]}`, exchangeinfo.Spot, "LOT_SIZE appears twice"},
		{"filters not an array", `{"symbol":"X","filters":{"filterType":"LOT_SIZE"}}`, exchangeinfo.Spot, "filters is not an array"},
		{"filterType not a string", `{"symbol":"X","filters":[{"filterType":7}]}`, exchangeinfo.Spot, "filterType is not a string"},
		{"pricePrecision", `{"symbol":"X","pricePrecision":"2","filters":[]}`, exchangeinfo.USDM, "pricePrecision"},
		{"contractSize", `{"symbol":"X","contractSize":"ten","filters":[]}`, exchangeinfo.COINM, "contractSize"},
		{"unknown market", `{"symbol":"X","filters":[]}`, exchangeinfo.Market("options"), "unknown market"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.For(tt.market, exchangeinfo.Symbol{Name: "X", Raw: []byte(tt.raw)})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("For(%s) = %v, want an error containing %q", tt.raw, err, tt.wantErr)
			}
		})
	}
}

func TestFor_lenient(t *testing.T) {
	for _, tt := range []struct {
		name, raw string
		market    exchangeinfo.Market
		want      rules.Rules
	}{
		{"unknown filters and fields ignored", `{"symbol":"X","status":"TRADING","filters":[{"filterType":"SOMETHING_NEW","minQty":{"a":1}},{"filterType":"PRICE_FILTER","minPrice":"1","maxPrice":"2","tickSize":"0.5","extra":[1]}]}`,
			exchangeinfo.Spot, rules.Rules{Market: exchangeinfo.Spot, Symbol: "X", Status: "TRADING", TickSize: "0.5", MinPrice: "1", MaxPrice: "2"}},
		{"numbers for strings", `{"symbol":"X","filters":[{"filterType":"LOT_SIZE","minQty":0.001,"maxQty":100,"stepSize":0.001}]}`,
			exchangeinfo.Spot, rules.Rules{Market: exchangeinfo.Spot, Symbol: "X", StepSize: "0.001", MinQty: "0.001", MaxQty: "100"}},
		{"no filters", `{"symbol":"X"}`, exchangeinfo.USDM, rules.Rules{Market: exchangeinfo.USDM, Symbol: "X"}},
		{"NOTIONAL wins over MIN_NOTIONAL", `{"symbol":"X","filters":[{"filterType":"MIN_NOTIONAL","minNotional":"10","applyToMarket":false},{"filterType":"NOTIONAL","minNotional":"5","applyMinToMarket":true,"maxNotional":"100","applyMaxToMarket":true}]}`,
			exchangeinfo.Spot, rules.Rules{Market: exchangeinfo.Spot, Symbol: "X", NotionalFilter: "NOTIONAL", MinNotional: "5", MaxNotional: "100", ApplyMinNotionalToMarket: true, ApplyMaxNotionalToMarket: true}},
		{"legacy applyToMarket false", `{"symbol":"X","filters":[{"filterType":"MIN_NOTIONAL","minNotional":"10","applyToMarket":false,"avgPriceMins":5}]}`,
			exchangeinfo.Spot, rules.Rules{Market: exchangeinfo.Spot, Symbol: "X", NotionalFilter: "MIN_NOTIONAL", MinNotional: "10"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rules.For(tt.market, exchangeinfo.Symbol{Name: "X", Status: tt.want.Status, Raw: []byte(tt.raw)})
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("For(%s) = %+v, %v, want %+v", tt.raw, got, err, tt.want)
			}
		})
	}
}

func TestRules_JSON(t *testing.T) {
	r := rulesFor(t, exchangeinfo.USDM, "usdm_exchangeinfo.json", "BTCUSDT")
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"market":"usdm"`, `"tick_size":"0.10"`, `"min_notional":"100"`, `"apply_min_notional_to_market":true`, `"price_precision":2`, `"market_max_qty":"1000"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("json.Marshal(Rules) = %s, want it to contain %s", b, key)
		}
	}
	var back rules.Rules
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, r) {
		t.Errorf("json.Unmarshal(%s) = %+v, %v, want %+v", b, back, err, r)
	}
}

// ok and fail build the expected checks.
func ok(filter string) rules.Check { return rules.Check{Filter: filter, OK: true} }
func fail(filter, reason string) rules.Check {
	return rules.Check{Filter: filter, Reason: reason}
}

const notChecked = "not checked: a MARKET order has no price; give the expected fill price to check the notional"

func TestRules_Normalize(t *testing.T) {
	spot := rulesFor(t, exchangeinfo.Spot, "spot_exchangeinfo.json", "BTCUSDT")
	usdm := rulesFor(t, exchangeinfo.USDM, "usdm_exchangeinfo.json", "BTCUSDT")
	zeroTick := rulesFor(t, exchangeinfo.USDM, "usdm_exchangeinfo.json", "OPENUSDT")
	coinm := rulesFor(t, exchangeinfo.COINM, "coinm_exchangeinfo.json", "BTCUSD_PERP")
	testnet := rulesFor(t, exchangeinfo.Spot, "spot_testnet_exchangeinfo_2021-07-11.json", "BNBBUSD")
	noMarketLot := rulesFor(t, exchangeinfo.Spot, "spot_exchangeinfo.json", "BCCBTC")
	// A grid that does not start at zero: 0.2, 0.7, 1.2, … on futures; 0, 0.5,
	// 1.0, … on spot, which anchors at zero.
	offGrid := rules.Rules{Market: exchangeinfo.USDM, TickSize: "0.5", MinPrice: "0.2", MaxPrice: "100", StepSize: "1", MinQty: "0", MaxQty: "0"}
	offGridSpot := offGrid
	offGridSpot.Market = exchangeinfo.Spot
	noStep := rules.Rules{Market: exchangeinfo.Spot, TickSize: "0.01", MinPrice: "0", MaxPrice: "0", StepSize: "0", MinQty: "0", MaxQty: "0"}
	notForMarket := rules.Rules{Market: exchangeinfo.Spot, StepSize: "0.1", MinQty: "0.1", MaxQty: "100",
		NotionalFilter: "NOTIONAL", MinNotional: "10", MaxNotional: "1000"}

	for _, tt := range []struct {
		name  string
		rules rules.Rules
		order rules.Order
		want  rules.Normalized
	}{
		{"BUY on the grid", spot, rules.Order{Price: "27123.45", Quantity: "0.00123", Side: rules.Buy},
			rules.Normalized{Price: "27123.45", Quantity: "0.00123", Notional: "33.3618435", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"BUY rounds down", spot, rules.Order{Price: "27123.459", Quantity: "0.001239", Side: rules.Buy},
			rules.Normalized{Price: "27123.45", Quantity: "0.00123", Notional: "33.3618435", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"SELL rounds up", spot, rules.Order{Price: "27123.451", Quantity: "0.001239", Side: rules.Sell},
			rules.Normalized{Price: "27123.46", Quantity: "0.00123", Notional: "33.3618558", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"SELL on the grid stays", spot, rules.Order{Price: "27123.4500", Quantity: "0.0012300", Side: rules.Sell},
			rules.Normalized{Price: "27123.45", Quantity: "0.00123", Notional: "33.3618435", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"no side, nearest below", spot, rules.Order{Price: "27123.4549", Quantity: "1"},
			rules.Normalized{Price: "27123.45", Quantity: "1.00000", Notional: "27123.45", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"no side, half way goes up", spot, rules.Order{Price: "27123.455", Quantity: "1"},
			rules.Normalized{Price: "27123.46", Quantity: "1.00000", Notional: "27123.46", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"no side, nearest above", spot, rules.Order{Price: "27123.4551", Quantity: "1"},
			rules.Normalized{Price: "27123.46", Quantity: "1.00000", Notional: "27123.46", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"integer price gets the grid's decimals", spot, rules.Order{Price: "30000", Quantity: "2", Type: rules.Limit},
			rules.Normalized{Price: "30000.00", Quantity: "2.00000", Notional: "60000", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"BUY below one tick rounds to 0", spot, rules.Order{Price: "0.005", Quantity: "1", Side: rules.Buy},
			rules.Normalized{Price: "0.00", Quantity: "1.00000", Notional: "0",
				Checks: []rules.Check{fail("PRICE_FILTER", "price rounds to 0 on tickSize 0.01000000"), ok("LOT_SIZE"),
					fail("NOTIONAL", "notional 0 is below the minimum 5.00000000")}}},
		{"SELL below one tick rounds up to minPrice", spot, rules.Order{Price: "0.005", Quantity: "1000", Side: rules.Sell},
			rules.Normalized{Price: "0.01", Quantity: "1000.00000", Notional: "10", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"price above maxPrice", spot, rules.Order{Price: "1000000.01", Quantity: "0.00001"},
			rules.Normalized{Price: "1000000.01", Quantity: "0.00001", Notional: "10.0000001",
				Checks: []rules.Check{fail("PRICE_FILTER", "price 1000000.01 is above maxPrice 1000000.00000000"), ok("LOT_SIZE"), ok("NOTIONAL")}}},
		{"quantity rounds to 0", spot, rules.Order{Price: "30000", Quantity: "0.000009"},
			rules.Normalized{Price: "30000.00", Quantity: "0.00000", Notional: "0",
				Checks: []rules.Check{ok("PRICE_FILTER"), fail("LOT_SIZE", "quantity rounds to 0 on stepSize 0.00001000"),
					fail("NOTIONAL", "notional 0 is below the minimum 5.00000000")}}},
		{"quantity above maxQty", spot, rules.Order{Price: "1", Quantity: "9000.00001"},
			rules.Normalized{Price: "1.00", Quantity: "9000.00001", Notional: "9000.00001",
				Checks: []rules.Check{ok("PRICE_FILTER"), fail("LOT_SIZE", "quantity 9000.00001 is above maxQty 9000.00000000"), ok("NOTIONAL")}}},
		{"notional below minimum", spot, rules.Order{Price: "30000", Quantity: "0.00016", Side: rules.Buy},
			rules.Normalized{Price: "30000.00", Quantity: "0.00016", Notional: "4.8",
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), fail("NOTIONAL", "notional 4.8 is below the minimum 5.00000000")}}},
		{"notional above maximum", spot, rules.Order{Price: "1000000", Quantity: "9000"},
			rules.Normalized{Price: "1000000.00", Quantity: "9000.00000", Notional: "9000000000",
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), fail("NOTIONAL", "notional 9000000000 is above the maximum 9000000.00000000")}}},
		{"MARKET without price", spot, rules.Order{Quantity: "0.001239", Side: rules.Buy, Type: rules.Market},
			rules.Normalized{Quantity: "0.00123", OK: true,
				Checks: []rules.Check{ok("LOT_SIZE"), ok("MARKET_LOT_SIZE"), {Filter: "NOTIONAL", OK: true, Reason: notChecked}}}},
		{"MARKET with the expected price", spot, rules.Order{Price: "30000.123", Quantity: "0.00016", Type: rules.Market},
			rules.Normalized{Quantity: "0.00016", Notional: "4.80001968",
				Checks: []rules.Check{ok("LOT_SIZE"), ok("MARKET_LOT_SIZE"), fail("NOTIONAL", "notional 4.80001968 is below the minimum 5.00000000")}}},
		{"MARKET above MARKET_LOT_SIZE maxQty", spot, rules.Order{Quantity: "200", Type: rules.Market},
			rules.Normalized{Quantity: "200.00000",
				Checks: []rules.Check{ok("LOT_SIZE"), fail("MARKET_LOT_SIZE", "quantity 200.00000 is above maxQty 168.82682004"), {Filter: "NOTIONAL", OK: true, Reason: notChecked}}}},
		{"MARKET maxNotional not applied (applyMaxToMarket false)", spot, rules.Order{Price: "1000000", Quantity: "100", Type: rules.Market},
			rules.Normalized{Quantity: "100.00000", Notional: "100000000", OK: true,
				Checks: []rules.Check{ok("LOT_SIZE"), ok("MARKET_LOT_SIZE"), ok("NOTIONAL")}}},
		{"MARKET on a symbol without MARKET_LOT_SIZE", noMarketLot, rules.Order{Quantity: "1.2345", Type: rules.Market},
			rules.Normalized{Quantity: "1.234", OK: true,
				Checks: []rules.Check{ok("LOT_SIZE"), {Filter: "NOTIONAL", OK: true, Reason: notChecked}}}},
		{"MARKET notional not applied to MARKET orders", notForMarket, rules.Order{Price: "1", Quantity: "5", Type: rules.Market},
			rules.Normalized{Quantity: "5.0", Notional: "5", OK: true,
				Checks: []rules.Check{ok("LOT_SIZE"), {Filter: "NOTIONAL", OK: true, Reason: "not applied to MARKET orders"}}}},
		{"same notional on a LIMIT order fails", notForMarket, rules.Order{Price: "1", Quantity: "5"},
			rules.Normalized{Price: "1", Quantity: "5.0", Notional: "5",
				Checks: []rules.Check{ok("LOT_SIZE"), fail("NOTIONAL", "notional 5 is below the minimum 10")}}},
		{"legacy MIN_NOTIONAL applyToMarket", testnet, rules.Order{Price: "300", Quantity: "0.029", Type: rules.Market},
			rules.Normalized{Quantity: "0.02", Notional: "6", OK: false,
				Checks: []rules.Check{ok("LOT_SIZE"), ok("MARKET_LOT_SIZE"), fail("MIN_NOTIONAL", "notional 6 is below the minimum 10.00000000")}}},
		{"USD-M BUY, MIN_NOTIONAL", usdm, rules.Order{Price: "43210.987", Quantity: "0.0025", Side: rules.Buy},
			rules.Normalized{Price: "43210.9", Quantity: "0.002", Notional: "86.4218",
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), fail("MIN_NOTIONAL", "notional 86.4218 is below the minimum 100")}}},
		{"USD-M below minPrice", usdm, rules.Order{Price: "261.05", Quantity: "1", Side: rules.Buy},
			rules.Normalized{Price: "261.0", Quantity: "1.000", Notional: "261",
				Checks: []rules.Check{fail("PRICE_FILTER", "price 261.0 is below minPrice 261.10"), ok("LOT_SIZE"), ok("MIN_NOTIONAL")}}},
		{"USD-M MARKET uses MARKET_LOT_SIZE's step", usdm, rules.Order{Quantity: "1.23456", Side: rules.Sell, Type: rules.Market},
			rules.Normalized{Quantity: "1.234", OK: true,
				Checks: []rules.Check{ok("LOT_SIZE"), ok("MARKET_LOT_SIZE"), {Filter: "MIN_NOTIONAL", OK: true, Reason: notChecked}}}},
		{"USD-M zero tickSize: no grid", zeroTick, rules.Order{Price: "1.234567891", Quantity: "12.34567891", Side: rules.Buy},
			rules.Normalized{Price: "1.234567891", Quantity: "12.3456789", Notional: "15.2415787625361999", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE"), ok("MIN_NOTIONAL")}}},
		{"COIN-M: contracts, no notional", coinm, rules.Order{Price: "43210.987", Quantity: "2.9", Side: rules.Sell},
			rules.Normalized{Price: "43211.0", Quantity: "2", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE")}}},
		{"futures grid starts at minPrice", offGrid, rules.Order{Price: "1.0", Quantity: "3.7", Side: rules.Buy},
			rules.Normalized{Price: "0.7", Quantity: "3", Notional: "2.1", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE")}}},
		{"spot grid starts at zero", offGridSpot, rules.Order{Price: "1.0", Quantity: "3.7", Side: rules.Buy},
			rules.Normalized{Price: "1.0", Quantity: "3", Notional: "3", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE")}}},
		{"spot price off the futures-style grid", offGridSpot, rules.Order{Price: "0.2", Quantity: "1", Side: rules.Sell},
			rules.Normalized{Price: "0.5", Quantity: "1", Notional: "0.5", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE")}}},
		{"zero maxQty: no maximum", offGrid, rules.Order{Price: "1.2", Quantity: "99999999999999999999"},
			rules.Normalized{Price: "1.2", Quantity: "99999999999999999999", Notional: "119999999999999999998.8", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE")}}},
		{"zero stepSize: quantity as asked", noStep, rules.Order{Price: "1.239", Quantity: "0.123456789000", Side: rules.Sell},
			rules.Normalized{Price: "1.24", Quantity: "0.123456789", Notional: "0.15308641836", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE")}}},
		{"smallest and largest inputs", noStep, rules.Order{Price: "99999999999999999999.99999999999999999999", Quantity: "0.00000000000000000001", Side: rules.Buy},
			rules.Normalized{Price: "99999999999999999999.99", Quantity: "0.00000000000000000001", Notional: "0.9999999999999999999999", OK: true,
				Checks: []rules.Check{ok("PRICE_FILTER"), ok("LOT_SIZE")}}},
		{"no filters at all", rules.Rules{Market: exchangeinfo.Spot}, rules.Order{Price: "1.50", Quantity: "2"},
			rules.Normalized{Price: "1.5", Quantity: "2", Notional: "3", OK: true, Checks: []rules.Check{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.rules.Normalize(tt.order)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Normalize(%+v) = %+v, %v, want %+v", tt.order, got, err, tt.want)
			}
		})
	}
}

func TestRules_Normalize_badInput(t *testing.T) {
	spot := rulesFor(t, exchangeinfo.Spot, "spot_exchangeinfo.json", "BTCUSDT")
	for _, tt := range []struct {
		name      string
		order     rules.Order
		wantField string
	}{
		{"LIMIT without price", rules.Order{Quantity: "1"}, "price"},
		{"not a number", rules.Order{Price: "abc", Quantity: "1"}, "price"},
		{"negative price", rules.Order{Price: "-1", Quantity: "1"}, "price"},
		{"zero price", rules.Order{Price: "0.000", Quantity: "1"}, "price"},
		{"exponent", rules.Order{Price: "1e5", Quantity: "1"}, "price"},
		{"huge exponent", rules.Order{Price: "1e1000000", Quantity: "1"}, "price"},
		{"comma", rules.Order{Price: "1,5", Quantity: "1"}, "price"},
		{"space", rules.Order{Price: " 1", Quantity: "1"}, "price"},
		{"plus sign", rules.Order{Price: "+1", Quantity: "1"}, "price"},
		{"point without decimals", rules.Order{Price: "1.", Quantity: "1"}, "price"},
		{"point first", rules.Order{Price: ".5", Quantity: "1"}, "price"},
		{"21 digits", rules.Order{Price: strings.Repeat("9", 21), Quantity: "1"}, "price"},
		{"21 decimals", rules.Order{Price: "0." + strings.Repeat("1", 21), Quantity: "1"}, "price"},
		{"a megabyte", rules.Order{Price: strings.Repeat("1", 1<<20), Quantity: "1"}, "price"},
		{"NaN", rules.Order{Price: "NaN", Quantity: "1"}, "price"},
		{"rounds up past 20 digits", rules.Order{Price: "99999999999999999999.997", Quantity: "1", Side: rules.Sell}, "price"},
		{"bad price on MARKET", rules.Order{Price: "x", Quantity: "1", Type: rules.Market}, "price"},
		{"no quantity", rules.Order{Price: "1"}, "quantity"},
		{"zero quantity", rules.Order{Price: "1", Quantity: "0"}, "quantity"},
		{"negative quantity", rules.Order{Price: "1", Quantity: "-0.5"}, "quantity"},
		{"quantity exponent", rules.Order{Price: "1", Quantity: "5E-3"}, "quantity"},
		{"lower-case side", rules.Order{Price: "1", Quantity: "1", Side: "buy"}, "side"},
		{"unknown side", rules.Order{Price: "1", Quantity: "1", Side: "LONG"}, "side"},
		{"unknown type", rules.Order{Price: "1", Quantity: "1", Type: "STOP_LOSS"}, "type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := spot.Normalize(tt.order)
			var ie *rules.InputError
			if !errors.As(err, &ie) || ie.Field != tt.wantField {
				t.Fatalf("Normalize(%.80v) = %+v, %v, want an *InputError for %q", tt.order, got, err, tt.wantField)
			}
			if len(err.Error()) > 200 {
				t.Errorf("Normalize(%.80v) error is %d bytes long, want a short one", tt.order, len(err.Error()))
			}
		})
	}
}

func TestRules_Normalize_badRules(t *testing.T) {
	r := rules.Rules{Symbol: "X", TickSize: "0.01", MinPrice: "1e1000000"}
	_, err := r.Normalize(rules.Order{Price: "1", Quantity: "1"})
	var ie *rules.InputError
	if err == nil || errors.As(err, &ie) || !strings.Contains(err.Error(), "minPrice") {
		t.Errorf("Normalize with minPrice %q = %v, want a plain error naming minPrice", r.MinPrice, err)
	}
}

func TestNormalized_JSON(t *testing.T) {
	spot := rulesFor(t, exchangeinfo.Spot, "spot_exchangeinfo.json", "BTCUSDT")
	n, err := spot.Normalize(rules.Order{Quantity: "0.001", Type: rules.Market})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(n)
	want := `{"quantity":"0.00100","ok":true,"checks":[{"filter":"LOT_SIZE","ok":true},{"filter":"MARKET_LOT_SIZE","ok":true},{"filter":"NOTIONAL","ok":true,"reason":"` + notChecked + `"}]}`
	if string(b) != want {
		t.Errorf("json.Marshal(Normalize(MARKET)) = %s, want %s", b, want)
	}
}

// ---- property tests: every real symbol, random orders, a math/big.Rat reference ----

func rat(t testing.TB, s string) *big.Rat {
	t.Helper()
	if s == "" {
		return new(big.Rat)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("big.Rat.SetString(%q) failed", s)
	}
	return r
}

// refGrid is the reference: a grid anchor + k×step, as the filter pages
// state it, in math/big.Rat.
type refGrid struct{ anchor, step, min, max *big.Rat }

func newRefGrid(t testing.TB, m exchangeinfo.Market, step, min, max string) refGrid {
	g := refGrid{anchor: new(big.Rat), step: rat(t, step), min: rat(t, min), max: rat(t, max)}
	if m != exchangeinfo.Spot { // futures: (price-minPrice) % tickSize == 0
		g.anchor = g.min
	}
	return g
}

// floor is the grid point at or below v.
func (g refGrid) floor(v *big.Rat) *big.Rat {
	x := new(big.Rat).Quo(new(big.Rat).Sub(v, g.anchor), g.step)
	k := new(big.Int).Div(x.Num(), x.Denom()) // Euclidean: floor, as Denom > 0
	return new(big.Rat).Add(g.anchor, new(big.Rat).Mul(new(big.Rat).SetInt(k), g.step))
}

func (g refGrid) round(v *big.Rat, side rules.Side) *big.Rat {
	if g.step.Sign() == 0 {
		return v
	}
	down := g.floor(v)
	if down.Cmp(v) == 0 {
		return down
	}
	up := new(big.Rat).Add(down, g.step)
	switch side {
	case rules.Buy:
		return down
	case rules.Sell:
		return up
	}
	twice := new(big.Rat).Mul(new(big.Rat).Sub(v, down), big.NewRat(2, 1))
	if twice.Cmp(g.step) < 0 {
		return down
	}
	return up
}

func (g refGrid) onGrid(v *big.Rat) bool { return g.step.Sign() == 0 || g.floor(v).Cmp(v) == 0 }

func (g refGrid) inBounds(v *big.Rat) bool {
	return v.Sign() > 0 && (g.min.Sign() == 0 || v.Cmp(g.min) >= 0) && (g.max.Sign() == 0 || v.Cmp(g.max) <= 0)
}

// randDecimal writes lo + (hi-lo)×u, u uniform in [0, 1), with 0 to 12
// decimals, as an order's decimal; "" when that is 0.
func randDecimal(rng *rand.Rand, lo, hi *big.Rat) string {
	u := big.NewRat(rng.Int64N(1_000_000_000), 1_000_000_000)
	v := new(big.Rat).Add(lo, new(big.Rat).Mul(new(big.Rat).Sub(hi, lo), u))
	s := v.FloatString(rng.IntN(13))
	if strings.Trim(s, "0.") == "" {
		return ""
	}
	return s
}

// decimals is the number of digits after the point of a plain decimal.
func decimals(s string) int {
	_, frac, _ := strings.Cut(s, ".")
	return len(frac)
}

func TestRules_Normalize_properties(t *testing.T) {
	perSymbol := 12
	if testing.Short() {
		perSymbol = 2
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sides := []rules.Side{"", rules.Buy, rules.Sell}
	var orders int
	for _, fx := range recordings {
		s := snapshot(t, fx.market, fx.file)
		for _, sym := range s.Symbols() {
			r, err := rules.For(fx.market, sym)
			if err != nil {
				t.Fatalf("For(%s, %s) = %v", fx.market, sym.Name, err)
			}
			m := fx.market
			price := newRefGrid(t, m, r.TickSize, r.MinPrice, r.MaxPrice)
			lot := newRefGrid(t, m, r.StepSize, r.MinQty, r.MaxQty)
			mkt := newRefGrid(t, m, r.MarketStepSize, r.MarketMinQty, r.MarketMaxQty)
			minN, maxN := rat(t, r.MinNotional), rat(t, r.MaxNotional)
			// Prices from half the minimum to a little over the maximum;
			// quantities likewise.
			pLo, pHi := new(big.Rat).Quo(price.min, big.NewRat(2, 1)), new(big.Rat).Mul(price.max, big.NewRat(11, 10))
			if price.max.Sign() == 0 {
				pHi = big.NewRat(1_000_000, 1)
			}
			qLo, qHi := new(big.Rat).Quo(lot.min, big.NewRat(2, 1)), new(big.Rat).Mul(lot.max, big.NewRat(11, 10))
			if lot.max.Sign() == 0 {
				qHi = big.NewRat(1_000_000, 1)
			}
			for range perSymbol {
				o := rules.Order{Price: randDecimal(rng, pLo, pHi), Quantity: randDecimal(rng, qLo, qHi), Side: sides[rng.IntN(3)]}
				if rng.IntN(4) == 0 {
					o.Type = rules.Market
					if rng.IntN(2) == 0 {
						o.Price = ""
					}
				}
				if o.Quantity == "" || o.Price == "" && o.Type != rules.Market {
					continue
				}
				orders++
				checkProperties(t, r, o, price, lot, mkt, minN, maxN)
			}
		}
	}
	t.Logf("%d random orders on every symbol of %d fixtures", orders, len(recordings))
}

func checkProperties(t *testing.T, r rules.Rules, o rules.Order, price, lot, mkt refGrid, minN, maxN *big.Rat) {
	t.Helper()
	n, err := r.Normalize(o)
	if err != nil {
		t.Fatalf("%s: Normalize(%+v) = %v", r.Symbol, o, err)
	}
	isMarket := o.Type == rules.Market
	wantOK := true

	// Price: on the grid, never worse than asked, at most half a tick away.
	var p *big.Rat
	if isMarket {
		if n.Price != "" {
			t.Errorf("%s: Normalize(%+v) = %+v, want no price for a MARKET order", r.Symbol, o, n)
		}
		if o.Price != "" {
			p = rat(t, o.Price)
		}
	} else {
		asked := rat(t, o.Price)
		p = rat(t, n.Price)
		if want := price.round(asked, o.Side); p.Cmp(want) != 0 {
			t.Errorf("%s: Normalize(%+v).Price = %s, want %s", r.Symbol, o, n.Price, want.FloatString(20))
		}
		if !price.onGrid(p) {
			t.Errorf("%s: Normalize(%+v).Price = %s, not on the grid", r.Symbol, o, n.Price)
		}
		switch o.Side {
		case rules.Buy:
			if p.Cmp(asked) > 0 {
				t.Errorf("%s: Normalize(%+v).Price = %s, want <= asked", r.Symbol, o, n.Price)
			}
		case rules.Sell:
			if p.Cmp(asked) < 0 {
				t.Errorf("%s: Normalize(%+v).Price = %s, want >= asked", r.Symbol, o, n.Price)
			}
		default:
			d := new(big.Rat).Abs(new(big.Rat).Sub(p, asked))
			if d.Mul(d, big.NewRat(2, 1)).Cmp(price.step) > 0 {
				t.Errorf("%s: Normalize(%+v).Price = %s, more than half a tick %s away", r.Symbol, o, n.Price, r.TickSize)
			}
		}
		if price.step.Sign() != 0 && decimals(n.Price) > max(decimals(strings.TrimRight(r.TickSize, "0")), decimals(strings.TrimRight(r.MinPrice, "0"))) {
			t.Errorf("%s: Normalize(%+v).Price = %s, more decimals than the grid %s", r.Symbol, o, n.Price, r.TickSize)
		}
		wantOK = wantOK && price.inBounds(p)
	}

	// Quantity: rounded down to the step, by less than one step.
	asked := rat(t, o.Quantity)
	q := rat(t, n.Quantity)
	g := lot
	if isMarket && mkt.step.Sign() != 0 {
		g = mkt
	}
	if want := g.round(asked, rules.Buy); q.Cmp(want) != 0 {
		t.Errorf("%s: Normalize(%+v).Quantity = %s, want %s", r.Symbol, o, n.Quantity, want.FloatString(20))
	}
	if q.Cmp(asked) > 0 {
		t.Errorf("%s: Normalize(%+v).Quantity = %s, want <= asked", r.Symbol, o, n.Quantity)
	}
	if g.step.Sign() != 0 && new(big.Rat).Sub(asked, q).Cmp(g.step) >= 0 {
		t.Errorf("%s: Normalize(%+v).Quantity = %s, want > asked - step %s", r.Symbol, o, n.Quantity, g.step.FloatString(20))
	}
	wantOK = wantOK && lot.inBounds(q) && lot.onGrid(q)
	if isMarket && r.MarketStepSize != "" {
		wantOK = wantOK && mkt.inBounds(q) && mkt.onGrid(q)
	}

	// Notional: exactly price × quantity, against the bounds that apply.
	if p != nil && r.Market != exchangeinfo.COINM {
		want := new(big.Rat).Mul(p, q)
		if got := rat(t, n.Notional); got.Cmp(want) != 0 {
			t.Errorf("%s: Normalize(%+v).Notional = %s, want %s", r.Symbol, o, n.Notional, want.FloatString(40))
		}
		applyMin, applyMax := !isMarket || r.ApplyMinNotionalToMarket, !isMarket || r.ApplyMaxNotionalToMarket
		if applyMin && minN.Sign() != 0 && want.Cmp(minN) < 0 || applyMax && maxN.Sign() != 0 && want.Cmp(maxN) > 0 {
			wantOK = false
		}
	}
	if n.OK != wantOK {
		t.Errorf("%s: Normalize(%+v) = %+v, want OK %v", r.Symbol, o, n, wantOK)
	}

	// Idempotent: the result normalises to itself.
	if q.Sign() > 0 && (isMarket || p.Sign() > 0) {
		again := rules.Order{Price: n.Price, Quantity: n.Quantity, Side: o.Side, Type: o.Type}
		if isMarket {
			again.Price = o.Price
		}
		n2, err := r.Normalize(again)
		if err != nil || !reflect.DeepEqual(n2, n) {
			t.Errorf("%s: Normalize(%+v) = %+v, %v, want %+v (idempotent)", r.Symbol, again, n2, err, n)
		}
	}
}

// ---- fuzzing ----

// FuzzNormalize throws any price, quantity and side at spot BTCUSDT's rules,
// as a LIMIT and as a MARKET order: Normalize must never panic nor take long,
// and what it accepts comes out on the grid and normalises to itself.
func FuzzNormalize(f *testing.F) {
	r := rulesFor(f, exchangeinfo.Spot, "spot_exchangeinfo.json", "BTCUSDT")
	f.Fuzz(func(t *testing.T, price, quantity, side string) {
		for _, typ := range []rules.OrderType{rules.Limit, rules.Market} {
			o := rules.Order{Price: price, Quantity: quantity, Side: rules.Side(side), Type: typ}
			start := time.Now()
			n, err := r.Normalize(o)
			if d := time.Since(start); d > time.Second {
				t.Fatalf("Normalize(%.80v) took %v", o, d)
			}
			if err != nil {
				var ie *rules.InputError
				if !errors.As(err, &ie) {
					t.Fatalf("Normalize(%.80v) = %v, want an *InputError", o, err)
				}
				continue
			}
			if typ == rules.Limit && decimals(n.Price) != 2 || decimals(n.Quantity) != 5 {
				t.Fatalf("Normalize(%+v) = %+v, want 2 decimals in price and 5 in quantity", o, n)
			}
			if q := rat(t, n.Quantity); q.Sign() == 0 || typ == rules.Limit && rat(t, n.Price).Sign() == 0 {
				continue // rounded to 0: not an order to send again
			}
			again := rules.Order{Price: n.Price, Quantity: n.Quantity, Side: o.Side, Type: typ}
			if typ == rules.Market {
				again.Price = price
			}
			if n2, err := r.Normalize(again); err != nil || !reflect.DeepEqual(n2, n) {
				t.Fatalf("Normalize(%+v) = %+v, %v, want %+v", again, n2, err, n)
			}
		}
	})
}

// ---- benchmarks ----

func BenchmarkFor(b *testing.B) {
	sym := symbol(b, exchangeinfo.Spot, "spot_exchangeinfo.json", "BTCUSDT")
	b.ReportAllocs()
	b.SetBytes(int64(len(sym.Raw)))
	for b.Loop() {
		if _, err := rules.For(exchangeinfo.Spot, sym); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalize(b *testing.B) {
	r := rulesFor(b, exchangeinfo.Spot, "spot_exchangeinfo.json", "BTCUSDT")
	o := rules.Order{Price: "27123.456", Quantity: "0.001239", Side: rules.Buy}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Normalize(o); err != nil {
			b.Fatal(err)
		}
	}
}
