package rules

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
	"github.com/symcache/symcache/exchangeinfo"
)

// Side is an order's side: Buy, Sell, or "" for none (a price then goes to
// the nearest tick).
type Side string

// The sides, as Binance spells them.
const (
	Buy  Side = "BUY"
	Sell Side = "SELL"
)

// OrderType is an order's type: Limit (also "") or Market.
type OrderType string

// The order types Normalize knows, as Binance spells them.
const (
	Limit  OrderType = "LIMIT"
	Market OrderType = "MARKET"
)

// Order is an order to normalise. Price and Quantity are plain decimals as
// Binance accepts them: up to 20 digits, optionally a point and up to 20 more
// (no sign, no exponent, no spaces).
//
// Price is required for a LIMIT order. A MARKET order sends Binance no price;
// its Price, when given, is the fill price the caller expects and serves only
// to check the notional (Binance itself uses the average price of the last
// avgPriceMins minutes on spot, the mark price on futures).
type Order struct {
	Price    string    `json:"price,omitempty"`
	Quantity string    `json:"quantity"`
	Side     Side      `json:"side,omitempty"`
	Type     OrderType `json:"type,omitempty"`
}

// Check is one filter's verdict.
type Check struct {
	Filter string `json:"filter"`           // Binance's name: "PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL" or "MIN_NOTIONAL"
	OK     bool   `json:"ok"`               // the order passes the filter, or the filter does not apply
	Reason string `json:"reason,omitempty"` // why it fails; or, when OK, why it was not applied
}

// Normalized is an order put on a symbol's grid, and the filters' verdicts.
//
// Decimals are written with the grid's own number of decimals, without
// Binance's padding: tickSize "0.01000000" gives "27123.45", stepSize
// "1.00000000" gives "3". They parse back to exactly the rounded value. A
// value whose rule has no grid (a zero tickSize or stepSize) is the asked
// value, trailing zeros dropped.
type Normalized struct {
	// Price is the LIMIT price on the tick grid: a BUY rounds down and a SELL
	// rounds up, so neither gets a worse price than asked; with no side it is
	// the nearest tick, and a price exactly half way between two ticks goes
	// up. Empty for a MARKET order.
	Price string `json:"price,omitempty"`
	// Quantity is the quantity rounded down (never more than asked) to
	// LOT_SIZE's step, or for a MARKET order to MARKET_LOT_SIZE's step when it
	// is not zero.
	Quantity string `json:"quantity"`
	// Notional is price × quantity after rounding, exactly (for a MARKET order
	// with the expected price). Empty without a price, and on COIN-M, where a
	// quantity counts contracts of ContractSize USD, not the base asset.
	Notional string `json:"notional,omitempty"`
	// OK is true when every check passes.
	OK bool `json:"ok"`
	// Checks has one verdict per filter the symbol has, in this order:
	// PRICE_FILTER (LIMIT only), LOT_SIZE, MARKET_LOT_SIZE (MARKET only;
	// Binance applies LOT_SIZE to every order and MARKET_LOT_SIZE in
	// addition), then NOTIONAL or MIN_NOTIONAL. A MARKET order is checked
	// against the notional bounds that apply to MARKET orders
	// (applyMinToMarket, applyMaxToMarket, applyToMarket; always on USD-M);
	// without a price that check cannot be made, and it passes with a Reason
	// saying so. The reduce-only exemption of USD-M's MIN_NOTIONAL is not
	// modelled.
	Checks []Check `json:"checks"`
}

// InputError is a bad order: an unparsable decimal, a price or quantity that
// is not greater than zero, an unknown side or type, a LIMIT order without a
// price, or a price so large that its tick rounds it past 20 digits. Field
// names the parameter: "price", "quantity", "side" or "type".
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return "invalid " + e.Field + ": " + e.Msg }

