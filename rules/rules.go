// Package rules turns a Binance symbol's filters into typed trading rules and
// puts orders on them: the tick and step rounding, and the bounds and
// notional checks, that every trading bot otherwise writes by hand.
//
// For reads a symbol of an exchangeinfo snapshot into Rules; Rules.Normalize
// rounds an Order's price and quantity onto the symbol's grid and reports, one
// Check per filter, whether Binance would accept it. All arithmetic is exact
// decimal arithmetic with github.com/shopspring/decimal (math/big.Rat is exact
// too, but has no decimal rounding or formatting); no price or quantity is
// ever a float64. Inputs are held to Binance's own legal range for a decimal,
// ^([0-9]{1,20})(\.[0-9]{1,20})?$ (quoted in its -1100 "Illegal characters"
// answers), so no input, such as "1e1000000", can make the arithmetic slow or
// large.
//
// The filters, as Binance documents them:
//
//   - Spot: https://developers.binance.com/docs/binance-spot-api-docs/filters
//     (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL, legacy MIN_NOTIONAL).
//   - USD-M futures: https://developers.binance.com/docs/derivatives/usds-margined-futures/common-definition
//     (section Filters; MIN_NOTIONAL has one field, "notional").
//   - COIN-M futures: https://developers.binance.com/docs/derivatives/coin-margined-futures/common-definition
//     (no MIN_NOTIONAL: a COIN-M quantity is a number of contracts).
//
// Where the grid starts. Spot checks price % tickSize == 0 and quantity %
// stepSize == 0: the grid starts at zero (the spot CHANGELOG of 2022-02-24,
// https://github.com/binance/binance-spot-api-docs/blob/master/CHANGELOG.md,
// changed "(price-minPrice) % tickSize == 0" to "price % tickSize == 0").
// USD-M and COIN-M still document (price-minPrice) % tickSize == 0 and
// (quantity-minQty) % stepSize == 0: there the grid starts at minPrice and
// minQty. On every symbol of the recorded snapshots minPrice and minQty lie on
// the grid, so both readings give the same grid there.
//
// MARKET orders. Binance applies LOT_SIZE to every order and
// MARKET_LOT_SIZE to MARKET orders in addition (the spot CHANGELOG of
// 2019-11-22: quoteOrderQty MARKET orders "will not break LOT_SIZE filter
// rules"), so a MARKET order gets both checks. A MARKET order has no price:
// Binance checks its notional at the average price over avgPriceMins (spot)
// or the mark price (USD-M), which this package does not know; given the
// price the caller expects, Normalize checks the notional at that price.
//
// Zero means "no such rule": a zero tickSize or stepSize puts no grid, a
// zero minimum no minimum and a zero maximum no maximum ("Any of the above
// variables can be set to 0, which disables that rule", PRICE_FILTER on all
// three pages; spot's MARKET_LOT_SIZE has stepSize "0.00000000" on most
// symbols, and USD-M lists symbols with tickSize "0" before they trade).
package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/symcache/symcache/exchangeinfo"
)

// Rules are one symbol's trading rules, from its filters. Decimal values are
// Binance's strings exactly as sent (e.g. "0.01000000"); a value is empty when
// the market or the symbol has no such rule. A Rules is a plain value: it can
// be built by hand, or encoded to JSON and back, and Normalize works the same.
// Market decides where the grids start (see the package documentation); an
// empty Market is read as spot.
type Rules struct {
	Market     exchangeinfo.Market `json:"market"`
	Symbol     string              `json:"symbol"`
	Status     string              `json:"status"` // "status", or "contractStatus" on COIN-M
	BaseAsset  string              `json:"base_asset"`
	QuoteAsset string              `json:"quote_asset"`

	// PRICE_FILTER.
	TickSize string `json:"tick_size,omitempty"`
	MinPrice string `json:"min_price,omitempty"`
	MaxPrice string `json:"max_price,omitempty"`

	// LOT_SIZE: every order's quantity.
	StepSize string `json:"step_size,omitempty"`
	MinQty   string `json:"min_qty,omitempty"`
	MaxQty   string `json:"max_qty,omitempty"`

	// MARKET_LOT_SIZE: a MARKET order's quantity, in addition to LOT_SIZE.
	MarketStepSize string `json:"market_step_size,omitempty"`
	MarketMinQty   string `json:"market_min_qty,omitempty"`
	MarketMaxQty   string `json:"market_max_qty,omitempty"`

	// NotionalFilter names the filter the notional bounds come from, as
	// Binance names it in its "Filter failure: …" errors: "NOTIONAL" (spot:
	// minNotional, maxNotional, applyMinToMarket, applyMaxToMarket) or
	// "MIN_NOTIONAL" (legacy spot: minNotional and applyToMarket; USD-M:
	// "notional", which always applies to MARKET orders at the mark price).
	// When a spot symbol has both, NOTIONAL is read and MIN_NOTIONAL ignored.
	NotionalFilter           string `json:"notional_filter,omitempty"`
	MinNotional              string `json:"min_notional,omitempty"`
	MaxNotional              string `json:"max_notional,omitempty"`
	ApplyMinNotionalToMarket bool   `json:"apply_min_notional_to_market"`
	ApplyMaxNotionalToMarket bool   `json:"apply_max_notional_to_market"` // false where there is no maxNotional

	// Futures only: the largest number of decimals Binance accepts in a price
	// and a quantity ("pricePrecision", "quantityPrecision"); nil when the
	// symbol has none (spot).
	PricePrecision    *int `json:"price_precision,omitempty"`
	QuantityPrecision *int `json:"quantity_precision,omitempty"`
	// ContractSize is a COIN-M contract's value in the quote asset (USD), as
	// sent: "100" for BTCUSD_PERP. Empty elsewhere.
	ContractSize string `json:"contract_size,omitempty"`
}

