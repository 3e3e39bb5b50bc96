package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/rules"
)

// The convenience API's limits on a page of symbols.
const (
	defaultLimit = 500
	maxLimit     = 5000
)

// badParam is a 400 naming the parameter, in Binance's body shape
// (-1130: "Data sent for parameter '%s' is not valid.").
func badParam(name, format string, args ...any) error {
	return &apiError{Code: -1130, Msg: fmt.Sprintf("Data sent for parameter '%s' is not valid: ", name) + fmt.Sprintf(format, args...)}
}

var errUnknownSymbol = &apiError{Status: http.StatusNotFound, Code: -1121, Msg: "Invalid symbol."}

// params parses a raw query strictly: a malformed escape, an unknown or a
// repeated parameter is an error naming it, never silently dropped.
func params(rawQuery string, known ...string) (map[string]string, error) {
	if rawQuery == "" {
		return nil, nil // reads as an empty map
	}
	out := map[string]string{}
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, &apiError{Code: -1100, Msg: fmt.Sprintf("Illegal characters found in parameter name %q.", k)}
		}
		if !slices.Contains(known, key) {
			if len(known) == 0 {
				return nil, &apiError{Code: -1104, Msg: fmt.Sprintf("Unknown parameter '%s'; this path takes none.", key)}
			}
			return nil, &apiError{Code: -1104, Msg: fmt.Sprintf("Unknown parameter '%s'; known: %s.", key, strings.Join(known, ", "))}
		}
		if _, dup := out[key]; dup {
			return nil, &apiError{Code: -1101, Msg: fmt.Sprintf("Duplicate values for parameter '%s'.", key)}
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, badParam(key, "malformed escape")
		}
		out[key] = val
	}
	return out, nil
}

// snapshot resolves the :market path parameter and gets its snapshot.
func (h *handler) snapshot(c echo.Context) (symcache.Result, error) {
	return h.snapshotOf(c, c.Param("market"))
}

// snapshotOf gets the snapshot of the market named market.
func (h *handler) snapshotOf(c echo.Context, market string) (symcache.Result, error) {
	m, err := exchangeinfo.ParseMarket(market)
	if err != nil {
		return symcache.Result{}, &apiError{Status: http.StatusNotFound, Code: -1000, Msg: fmt.Sprintf("Unknown market %q: want spot, usdm or coinm.", market)}
	}
	return h.cache.Get(c.Request().Context(), m)
}

// lookup resolves :symbol (case-insensitive) in the market's snapshot.
func (h *handler) lookup(c echo.Context) (symcache.Result, exchangeinfo.Symbol, error) {
	res, err := h.snapshot(c)
	if err != nil {
		return res, exchangeinfo.Symbol{}, err
	}
	sym, err := lookupSymbol(res.Snapshot, c.Param("symbol"))
	return res, sym, err
}

// lookupSymbol resolves a symbol's name (case-insensitive) in s.
func lookupSymbol(s *exchangeinfo.Snapshot, name string) (exchangeinfo.Symbol, error) {
	sym, ok := s.Lookup(strings.ToUpper(name))
	if !ok {
		return sym, errUnknownSymbol
	}
	return sym, nil
}

// listQuery is a parsed GET /v1/symbols/{market} query.
type listQuery struct {
	status, base, quote string
	symbols             map[string]bool // nil: any
	limit               int
	after               cursor // resume after this symbol
}

func parseListQuery(rawQuery string) (listQuery, error) {
	p, err := params(rawQuery, "status", "base", "quote", "symbols", "limit", "cursor")
	if err != nil {
		return listQuery{}, err
	}
	q := listQuery{
		status: strings.ToUpper(strings.TrimSpace(p["status"])),
		base:   strings.ToUpper(strings.TrimSpace(p["base"])),
		quote:  strings.ToUpper(strings.TrimSpace(p["quote"])),
		limit:  defaultLimit,
		after:  cursor{index: -1},
	}
	if v, ok := p["symbols"]; ok {
		q.symbols = map[string]bool{}
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.ToUpper(strings.TrimSpace(name)); name != "" {
				q.symbols[name] = true
			}
		}
		if len(q.symbols) == 0 {
			return q, badParam("symbols", "want a comma-separated list of symbols such as BTCUSDT,ETHBTC")
		}
	}
	if v, ok := p["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return q, badParam("limit", "want a whole number from 1 to %d, got %q", maxLimit, v)
		}
		q.limit = n
	}
	if v, ok := p["cursor"]; ok && v != "" {
		if q.after, err = parseCursor(v); err != nil {
			return q, badParam("cursor", "not a cursor this API gave out")
		}
	}
	return q, nil
}

// unfiltered reports whether every symbol matches q.
func (q listQuery) unfiltered() bool {
	return q.status == "" && q.base == "" && q.quote == "" && q.symbols == nil
}

func (q listQuery) match(s exchangeinfo.Symbol) bool {
	return (q.status == "" || s.Status == q.status) &&
		(q.base == "" || s.BaseAsset == q.base) &&
		(q.quote == "" || s.QuoteAsset == q.quote) &&
		(q.symbols == nil || q.symbols[s.Name])
}

// cursor points just past a symbol of a page: its name, and its index in the
// snapshot for when a newer snapshot no longer lists it.
type cursor struct {
	index int
	name  string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1:" + strconv.Itoa(c.index) + ":" + c.name))
}

func parseCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, err
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[0] != "v1" || parts[2] == "" {
		return cursor{}, fmt.Errorf("bad cursor")
	}
	i, err := strconv.Atoi(parts[1])
	if err != nil || i < 0 {
		return cursor{}, fmt.Errorf("bad cursor")
	}
	return cursor{index: i, name: parts[2]}, nil
}