// Normalize puts o on r's grid and checks it against r's filters. It returns
// an *InputError for a bad order, and a plain error when r itself holds a
// value that is not a decimal (which For never returns). An order that breaks
// a filter is no error: its Normalized has OK false and says why.
//
// A BUY price never rises and a SELL price never falls, a quantity never
// grows, and rounding never pulls a value into the bounds: a price below
// minPrice stays below it and fails PRICE_FILTER. Normalising a Normalized
// order again gives the same result.
func (r Rules) Normalize(o Order) (Normalized, error) {
	typ := cmp.Or(o.Type, Limit)
	if typ != Limit && typ != Market {
		return Normalized{}, &InputError{Field: "type", Msg: fmt.Sprintf("%.20q is not LIMIT or MARKET", string(o.Type))}
	}
	if o.Side != "" && o.Side != Buy && o.Side != Sell {
		return Normalized{}, &InputError{Field: "side", Msg: fmt.Sprintf("%.20q is not BUY, SELL or empty", string(o.Side))}
	}
	var price decimal.Decimal
	hasPrice := o.Price != ""
	switch {
	case hasPrice:
		p, err := parseInput("price", o.Price)
		if err != nil {
			return Normalized{}, err
		}
		price = p
	case typ == Limit:
		return Normalized{}, &InputError{Field: "price", Msg: "required for a LIMIT order"}
	}
	qty, err := parseInput("quantity", o.Quantity)
	if err != nil {
		return Normalized{}, err
	}
	g, err := r.grids()
	if err != nil {
		return Normalized{}, err
	}

	n := Normalized{Checks: make([]Check, 0, 4)}
	if typ == Limit {
		price = g.price.round(price, o.Side)
		n.Price = g.price.format(price)
		if !plainDecimal(n.Price) {
			return Normalized{}, &InputError{Field: "price", Msg: fmt.Sprintf("%s rounds up to %.44s, which has more than 20 digits", o.Price, n.Price)}
		}
		if g.price.present {
			n.Checks = append(n.Checks, g.price.check("price", price, n.Price))
		}
	}
	qg := g.lot
	if typ == Market && !g.market.step.IsZero() {
		qg = g.market
	}
	qty = qg.round(qty, Buy) // down
	n.Quantity = qg.format(qty)
	if g.lot.present {
		n.Checks = append(n.Checks, g.lot.check("quantity", qty, n.Quantity))
	}
	if typ == Market && g.market.present {
		n.Checks = append(n.Checks, g.market.check("quantity", qty, n.Quantity))
	}
	var notional decimal.Decimal
	if hasPrice && r.Market != exchangeinfo.COINM {
		notional = price.Mul(qty)
		n.Notional = notional.String()
	}
	if c, ok := r.notionalCheck(typ, hasPrice, notional, n.Notional, g); ok {
		n.Checks = append(n.Checks, c)
	}
	n.OK = true
	for _, c := range n.Checks {
		n.OK = n.OK && c.OK
	}
	return n, nil
}

// notionalCheck is the NOTIONAL or MIN_NOTIONAL verdict; ok is false when
// the symbol has no such filter.
func (r Rules) notionalCheck(typ OrderType, hasPrice bool, notional decimal.Decimal, ns string, g grids) (Check, bool) {
	if r.MinNotional == "" && r.MaxNotional == "" || r.Market == exchangeinfo.COINM {
		return Check{}, false
	}
	c := Check{Filter: cmp.Or(r.NotionalFilter, notionalFilter), OK: true}
	applyMin, applyMax := !g.minNotional.IsZero(), !g.maxNotional.IsZero()
	if !applyMin && !applyMax {
		return c, true
	}
	if typ == Market {
		applyMin = applyMin && r.ApplyMinNotionalToMarket
		applyMax = applyMax && r.ApplyMaxNotionalToMarket
		switch {
		case !applyMin && !applyMax:
			c.Reason = "not applied to MARKET orders"
			return c, true
		case !hasPrice:
			c.Reason = "not checked: a MARKET order has no price; give the expected fill price to check the notional"
			return c, true
		}
	}
	switch {
	case applyMin && notional.LessThan(g.minNotional):
		c.OK, c.Reason = false, fmt.Sprintf("notional %s is below the minimum %s", ns, r.MinNotional)
	case applyMax && notional.GreaterThan(g.maxNotional):
		c.OK, c.Reason = false, fmt.Sprintf("notional %s is above the maximum %s", ns, r.MaxNotional)
	}
	return c, true
}