// The filter types For reads. Any other type is ignored.
const (
	priceFilter    = "PRICE_FILTER"
	lotSize        = "LOT_SIZE"
	marketLotSize  = "MARKET_LOT_SIZE"
	notionalFilter = "NOTIONAL"
	minNotional    = "MIN_NOTIONAL"
)

// rawFilter holds the fields of the filters For reads. Every field stays raw
// until the filter's type is known, so that a field of the same name in a
// filter For does not read can have any form.
type rawFilter struct {
	FilterType       json.RawMessage `json:"filterType"`
	MinPrice         json.RawMessage `json:"minPrice"`
	MaxPrice         json.RawMessage `json:"maxPrice"`
	TickSize         json.RawMessage `json:"tickSize"`
	MinQty           json.RawMessage `json:"minQty"`
	MaxQty           json.RawMessage `json:"maxQty"`
	StepSize         json.RawMessage `json:"stepSize"`
	MinNotional      json.RawMessage `json:"minNotional"`
	MaxNotional      json.RawMessage `json:"maxNotional"`
	Notional         json.RawMessage `json:"notional"`
	ApplyToMarket    json.RawMessage `json:"applyToMarket"`
	ApplyMinToMarket json.RawMessage `json:"applyMinToMarket"`
	ApplyMaxToMarket json.RawMessage `json:"applyMaxToMarket"`
}