// start is the snapshot index to resume from.
func (c cursor) start(syms []exchangeinfo.Symbol) int {
	if c.index < 0 {
		return 0
	}
	if c.index < len(syms) && syms[c.index].Name == c.name {
		return c.index + 1
	}
	for i, s := range syms { // the snapshot changed since: find the name
		if s.Name == c.name {
			return i + 1
		}
	}
	return min(c.index+1, len(syms))
}

// listSymbols is GET /v1/symbols/{market}.
func (h *handler) listSymbols(c echo.Context) error {
	q, err := parseListQuery(c.Request().URL.RawQuery)
	if err != nil {
		return err
	}
	res, err := h.snapshot(c)
	if err != nil {
		return err
	}
	return h.write(c.Response(), c.Request(), res, payload{
		etag: []string{derivedETag(res.Snapshot, c.Request())},
		make: func() ([]byte, error) { return listAnswer(res.Snapshot, q), nil },
	})
}

// listAnswer encodes a page: {"market","server_time","fetched_at","count",
// "symbols","next_cursor"}, each symbol Binance's object byte for byte.
func listAnswer(s *exchangeinfo.Snapshot, q listQuery) []byte {
	syms := s.Symbols()
	from := q.after.start(syms)
	var page []int
	count, more := 0, false
	if q.unfiltered() { // every symbol matches: count without a walk
		count = len(syms)
		end := min(from+q.limit, len(syms))
		page = make([]int, 0, end-from)
		for i := from; i < end; i++ {
			page = append(page, i)
		}
		more = end < len(syms)
	} else {
		for i, sym := range syms {
			if !q.match(sym) {
				continue
			}
			count++
			switch {
			case i < from:
			case len(page) < q.limit:
				page = append(page, i)
			default:
				more = true
			}
		}
	}
	size := 160
	for _, i := range page {
		size += len(syms[i].Raw) + 1
	}
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(`{"market":`)
	writeJSONString(&b, string(s.Market()))
	fmt.Fprintf(&b, `,"server_time":%d,"fetched_at":"%s","count":%d,"symbols":[`,
		s.ServerTime().UnixMilli(), s.FetchedAt().UTC().Format(time.RFC3339Nano), count)
	for n, i := range page {
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(syms[i].Raw)
	}
	b.WriteString(`],"next_cursor":`)
	next := ""
	if more && len(page) > 0 {
		last := page[len(page)-1]
		next = cursor{index: last, name: syms[last].Name}.String()
	}
	writeJSONString(&b, next)
	b.WriteByte('}')
	return b.Bytes()
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s) // a string always marshals
	b.Write(q)
}

// symbol is GET /v1/symbols/{market}/{symbol}: Binance's object as sent.
func (h *handler) symbol(c echo.Context) error {
	return h.symbolAt(c, pathParams{c.Param("market"), c.Param("symbol")})
}

func (h *handler) symbolAt(c echo.Context, pp pathParams) error {
	if _, err := params(c.Request().URL.RawQuery); err != nil {
		return err
	}
	res, err := h.snapshotOf(c, pp.market)
	if err != nil {
		return err
	}
	p, err := h.prepared(res.Snapshot).derived(c.Request(), func() ([]byte, error) {
		sym, err := lookupSymbol(res.Snapshot, pp.symbol)
		return sym.Raw, err
	})
	if err != nil {
		return err
	}
	return h.write(c.Response(), c.Request(), res, p)
}

// symbolRules is GET /v1/symbols/{market}/{symbol}/rules.
func (h *handler) symbolRules(c echo.Context) error {
	if _, err := params(c.Request().URL.RawQuery); err != nil {
		return err
	}
	res, err := h.snapshot(c)
	if err != nil {
		return err
	}
	p, err := h.prepared(res.Snapshot).derived(c.Request(), func() ([]byte, error) {
		sym, err := lookupSymbol(res.Snapshot, c.Param("symbol"))
		if err != nil {
			return nil, err
		}
		r, err := rules.For(res.Snapshot.Market(), sym)
		if err != nil {
			return nil, fmt.Errorf("rules of %s: %w", sym.Name, err) // Binance sent filters we cannot read: a 500
		}
		return json.Marshal(r)
	})
	if err != nil {
		return err
	}
	return h.write(c.Response(), c.Request(), res, p)
}

// normalize is GET /v1/symbols/{market}/{symbol}/normalize?price=&quantity=&side=&type=.
func (h *handler) normalize(c echo.Context) error {
	p, err := params(c.Request().URL.RawQuery, "price", "quantity", "side", "type")
	if err != nil {
		return err
	}
	if p["quantity"] == "" {
		return badParam("quantity", "required")
	}
	res, sym, err := h.lookup(c)
	if err != nil {
		return err
	}
	r, err := rules.For(res.Snapshot.Market(), sym)
	if err != nil {
		return fmt.Errorf("rules of %s: %w", sym.Name, err)
	}
	n, err := r.Normalize(rules.Order{
		Price:    p["price"],
		Quantity: p["quantity"],
		Side:     rules.Side(strings.ToUpper(p["side"])),
		Type:     rules.OrderType(strings.ToUpper(p["type"])),
	})
	if err != nil {
		return err
	}
	return h.write(c.Response(), c.Request(), res, payload{
		etag: []string{derivedETag(res.Snapshot, c.Request())},
		make: func() ([]byte, error) { return json.Marshal(n) },
	})
}