// grids is a Rules parsed.
type grids struct {
	price, lot, market       grid
	minNotional, maxNotional decimal.Decimal
}

func (r Rules) grids() (grids, error) {
	// USD-M and COIN-M anchor the grid at the minimum; spot at zero (see the
	// package documentation).
	anchored := r.Market == exchangeinfo.USDM || r.Market == exchangeinfo.COINM
	var g grids
	var err error
	if g.price, err = newGrid(priceSpec, r.TickSize, r.MinPrice, r.MaxPrice, anchored); err != nil {
		return grids{}, fmt.Errorf("rules for %s: %w", r.Symbol, err)
	}
	if g.lot, err = newGrid(lotSpec, r.StepSize, r.MinQty, r.MaxQty, anchored); err != nil {
		return grids{}, fmt.Errorf("rules for %s: %w", r.Symbol, err)
	}
	if g.market, err = newGrid(marketLotSpec, r.MarketStepSize, r.MarketMinQty, r.MarketMaxQty, anchored); err != nil {
		return grids{}, fmt.Errorf("rules for %s: %w", r.Symbol, err)
	}
	if g.minNotional, err = ruleDecimal(r.MinNotional); err != nil {
		return grids{}, fmt.Errorf("rules for %s: minNotional %w", r.Symbol, err)
	}
	if g.maxNotional, err = ruleDecimal(r.MaxNotional); err != nil {
		return grids{}, fmt.Errorf("rules for %s: maxNotional %w", r.Symbol, err)
	}
	return g, nil
}

// gridSpec names a filter and its three fields, for messages.
type gridSpec struct{ filter, stepKey, minKey, maxKey string }

var (
	priceSpec     = gridSpec{priceFilter, "tickSize", "minPrice", "maxPrice"}
	lotSpec       = gridSpec{lotSize, "stepSize", "minQty", "maxQty"}
	marketLotSpec = gridSpec{marketLotSize, "stepSize", "minQty", "maxQty"}
)

// grid is one filter parsed: the points anchor + k×step, k any integer, and
// the bounds. A zero step, min or max disables that part.
type grid struct {
	gridSpec
	present           bool   // the symbol has the filter
	stepS, minS, maxS string // as sent, for messages
	step, min, max    decimal.Decimal
	anchor            decimal.Decimal
	places            int32 // decimals of a grid point; -1 when there is no grid
}

func newGrid(spec gridSpec, stepS, minS, maxS string, anchored bool) (grid, error) {
	g := grid{gridSpec: spec, stepS: stepS, minS: minS, maxS: maxS, anchor: decimal.Zero, places: -1}
	g.present = stepS != "" || minS != "" || maxS != ""
	var err error
	if g.step, err = ruleDecimal(stepS); err != nil {
		return grid{}, fmt.Errorf("%s %s %w", spec.filter, spec.stepKey, err)
	}
	if g.min, err = ruleDecimal(minS); err != nil {
		return grid{}, fmt.Errorf("%s %s %w", spec.filter, spec.minKey, err)
	}
	if g.max, err = ruleDecimal(maxS); err != nil {
		return grid{}, fmt.Errorf("%s %s %w", spec.filter, spec.maxKey, err)
	}
	if !g.step.IsZero() {
		g.places = places(stepS)
		if anchored {
			g.anchor = g.min
			g.places = max(g.places, places(minS))
		}
	}
	return g, nil
}

// floor returns the grid point at or below v, and v's distance above it.
// The step must not be zero.
func (g grid) floor(v decimal.Decimal) (decimal.Decimal, decimal.Decimal) {
	_, rem := v.Sub(g.anchor).QuoRem(g.step, 0) // exact; rem has v-anchor's sign
	if rem.Sign() < 0 {
		rem = rem.Add(g.step)
	}
	return v.Sub(rem), rem
}