// For extracts the rules from a symbol of a snapshot of market m. It reads
// PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL and MIN_NOTIONAL, and on
// futures pricePrecision, quantityPrecision and contractSize. Unknown filter
// types are ignored; a symbol without filters has empty rules.
//
// It returns an error if the object's filters are malformed: filters that is
// not an array of objects, a filter read twice, a missing field of a filter it
// reads, a value that is not a plain decimal (Binance's form: up to 20 digits,
// optionally a point and up to 20 more; no sign, no exponent), or a flag that
// is not a boolean.
func For(m exchangeinfo.Market, sym exchangeinfo.Symbol) (Rules, error) {
	if !m.Valid() {
		return Rules{}, fmt.Errorf("rules for %s: unknown market %q", sym.Name, string(m))
	}
	r := Rules{Market: m, Symbol: sym.Name, Status: sym.Status, BaseAsset: sym.BaseAsset, QuoteAsset: sym.QuoteAsset}
	var obj struct {
		Filters           json.RawMessage `json:"filters"`
		PricePrecision    json.RawMessage `json:"pricePrecision"`
		QuantityPrecision json.RawMessage `json:"quantityPrecision"`
		ContractSize      json.RawMessage `json:"contractSize"`
	}
	if err := json.Unmarshal(sym.Raw, &obj); err != nil {
		return Rules{}, fmt.Errorf("rules for %s: %v", sym.Name, err)
	}
	var err error
	if r.PricePrecision, err = readPrecision(obj.PricePrecision); err != nil {
		return Rules{}, fmt.Errorf("rules for %s: pricePrecision %s", sym.Name, err)
	}
	if r.QuantityPrecision, err = readPrecision(obj.QuantityPrecision); err != nil {
		return Rules{}, fmt.Errorf("rules for %s: quantityPrecision %s", sym.Name, err)
	}
	if m == exchangeinfo.COINM && obj.ContractSize != nil {
		if r.ContractSize, err = readDecimal(obj.ContractSize); err != nil {
			return Rules{}, fmt.Errorf("rules for %s: contractSize %s", sym.Name, err)
		}
	}
	if isNull(obj.Filters) {
		return r, nil
	}
	var filters []rawFilter
	if err := json.Unmarshal(obj.Filters, &filters); err != nil {
		return Rules{}, fmt.Errorf("rules for %s: filters is not an array of objects: %v", sym.Name, err)
	}
	var (
		seen        = make(map[string]bool, 5)
		legacy      Rules // MIN_NOTIONAL, kept apart until NOTIONAL is known to be absent
		sawNotional bool
	)
	for i, f := range filters {
		var typ string
		if json.Unmarshal(f.FilterType, &typ) != nil {
			return Rules{}, fmt.Errorf("rules for %s: filters[%d]: filterType is not a string", sym.Name, i)
		}
		switch typ {
		case priceFilter, lotSize, marketLotSize, notionalFilter, minNotional:
		default:
			continue // a filter with no bearing on price, quantity or notional
		}
		if seen[typ] {
			return Rules{}, fmt.Errorf("rules for %s: %s appears twice", sym.Name, typ)
		}
		seen[typ] = true
		rd := fieldReader{typ: typ}
		switch typ {
		case priceFilter:
			r.TickSize = rd.decimal("tickSize", f.TickSize)
			r.MinPrice = rd.decimal("minPrice", f.MinPrice)
			r.MaxPrice = rd.decimal("maxPrice", f.MaxPrice)
		case lotSize:
			r.StepSize = rd.decimal("stepSize", f.StepSize)
			r.MinQty = rd.decimal("minQty", f.MinQty)
			r.MaxQty = rd.decimal("maxQty", f.MaxQty)
		case marketLotSize:
			r.MarketStepSize = rd.decimal("stepSize", f.StepSize)
			r.MarketMinQty = rd.decimal("minQty", f.MinQty)
			r.MarketMaxQty = rd.decimal("maxQty", f.MaxQty)
		case notionalFilter:
			sawNotional = true
			r.NotionalFilter = notionalFilter
			r.MinNotional = rd.decimal("minNotional", f.MinNotional)
			r.ApplyMinNotionalToMarket = rd.flag("applyMinToMarket", f.ApplyMinToMarket)
			if f.MaxNotional != nil {
				r.MaxNotional = rd.decimal("maxNotional", f.MaxNotional)
				r.ApplyMaxNotionalToMarket = rd.flag("applyMaxToMarket", f.ApplyMaxToMarket)
			}
		case minNotional:
			legacy.NotionalFilter = minNotional
			if f.Notional != nil {
				// Futures: {"filterType":"MIN_NOTIONAL","notional":"5.0"}.
				legacy.MinNotional = rd.decimal("notional", f.Notional)
			} else {
				legacy.MinNotional = rd.decimal("minNotional", f.MinNotional)
			}
			// Futures check MARKET orders at the mark price; legacy spot says
			// so in applyToMarket.
			legacy.ApplyMinNotionalToMarket = m != exchangeinfo.Spot || rd.flag("applyToMarket", f.ApplyToMarket)
		}
		if rd.err != nil {
			return Rules{}, fmt.Errorf("rules for %s: %v", sym.Name, rd.err)
		}
	}
	if !sawNotional && legacy.NotionalFilter != "" {
		r.NotionalFilter = legacy.NotionalFilter
		r.MinNotional = legacy.MinNotional
		r.ApplyMinNotionalToMarket = legacy.ApplyMinNotionalToMarket
	}
	return r, nil
}

// fieldReader reads the fields of one filter and keeps the first error.
type fieldReader struct {
	typ string
	err error
}

func (rd *fieldReader) decimal(key string, raw json.RawMessage) string {
	if rd.err != nil {
		return ""
	}
	if raw == nil {
		rd.err = fmt.Errorf("%s has no %s", rd.typ, key)
		return ""
	}
	s, err := readDecimal(raw)
	if err != nil {
		rd.err = fmt.Errorf("%s %s %v", rd.typ, key, err)
	}
	return s
}

// flag reads a boolean. A missing flag is true: the filter then applies to
// MARKET orders too, which can only make a verdict stricter.
func (rd *fieldReader) flag(key string, raw json.RawMessage) bool {
	if rd.err != nil || raw == nil {
		return true
	}
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		rd.err = fmt.Errorf("%s %s %.40s is not a boolean", rd.typ, key, raw)
	}
	return b
}

// readDecimal returns a JSON string (or, leniently, a JSON number) holding a
// plain decimal, as written.
func readDecimal(raw json.RawMessage) (string, error) {
	var s string
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%.40s is not a string", raw)
		}
	} else {
		s = string(raw)
	}
	if !plainDecimal(s) {
		return "", fmt.Errorf("%.40q is not a decimal", s)
	}
	return s, nil
}

// readPrecision reads a number of decimals, 0 to 20; nil when absent.
func readPrecision(raw json.RawMessage) (*int, error) {
	if isNull(raw) {
		return nil, nil
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil || n < 0 || n > maxDigits {
		return nil, fmt.Errorf("%.40s is not a number of decimals", raw)
	}
	return &n, nil
}

func isNull(raw json.RawMessage) bool {
	return raw == nil || bytes.Equal(raw, []byte("null"))
}