// round puts v on the grid: down for Buy, up for Sell, else to the nearest
// point, half way going up. Without a grid v is returned as is.
func (g grid) round(v decimal.Decimal, side Side) decimal.Decimal {
	if g.step.IsZero() {
		return v
	}
	down, rem := g.floor(v)
	if rem.IsZero() {
		return down
	}
	switch side {
	case Buy:
		return down
	case Sell:
		return down.Add(g.step)
	}
	if rem.Add(rem).LessThan(g.step) {
		return down
	}
	return down.Add(g.step)
}

// format writes v with the grid's decimals; v must be on the grid.
func (g grid) format(v decimal.Decimal) string {
	if g.places < 0 {
		return v.String()
	}
	return v.StringFixed(g.places)
}

// check is the filter's verdict on v (written vs), the what of an order.
func (g grid) check(what string, v decimal.Decimal, vs string) Check {
	c := Check{Filter: g.filter, OK: true}
	fail := func(format string, args ...any) {
		c.OK, c.Reason = false, fmt.Sprintf(format, args...)
	}
	switch {
	case v.Sign() <= 0:
		fail("%s rounds to 0 on %s %s", what, g.stepKey, g.stepS)
	case !g.min.IsZero() && v.LessThan(g.min):
		fail("%s %s is below %s %s", what, vs, g.minKey, g.minS)
	case !g.max.IsZero() && v.GreaterThan(g.max):
		fail("%s %s is above %s %s", what, vs, g.maxKey, g.maxS)
	case !g.step.IsZero():
		if _, rem := g.floor(v); !rem.IsZero() {
			fail("%s %s is not on the grid of %s %s", what, vs, g.stepKey, g.stepS)
		}
	}
	return c
}

// maxDigits is how many digits Binance accepts on each side of the point: its
// -1100 answer for a price or quantity quotes the legal range
// ^([0-9]{1,20})(\.[0-9]{1,20})?$.
const maxDigits = 20

// plainDecimal reports whether s is in Binance's legal range for a decimal.
// It looks at no more than 41 bytes, so any input is checked in constant time,
// and what it accepts parses without exponents: no input can make the
// arithmetic slow or large.
func plainDecimal(s string) bool {
	if len(s) > 2*maxDigits+1 {
		return false
	}
	whole, frac, point := strings.Cut(s, ".")
	return digits(whole) && (!point || digits(frac))
}

func digits(s string) bool {
	if len(s) == 0 || len(s) > maxDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// places is the number of decimals of a plain decimal, trailing zeros aside.
func places(s string) int32 {
	_, frac, _ := strings.Cut(s, ".")
	return int32(len(strings.TrimRight(frac, "0")))
}

// ruleDecimal parses a rule's value; empty is zero (no such rule).
func ruleDecimal(s string) (decimal.Decimal, error) {
	if s == "" {
		return decimal.Zero, nil
	}
	if !plainDecimal(s) {
		return decimal.Decimal{}, fmt.Errorf("%.40q is not a decimal", s)
	}
	return decimal.NewFromString(s)
}

// parseInput parses an order's price or quantity.
func parseInput(field, s string) (decimal.Decimal, error) {
	switch {
	case s == "":
		return decimal.Decimal{}, &InputError{Field: field, Msg: "missing"}
	case s[0] == '-' && plainDecimal(s[1:]):
		return decimal.Decimal{}, &InputError{Field: field, Msg: fmt.Sprintf("%s must be greater than 0", s)}
	case !plainDecimal(s):
		return decimal.Decimal{}, &InputError{Field: field, Msg: fmt.Sprintf(
			"%.24q is not a decimal of up to 20 digits, a point and up to 20 more (e.g. 27123.45)", s)}
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, &InputError{Field: field, Msg: err.Error()}
	}
	if d.Sign() <= 0 {
		return decimal.Decimal{}, &InputError{Field: field, Msg: fmt.Sprintf("%s must be greater than 0", s)}
	}
	return d, nil
}
