package exchangeinfo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// Where the expected behaviour comes from. "Documented" is Binance's own
// documentation; "observed" is a real Binance answer quoted in a public issue;
// "inferred" is the most Binance-like answer where neither says.
const (
	// GET /api/v3/exchangeInfo: parameters, notes, examples (documented).
	srcRESTAPI = "https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints#exchange-information" +
		" (= https://github.com/binance/binance-spot-api-docs/blob/master/rest-api.md)"
	// Error codes and message templates (documented).
	srcErrors = "https://github.com/binance/binance-spot-api-docs/blob/master/errors.md"
	// 2023-07-11: duplicate symbols in symbols= answer -1151 on exchangeInfo (documented).
	srcChangelog = "https://github.com/binance/binance-spot-api-docs/blob/master/CHANGELOG.md#2023-07-11"
	// USD-M and COIN-M exchangeInfo: "Request Parameters: NONE" (documented).
	srcUSDM = "https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information"
)

// fields is what the tests read from one symbol object with encoding/json,
// independently of Parse.
type fields struct {
	Symbol, Status, ContractStatus string
	Permissions                    []string
	PermissionSets                 json.RawMessage
}

func (f fields) status() string { return f.Status + f.ContractStatus }

// has reports whether the symbol lists p in permissions or in any of its
// permissionSets (nested [["A","B"]] on spot, flat ["A"] on USD-M).
func (f fields) has(p string) bool {
	if slices.Contains(f.Permissions, p) {
		return true
	}
	var nested [][]string
	if json.Unmarshal(f.PermissionSets, &nested) == nil {
		return slices.ContainsFunc(nested, func(set []string) bool { return slices.Contains(set, p) })
	}
	var flat []string
	return json.Unmarshal(f.PermissionSets, &flat) == nil && slices.Contains(flat, p)
}

// member is one top-level member of a JSON object, in the object's order.
type member struct {
	Key string
	Raw json.RawMessage
}

// members walks a JSON object's top-level members with json.Decoder tokens.
func members(t testing.TB, obj []byte) []member {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("members(%.60q): first token %v, %v; want {", obj, tok, err)
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("members(%.60q): %v", obj, err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("members(%.60q): %v", obj, err)
		}
		out = append(out, member{tok.(string), raw})
	}
	return out
}

// fixture is a fixture decoded with encoding/json alone.
type fixture struct {
	body    []byte
	members []member          // top-level, in order
	symbols []json.RawMessage // each object as in the body
	fields  []fields
}

func decodeFixture(t testing.TB, body []byte) fixture {
	t.Helper()
	ref := fixture{body: body, members: members(t, body)}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(top["symbols"], &ref.symbols); err != nil {
		t.Fatal(err)
	}
	ref.fields = make([]fields, len(ref.symbols))
	for i, raw := range ref.symbols {
		if err := json.Unmarshal(raw, &ref.fields[i]); err != nil {
			t.Fatal(err)
		}
	}
	return ref
}

// pick returns the indexes, in fixture order, of the symbols keep selects.
func (ref fixture) pick(keep func(fields) bool) []int {
	var idx []int
	for i, f := range ref.fields {
		if keep(f) {
			idx = append(idx, i)
		}
	}
	return idx
}

func (ref fixture) named(names ...string) func(fields) bool {
	return func(f fields) bool { return slices.Contains(names, f.Symbol) }
}

func load(t testing.TB, file string, m exchangeinfo.Market) (*exchangeinfo.Snapshot, fixture) {
	t.Helper()
	body := fixtures.Read(t, "binance/"+file)
	s, err := exchangeinfo.Parse(m, body, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("Parse(%s) = %v", file, err)
	}
	return s, decodeFixture(t, bytes.Clone(body))
}

// checkAnswer checks got, the answer for query, against the fixture decoded
// independently: valid JSON; the fixture's top-level keys in the same order;
// every value but symbols byte for byte the fixture's (even for the
// pretty-printed USD-M fixture, where a comparison after json.Compact would
// also do: Answer copies the bytes around the array as they are); and in
// symbols exactly the objects at want, in fixture order, each byte for byte
// the fixture's object, except that with hidden its permissionSets value is
// [] and every other member is unchanged.
func checkAnswer(t *testing.T, query string, got []byte, ref fixture, want []int, hidden bool) {
	t.Helper()
	if !json.Valid(got) {
		t.Fatalf("Answer(%q) = %.200q…, not valid JSON", query, got)
	}
	gm := members(t, got)
	if len(gm) != len(ref.members) {
		t.Fatalf("Answer(%q) has %d top-level keys, want %d", query, len(gm), len(ref.members))
	}
	for i, m := range gm {
		w := ref.members[i]
		if m.Key != w.Key {
			t.Fatalf("Answer(%q) key %d = %q, want %q", query, i, m.Key, w.Key)
		}
		if m.Key != "symbols" && !bytes.Equal(m.Raw, w.Raw) {
			t.Errorf("Answer(%q) %s = %.80q…, want the fixture's bytes %.80q…", query, m.Key, m.Raw, w.Raw)
		}
	}
	var syms []json.RawMessage
	var top map[string]json.RawMessage
	if err := json.Unmarshal(got, &top); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(top["symbols"], &syms); err != nil {
		t.Fatal(err)
	}
	if len(syms) != len(want) {
		t.Fatalf("Answer(%q) has %d symbols, want %d", query, len(syms), len(want))
	}
	for k, i := range want {
		if !hidden {
			if !bytes.Equal(syms[k], ref.symbols[i]) {
				t.Fatalf("Answer(%q) symbols[%d] = %.80q…, want fixture symbols[%d] %.80q…", query, k, syms[k], i, ref.symbols[i])
			}
			continue
		}
		gotM, wantM := members(t, syms[k]), members(t, ref.symbols[i])
		if len(gotM) != len(wantM) {
			t.Fatalf("Answer(%q) symbols[%d] has %d members, want %d", query, k, len(gotM), len(wantM))
		}
		for j, m := range gotM {
			w := wantM[j]
			if w.Key == "permissionSets" {
				w.Raw = json.RawMessage(`[]`)
			}
			if m.Key != w.Key || !bytes.Equal(m.Raw, w.Raw) {
				t.Fatalf("Answer(%q) symbols[%d].%s = %.60q, want %s = %.60q", query, k, m.Key, m.Raw, w.Key, w.Raw)
			}
		}
	}
}

func queryErr(t *testing.T, err error) *exchangeinfo.QueryError {
	t.Helper()
	var qe *exchangeinfo.QueryError
	if !errors.As(err, &qe) {
		t.Fatalf("error %v (%T) is not a *QueryError", err, err)
	}
	return qe
}

// The Binance answers the error cases expect, with where each comes from.
var (
	// errors.md: -1100 "Illegal characters found in parameter '%s'; legal range is '%s'." (documented).
	// The legal ranges are Binance's current ones, quoted from real answers (observed):
	// symbol: https://github.com/sammchardy/python-binance/blob/master/tests/test_ws_api.py (test_invalid_request,
	// '^[\w\-._&&[^a-z]]{1,50}$'; the older '^[A-Z0-9-_.]{1,20}$' in https://github.com/OpenBB-finance/OpenBB/issues/1794,
	// lower case rejected in https://github.com/DigitalRuby/ExchangeSharp/issues/753).
	badSymbol = &exchangeinfo.QueryError{Code: -1100, Msg: `Illegal characters found in parameter 'symbol'; legal range is '^[\w\-._&&[^a-z]]{1,50}$'.`}
	// symbols: https://github.com/ccxt/go-binance/issues/267 (exchangeInfo, 2021, {1,20} names); the same pattern with
	// the current {1,50} names is inferred from the symbol message above. A space after the comma breaks it.
	badSymbols = &exchangeinfo.QueryError{Code: -1100, Msg: `Illegal characters found in parameter 'symbols'; legal range is '^\[("[\w\-._&&[^a-z]]{1,50}"(,"[\w\-._&&[^a-z]]{1,50}"){0,}){0,1}\]$'.`}
	// Inferred: Binance quotes the allowed values of a parameter with a fixed set as the legal range
	// ("legal range is '5, 10, 20, 50, 100, 500, 1000'", https://github.com/ccxt/go-binance/issues/37).
	badShow = &exchangeinfo.QueryError{Code: -1100, Msg: `Illegal characters found in parameter 'showPermissionSets'; legal range is 'true, false'.`}
	// errors.md -1130 "Data sent for parameter '%s' is not valid." (documented template; its use for permissions is inferred).
	badPermissions = &exchangeinfo.QueryError{Code: -1130, Msg: `Data sent for parameter 'permissions' is not valid.`}
	// errors.md -1122 INVALID_SYMBOLSTATUS "Invalid symbolStatus." (documented).
	badStatus = &exchangeinfo.QueryError{Code: -1122, Msg: `Invalid symbolStatus.`}
	// errors.md -1151 and CHANGELOG 2023-07-11 (documented for exchangeInfo).
	dupSymbols = &exchangeinfo.QueryError{Code: -1151, Msg: `Symbol is present multiple times in the list.`}
	// errors.md -1121 and the rest-api.md note "the endpoint will throw an error saying the symbol is invalid" (documented).
	invalidSymbol = &exchangeinfo.QueryError{Code: -1121, Msg: `Invalid symbol.`}
)

// -1105 "Parameter '%s' was empty." (errors.md; observed for symbol= on
// /api/v3/depth and /api/v3/avgPrice, inferred for exchangeInfo's parameters).
func empty(name string) *exchangeinfo.QueryError {
	return &exchangeinfo.QueryError{Code: -1105, Msg: "Parameter '" + name + "' was empty."}
}

// -1101 with the parameter's name, as observed in
// https://github.com/sieblyio/binance/issues/507 ("Duplicate values for
// parameter 'symbols[]'."); errors.md only gives the generic "Duplicate
// values for a parameter detected."
func duplicate(name string) *exchangeinfo.QueryError {
	return &exchangeinfo.QueryError{Code: -1101, Msg: "Duplicate values for parameter '" + name + "'."}
}

// -1128 in the form observed for symbol with symbols in
// https://github.com/binance/binance-connector-typescript/issues/16; rest-api.md
// documents that permissions and symbolStatus cannot be combined with symbol or
// symbols, the code and message for those pairs are inferred.
func combo(a, b string) *exchangeinfo.QueryError {
	return &exchangeinfo.QueryError{Code: -1128, Msg: "Combination of optional parameters invalid. Recommendation: '" + a + "' and '" + b + "' cannot both be sent."}
}

// -1104 as observed for exchangeInfo?BTCUSDT in
// https://github.com/sieblyio/binance/issues/200 and for a misnamed parameter
// in https://github.com/0xjmp/binance-ruby/issues/3.
func unread(read, sent int) *exchangeinfo.QueryError {
	return &exchangeinfo.QueryError{Code: -1104, Msg: fmt.Sprintf("Not all sent parameters were read; read '%d' parameter(s) but was sent '%d'.", read, sent)}
}

func TestParseQuery_Spot(t *testing.T) {
	long := strings.Repeat("A", 50)
	tests := []struct {
		name, query string
		want        exchangeinfo.Query
		err         *exchangeinfo.QueryError
	}{
		// The documented examples (srcRESTAPI).
		{name: "no parameters", query: ""},
		{name: "symbol", query: "symbol=BNBBTC", want: exchangeinfo.Query{Symbols: []string{"BNBBTC"}}},
		{name: "symbols encoded", query: "symbols=%5B%22BNBBTC%22,%22BTCUSDT%22%5D", want: exchangeinfo.Query{Symbols: []string{"BNBBTC", "BTCUSDT"}}},
		{name: "symbols curl -g", query: `symbols=["BTCUSDT","BNBBTC"]`, want: exchangeinfo.Query{Symbols: []string{"BTCUSDT", "BNBBTC"}}},
		{name: "permissions one", query: "permissions=SPOT", want: exchangeinfo.Query{Permissions: []string{"SPOT"}}},
		{name: "permissions encoded", query: "permissions=%5B%22MARGIN%22%2C%22LEVERAGED%22%5D", want: exchangeinfo.Query{Permissions: []string{"MARGIN", "LEVERAGED"}}},
		{name: "permissions curl -g", query: `permissions=["MARGIN","LEVERAGED"]`, want: exchangeinfo.Query{Permissions: []string{"MARGIN", "LEVERAGED"}}},
		{name: "showPermissionSets false", query: "showPermissionSets=false", want: exchangeinfo.Query{HidePermissionSets: true}},
		{name: "showPermissionSets true is the default", query: "showPermissionSets=true"},
		{name: "symbolStatus", query: "symbolStatus=TRADING", want: exchangeinfo.Query{SymbolStatus: "TRADING"}},
		{name: "symbolStatus HALT", query: "symbolStatus=HALT", want: exchangeinfo.Query{SymbolStatus: "HALT"}},
		{name: "symbolStatus BREAK", query: "symbolStatus=BREAK", want: exchangeinfo.Query{SymbolStatus: "BREAK"}},
		// A query seen in the wild (a C client's fixed request path).
		{name: "permissions, hidden sets, status", query: "permissions=SPOT&showPermissionSets=false&symbolStatus=TRADING",
			want: exchangeinfo.Query{Permissions: []string{"SPOT"}, HidePermissionSets: true, SymbolStatus: "TRADING"}},
		{name: "symbol with hidden sets", query: "symbol=ETHBTC&showPermissionSets=false", want: exchangeinfo.Query{Symbols: []string{"ETHBTC"}, HidePermissionSets: true}},
		{name: "names keep the order asked", query: `symbols=["B","A","C"]`, want: exchangeinfo.Query{Symbols: []string{"B", "A", "C"}}},
		{name: "legal punctuation", query: "symbol=A-B_C.D", want: exchangeinfo.Query{Symbols: []string{"A-B_C.D"}}},
		{name: "50 characters", query: "symbol=" + long, want: exchangeinfo.Query{Symbols: []string{long}}},
		{name: "empty segments skipped", query: "&&symbol=BTCUSDT&", want: exchangeinfo.Query{Symbols: []string{"BTCUSDT"}}},
		{name: "encoded name", query: "%73ymbol=BTCUSDT", want: exchangeinfo.Query{Symbols: []string{"BTCUSDT"}}},
		{name: "future permission group", query: "permissions=TRD_GRP_099", want: exchangeinfo.Query{Permissions: []string{"TRD_GRP_099"}}},
		{name: "permissions array with spaces", query: `permissions=[ "SPOT" , "MARGIN" ]`, want: exchangeinfo.Query{Permissions: []string{"SPOT", "MARGIN"}}},

		// -1100: upper case, digits and -_. only, 1 to 50 characters (badSymbol's sources).
		{name: "lower case symbol", query: "symbol=btcusdt", err: badSymbol},
		{name: "slash", query: "symbol=BTC%2FUSDT", err: badSymbol},
		{name: "51 characters", query: "symbol=" + long + "A", err: badSymbol},
		{name: "plus is a space", query: "symbol=BTC+USDT", err: badSymbol},
		{name: "non-ASCII", query: "symbol=%E5%B8%81USDT", err: badSymbol},
		// Inferred: ';' separates nothing, so it ends up inside the value.
		{name: "semicolon is not a separator", query: "symbol=BTCUSDT;symbolStatus=TRADING", err: badSymbol},
		// Inferred: a value that does not %-decode is kept as sent, and '%' is illegal.
		{name: "broken escape", query: "symbol=BTC%ZZUSDT", err: badSymbol},
		{name: "cut escape", query: "symbol=BTCUSDT%", err: badSymbol},
		{name: "symbols space after comma", query: `symbols=["BTCUSDT", "BNBBTC"]`, err: badSymbols},
		{name: "symbols not an array", query: "symbols=BTCUSDT", err: badSymbols},
		{name: "symbols comma list", query: "symbols=BTCUSDT,BNBBTC", err: badSymbols},
		{name: "symbols unquoted", query: "symbols=[BTCUSDT]", err: badSymbols},
		{name: "symbols lower case", query: `symbols=["btcusdt"]`, err: badSymbols},
		{name: "symbols number", query: "symbols=[1]", err: badSymbols},
		{name: "symbols trailing comma", query: `symbols=["BTCUSDT",]`, err: badSymbols},
		{name: "symbols escaped quote", query: `symbols=["BTC\"USDT"]`, err: badSymbols},
		{name: "symbols empty name", query: `symbols=[""]`, err: badSymbols},
		{name: "symbols not JSON", query: "symbols=%5B", err: badSymbols},
		{name: "symbols object", query: `symbols={"a":"B"}`, err: badSymbols},
		{name: "symbols nested", query: `symbols=[["BTCUSDT"]]`, err: badSymbols},
		{name: "symbols broken escape", query: "symbols=%5B%22BTCUSDT%22%5", err: badSymbols},
		// Observed: symbols=%5B%5D got HTTP 400 with a 154-byte body in https://github.com/ccxt/go-binance/issues/477,
		// exactly the length of that time's -1100 symbols message; so [] is answered -1100 although the pattern admits it.
		{name: "symbols empty array", query: "symbols=%5B%5D", err: badSymbols},
		{name: "showPermissionSets upper case", query: "showPermissionSets=FALSE", err: badShow},
		{name: "showPermissionSets number", query: "showPermissionSets=0", err: badShow},
		{name: "showPermissionSets broken escape", query: "showPermissionSets=f%", err: badShow},

		// -1151 (srcChangelog), before the names are looked up.
		{name: "symbols duplicate", query: `symbols=["BTCUSDT","BTCUSDT"]`, err: dupSymbols},
		{name: "symbols duplicate apart", query: `symbols=["A","B","C","D","E","F","G","H","I","J","K","L","M","N","O","P","Q","A"]`, err: dupSymbols},

		// -1130 for permissions that are neither a name nor an array of names (inferred).
		{name: "permissions lower case", query: "permissions=spot", err: badPermissions},
		{name: "permissions empty array", query: "permissions=[]", err: badPermissions},
		{name: "permissions not strings", query: `permissions=["SPOT",1]`, err: badPermissions},
		{name: "permissions comma list", query: "permissions=SPOT,MARGIN", err: badPermissions},
		{name: "permissions not JSON", query: "permissions=%5B%22SPOT", err: badPermissions},
		{name: "permissions null", query: "permissions=null", err: badPermissions},
		{name: "permissions empty name", query: `permissions=[""]`, err: badPermissions},

		// -1122 (srcErrors); case matters, and futures statuses are not spot ones.
		{name: "symbolStatus lower case", query: "symbolStatus=trading", err: badStatus},
		{name: "symbolStatus futures value", query: "symbolStatus=SETTLING", err: badStatus},
		{name: "symbolStatus broken escape", query: "symbolStatus=%GG", err: badStatus},

		// -1105 (see empty).
		{name: "symbol empty", query: "symbol=", err: empty("symbol")},
		{name: "symbol without =", query: "symbol", err: empty("symbol")},
		{name: "symbols empty", query: "symbols=", err: empty("symbols")},
		{name: "permissions empty", query: "permissions=", err: empty("permissions")},
		{name: "showPermissionSets empty", query: "showPermissionSets=", err: empty("showPermissionSets")},
		{name: "symbolStatus empty", query: "symbolStatus=", err: empty("symbolStatus")},

		// -1101 (see duplicate), for any name, before anything else.
		{name: "symbol twice", query: "symbol=BTCUSDT&symbol=ETHBTC", err: duplicate("symbol")},
		{name: "symbol twice, same value", query: "symbol=BTCUSDT&symbol=BTCUSDT", err: duplicate("symbol")},
		{name: "symbols[] twice (observed)", query: "symbols%5B%5D=BTCUSDT&symbols%5B%5D=ETHUSDT", err: duplicate("symbols[]")},
		{name: "showPermissionSets twice", query: "showPermissionSets=true&showPermissionSets=false", err: duplicate("showPermissionSets")},
		{name: "twice, once encoded", query: "symbol=BTCUSDT&%73ymbol=ETHBTC", err: duplicate("symbol")},
		{name: "duplicate before empty", query: "symbol=&symbol=", err: duplicate("symbol")},

		// -1128 (see combo).
		{name: "symbol and symbols", query: `symbol=BTCUSDT&symbols=["ETHBTC"]`, err: combo("symbol", "symbols")},
		{name: "permissions and symbol", query: "permissions=SPOT&symbol=BTCUSDT", err: combo("permissions", "symbol")},
		{name: "permissions and symbols", query: `symbols=["BTCUSDT"]&permissions=SPOT`, err: combo("permissions", "symbols")},
		{name: "symbolStatus and symbol", query: "symbol=BTCUSDT&symbolStatus=TRADING", err: combo("symbolStatus", "symbol")},
		{name: "symbolStatus and symbols", query: `symbols=["BTCUSDT"]&symbolStatus=TRADING`, err: combo("symbolStatus", "symbols")},

		// -1104 (see unread), last: bad values of known parameters answer first.
		{name: "bare value (observed)", query: "BTCUSDT", err: unread(0, 1)},
		{name: "unknown with known", query: "symbol=BTCUSDT&foo=bar", err: unread(1, 2)},
		{name: "names are case-sensitive", query: "Symbol=BTCUSDT", err: unread(0, 1)},
		{name: "futures parameter on spot", query: "pair=BTCUSD", err: unread(0, 1)},
		{name: "empty name", query: "=BTCUSDT", err: unread(0, 1)},
		{name: "broken escape in a name", query: "%ZZ=1", err: unread(0, 1)},
		{name: "known value first", query: "foo=1&symbol=btcusdt", err: badSymbol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := exchangeinfo.ParseQuery(exchangeinfo.Spot, tt.query)
			if tt.err != nil {
				if err == nil {
					t.Fatalf("ParseQuery(%q) = %+v, nil; want %v", tt.query, got, tt.err)
				}
				if qe := queryErr(t, err); *qe != *tt.err {
					t.Fatalf("ParseQuery(%q) = %d %q, want %d %q", tt.query, qe.Code, qe.Msg, tt.err.Code, tt.err.Msg)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseQuery(%q) = %+v, %v; want %+v, nil", tt.query, got, err, tt.want)
			}
			if got.Full() != reflect.DeepEqual(tt.want, exchangeinfo.Query{}) {
				t.Errorf("ParseQuery(%q).Full() = %v", tt.query, got.Full())
			}
		})
	}
}

// USD-M and COIN-M document no parameters (srcUSDM) and, as measured against
// the live hosts, ignore them: "fapi/v1/exchangeInfo?symbol=BTCUSDT returns
// all 897", "dapi/v1/exchangeInfo?symbol=BTCUSD_PERP and ?pair=BTCUSD both
// return all 30" (https://github.com/vike-io/vike-trader/blob/4a59084878371841b912476908ca9288e13426ae/crates/bridges/binance/src/instruments.rs).
// Many clients rely on it by calling ?symbol= and searching the list. Every
// query string, even one spot would reject, gets the full body (observed for
// symbol and pair; inferred for the rest).
func TestParseQuery_Futures(t *testing.T) {
	queries := []string{
		"", "symbol=BTCUSDT", "pair=BTCUSD", `symbols=["BTCUSDT"]`, "symbol=btcusdt",
		"showPermissionSets=false", "symbolStatus=TRADING", "symbol=A&symbol=B", "foo=%ZZ", "symbol=",
	}
	for _, tt := range []struct {
		market exchangeinfo.Market
		file   string
	}{
		{exchangeinfo.USDM, "usdm_exchangeinfo.json"},
		{exchangeinfo.COINM, "coinm_exchangeinfo.json"},
	} {
		s, _ := load(t, tt.file, tt.market)
		for _, query := range queries {
			q, err := exchangeinfo.ParseQuery(tt.market, query)
			if err != nil || !q.Full() {
				t.Fatalf("ParseQuery(%s, %q) = %+v, %v; want the full query", tt.market, query, q, err)
			}
			got, err := s.Answer(q)
			if err != nil || len(got) != len(s.Body()) || &got[0] != &s.Body()[0] {
				t.Fatalf("Answer(%s %q) = %d bytes, %v; want Body itself", tt.market, query, len(got), err)
			}
		}
	}
}

func TestParseQuery_UnknownMarket(t *testing.T) {
	_, err := exchangeinfo.ParseQuery("options", "symbol=BTCUSDT")
	var qe *exchangeinfo.QueryError
	if err == nil || errors.As(err, &qe) {
		t.Errorf("ParseQuery(options) = %v, want a plain error (not bad input)", err)
	}
}

func TestSnapshot_Answer_Spot(t *testing.T) {
	s, ref := load(t, "spot_exchangeinfo.json", exchangeinfo.Spot)
	before := bytes.Clone(s.Body())
	hasAny := func(perms ...string) func(fields) bool {
		return func(f fields) bool { return slices.ContainsFunc(perms, f.has) }
	}
	status := func(st string) func(fields) bool { return func(f fields) bool { return f.status() == st } }
	tests := []struct {
		name, query string
		keep        func(fields) bool
		count       int // when > 0, the expected count from SOURCES.md or the fixture
		err         *exchangeinfo.QueryError
	}{
		{name: "full", query: "", keep: func(fields) bool { return true }, count: 2292},
		{name: "one symbol", query: "symbol=BTCUSDT", keep: ref.named("BTCUSDT"), count: 1},
		// Inferred: Binance filters its own list, so symbols come in its order, not the order asked.
		{name: "snapshot order, not asked order", query: `symbols=["BTCUSDT","ETHBTC"]`, keep: ref.named("BTCUSDT", "ETHBTC"), count: 2},
		{name: "three reversed", query: `symbols=["QTUMETH","BNBBTC","ETHBTC"]`, keep: ref.named("QTUMETH", "BNBBTC", "ETHBTC"), count: 3},
		{name: "TRADING", query: "symbolStatus=TRADING", keep: status("TRADING"), count: 1340},
		{name: "BREAK", query: "symbolStatus=BREAK", keep: status("BREAK"), count: 952},
		{name: "HALT, none in the snapshot", query: "symbolStatus=HALT", keep: status("HALT")},
		{name: "LEVERAGED", query: `permissions=["LEVERAGED"]`, keep: hasAny("LEVERAGED"), count: 40},
		{name: "MARGIN", query: "permissions=MARGIN", keep: hasAny("MARGIN"), count: 557},
		{name: "MARGIN or LEVERAGED", query: `permissions=["MARGIN","LEVERAGED"]`, keep: hasAny("MARGIN", "LEVERAGED"), count: 597},
		{name: "trading group", query: "permissions=TRD_GRP_004", keep: hasAny("TRD_GRP_004"), count: 506},
		{name: "permission nobody has", query: "permissions=TRD_GRP_099", keep: hasAny("TRD_GRP_099")},
		{name: "status and permissions", query: "symbolStatus=TRADING&permissions=LEVERAGED",
			keep: func(f fields) bool { return f.status() == "TRADING" && f.has("LEVERAGED") }},
		{name: "unknown symbol", query: "symbol=NOSUCHSYMBOL", err: invalidSymbol},
		{name: "one unknown among known", query: `symbols=["BTCUSDT","NOSUCHSYMBOL","ETHBTC"]`, err: invalidSymbol},
		// Inferred: a delisted-looking but well-formed name is simply not listed.
		{name: "legal but unlisted", query: "symbol=BTC-USDT", err: invalidSymbol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := exchangeinfo.ParseQuery(exchangeinfo.Spot, tt.query)
			if err != nil {
				t.Fatalf("ParseQuery(%q) = %v", tt.query, err)
			}
			got, err := s.Answer(q)
			if tt.err != nil {
				if err == nil {
					t.Fatalf("Answer(%q) = %.60q…, nil; want %v", tt.query, got, tt.err)
				}
				if qe := queryErr(t, err); *qe != *tt.err {
					t.Fatalf("Answer(%q) = %d %q, want %d %q", tt.query, qe.Code, qe.Msg, tt.err.Code, tt.err.Msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Answer(%q) = %v", tt.query, err)
			}
			want := ref.pick(tt.keep)
			if tt.count > 0 && len(want) != tt.count {
				t.Fatalf("the fixture has %d symbols for %q, want %d: the test data changed", len(want), tt.query, tt.count)
			}
			checkAnswer(t, tt.query, got, ref, want, false)
			if q.Full() {
				if &got[0] != &s.Body()[0] || exchangeinfo.ETag(got) != s.ETag() {
					t.Errorf("Answer(%q) is not Body itself with the snapshot's ETag", tt.query)
				}
			} else if exchangeinfo.ETag(got) == s.ETag() {
				t.Errorf("ETag(Answer(%q)) = the full body's ETag %s", tt.query, s.ETag())
			}
		})
	}
	if !bytes.Equal(s.Body(), before) {
		t.Error("Answer modified Body")
	}
}

// The 2023 spot fixture predates permissionSets: showPermissionSets=false
// has nothing to empty, so the answer is the body's bytes again.
func TestSnapshot_Answer_NoPermissionSets(t *testing.T) {
	s, ref := load(t, "spot_exchangeinfo.json", exchangeinfo.Spot)
	q, err := exchangeinfo.ParseQuery(exchangeinfo.Spot, "showPermissionSets=false")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Answer(q)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, ref.body) {
		t.Errorf("Answer(showPermissionSets=false) = %d bytes, want the body's %d bytes", len(got), len(ref.body))
	}
	if &got[0] == &s.Body()[0] {
		t.Error("Answer(showPermissionSets=false) returned Body itself, want a new slice")
	}
}

func TestSnapshot_Answer_Testnet(t *testing.T) {
	s, ref := load(t, "spot_testnet_exchangeinfo_2021-07-11.json", exchangeinfo.Spot)
	tests := []struct {
		query string
		keep  func(fields) bool
	}{
		{"symbol=BTCBUSD", ref.named("BTCBUSD")},
		{`symbols=["TRXBUSD","BNBBUSD"]`, ref.named("TRXBUSD", "BNBBUSD")},
		{"symbolStatus=TRADING", func(f fields) bool { return f.Status == "TRADING" }},
		{"symbolStatus=BREAK", func(f fields) bool { return f.Status == "BREAK" }},
		{"permissions=SPOT&showPermissionSets=true", func(f fields) bool { return f.has("SPOT") }},
		{"permissions=MARGIN", func(f fields) bool { return f.has("MARGIN") }},
	}
	for _, tt := range tests {
		q, err := exchangeinfo.ParseQuery(exchangeinfo.Spot, tt.query)
		if err != nil {
			t.Fatalf("ParseQuery(%q) = %v", tt.query, err)
		}
		got, err := s.Answer(q)
		if err != nil {
			t.Fatalf("Answer(%q) = %v", tt.query, err)
		}
		checkAnswer(t, tt.query, got, ref, ref.pick(tt.keep), false)
	}
}

// A spot-like body with 2024's permissionSets ([["SPOT","MARGIN"]]), written
// for this test: rest-api.md's sample answer has "permissions":[] and
// "permissionSets":[["SPOT","MARGIN"]], and a real answer to
// ?symbolStatus=TRADING&showPermissionSets=false (serverTime 1750476472810,
// recorded in chainslake's ExchangeInfoTest.scala on GitHub) has
// "permissions":[],"permissionSets":[] — the key stays, its value is emptied.
const setsBody = `{"timezone":"UTC","serverTime":1750476472810,"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}],` +
	`"exchangeFilters":[],"symbols":[` +
	`{"symbol":"ETHBTC","status":"TRADING","filters":[{"filterType":"X","permissionSets":[["KEEP"]]}],"permissions":[],"permissionSets":[["SPOT","MARGIN"]],"defaultSelfTradePreventionMode":"EXPIRE_MAKER"},` +
	`{"symbol":"BNBBTC","status":"BREAK","permissions":[],"permissionSets":[["SPOT"],["TRD_GRP_004","TRD_GRP_005"]]},` +
	`{"symbol":"NOSETS","status":"TRADING","permissions":["SPOT"]},` +
	`{"symbol":"ODDKEY","status":"HALT","permissions":[],"permission\u0053ets" : [ [ "LEVERAGED" ] ] ,"x":"]}"}` +
	`],"sors":[{"baseAsset":"BTC","symbols":["BTCUSDT","BTCUSDC"]}]}`

func TestSnapshot_Answer_PermissionSets(t *testing.T) {
	body := []byte(setsBody)
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ref := decodeFixture(t, bytes.Clone(body))
	tests := []struct {
		query  string
		keep   func(fields) bool
		hidden bool
	}{
		{"showPermissionSets=false", func(fields) bool { return true }, true},
		{"symbol=BNBBTC&showPermissionSets=false", ref.named("BNBBTC"), true},
		{`symbols=["ODDKEY","NOSETS"]&showPermissionSets=false`, ref.named("ODDKEY", "NOSETS"), true},
		{"symbolStatus=TRADING&showPermissionSets=false", func(f fields) bool { return f.Status == "TRADING" }, true},
		// permissions selects by permissions and by every set (Symbol.Perms is their union).
		{"permissions=MARGIN", func(f fields) bool { return f.has("MARGIN") }, false},
		{"permissions=TRD_GRP_005", func(f fields) bool { return f.has("TRD_GRP_005") }, false},
		{`permissions=["LEVERAGED","SPOT"]`, func(f fields) bool { return f.has("LEVERAGED") || f.has("SPOT") }, false},
		// A "permissionSets" key nested in filters is not a permission of the symbol.
		{"permissions=KEEP", func(fields) bool { return false }, false},
	}
	for _, tt := range tests {
		q, err := exchangeinfo.ParseQuery(exchangeinfo.Spot, tt.query)
		if err != nil {
			t.Fatalf("ParseQuery(%q) = %v", tt.query, err)
		}
		got, err := s.Answer(q)
		if err != nil {
			t.Fatalf("Answer(%q) = %v", tt.query, err)
		}
		checkAnswer(t, tt.query, got, ref, ref.pick(tt.keep), tt.hidden)
	}
	if !bytes.Equal(body, []byte(setsBody)) {
		t.Error("Answer modified Body")
	}
	// The nested filter's "permissionSets" is left alone.
	got, _ := s.Answer(exchangeinfo.Query{Symbols: []string{"ETHBTC"}, HidePermissionSets: true})
	if !bytes.Contains(got, []byte(`"permissionSets":[["KEEP"]]`)) || !bytes.Contains(got, []byte(`"permissions":[],"permissionSets":[],"default`)) {
		t.Errorf("Answer(ETHBTC, hidden) = %s", got)
	}
}

// Queries built by hand reach Answer on the futures snapshots too (their
// Binance paths ignore parameters, see TestParseQuery_Futures): the
// pretty-printed USD-M body keeps its bytes around the array, and its flat
// permissionSets lists are emptied in place.
func TestSnapshot_Answer_Futures(t *testing.T) {
	usdm, uref := load(t, "usdm_exchangeinfo.json", exchangeinfo.USDM)
	coinm, cref := load(t, "coinm_exchangeinfo.json", exchangeinfo.COINM)
	tests := []struct {
		s      *exchangeinfo.Snapshot
		ref    fixture
		q      exchangeinfo.Query
		keep   func(fields) bool
		count  int
		hidden bool
	}{
		{usdm, uref, exchangeinfo.Query{HidePermissionSets: true}, func(fields) bool { return true }, 660, true},
		{usdm, uref, exchangeinfo.Query{SymbolStatus: "TRADING"}, func(f fields) bool { return f.Status == "TRADING" }, 559, false},
		{usdm, uref, exchangeinfo.Query{SymbolStatus: "SETTLING", HidePermissionSets: true}, func(f fields) bool { return f.Status == "SETTLING" }, 49, true},
		{usdm, uref, exchangeinfo.Query{Permissions: []string{"GRID"}}, func(f fields) bool { return f.has("GRID") }, 0, false},
		{usdm, uref, exchangeinfo.Query{Symbols: []string{"ETHUSDT", "BTCUSDT"}, HidePermissionSets: true}, uref.named("BTCUSDT", "ETHUSDT"), 2, true},
		// Non-ASCII names, \u-escaped in this fixture, are looked up decoded.
		{usdm, uref, exchangeinfo.Query{Symbols: []string{"币安人生USDT"}}, uref.named("币安人生USDT"), 1, false},
		{coinm, cref, exchangeinfo.Query{SymbolStatus: "DELIVERING"}, func(f fields) bool { return f.ContractStatus == "DELIVERING" }, 3, false},
		{coinm, cref, exchangeinfo.Query{Symbols: []string{"BTCUSD_PERP", "BTCUSD_PERP"}}, cref.named("BTCUSD_PERP"), 1, false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s %+v", tt.s.Market(), tt.q)
		got, err := tt.s.Answer(tt.q)
		if err != nil {
			t.Fatalf("Answer(%s) = %v", name, err)
		}
		want := tt.ref.pick(tt.keep)
		if tt.count > 0 && len(want) != tt.count {
			t.Fatalf("the fixture has %d symbols for %s, want %d", len(want), name, tt.count)
		}
		checkAnswer(t, name, got, tt.ref, want, tt.hidden)
		// The same after json.Compact of both, the comparison a re-encoding would need.
		var a, b bytes.Buffer
		if json.Compact(&a, got) != nil || json.Compact(&b, tt.ref.body) != nil {
			t.Fatal("json.Compact failed")
		}
		if tt.q.HidePermissionSets || len(want) < len(tt.ref.symbols) {
			continue
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("Compact(Answer(%s)) differs from Compact(body)", name)
		}
	}
}

func TestETag(t *testing.T) {
	s, ref := load(t, "coinm_exchangeinfo.json", exchangeinfo.COINM)
	if got := exchangeinfo.ETag(ref.body); got != s.ETag() {
		t.Errorf("ETag(body) = %s, want Snapshot.ETag() %s", got, s.ETag())
	}
	a, b := exchangeinfo.ETag([]byte(`{"a":1}`)), exchangeinfo.ETag([]byte(`{"a":2}`))
	if a == b || !strings.HasPrefix(a, `"`) || !strings.HasSuffix(a, `"`) || strings.HasPrefix(a, `W/`) {
		t.Errorf("ETag = %s, %s; want distinct strong quoted tags", a, b)
	}
}

func TestQueryError(t *testing.T) {
	err := error(&exchangeinfo.QueryError{Code: -1121, Msg: "Invalid symbol."})
	if got := err.Error(); !strings.Contains(got, "-1121") || !strings.Contains(got, "Invalid symbol.") {
		t.Errorf("Error() = %q, want the code and message", got)
	}
}

func FuzzParseQueryAnswer(f *testing.F) {
	body := fixtures.Read(f, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
	s, err := exchangeinfo.Parse(exchangeinfo.Spot, body, time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	raws := make(map[string][]byte, s.Len())
	order := make(map[string]int, s.Len())
	for i, sym := range s.Symbols() {
		raws[sym.Name], order[sym.Name] = sym.Raw, i
	}
	f.Add("symbol=BTCBUSD")
	f.Add(`symbols=["TRXBUSD","BNBBUSD"]`)
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, err := exchangeinfo.ParseQuery(exchangeinfo.Spot, rawQuery)
		var got []byte
		if err == nil {
			got, err = s.Answer(q)
		}
		if err != nil {
			var qe *exchangeinfo.QueryError
			if !errors.As(err, &qe) || qe.Code >= 0 || qe.Msg == "" {
				t.Fatalf("ParseQuery/Answer(%q) error = %#v, want a *QueryError with a negative code and a message", rawQuery, err)
			}
			return
		}
		if q.Full() && &got[0] != &s.Body()[0] {
			t.Fatalf("Answer(%q) of a full query is not Body", rawQuery)
		}
		if !json.Valid(got) {
			t.Fatalf("Answer(%q) = %.200q, not valid JSON", rawQuery, got)
		}
		var answer struct{ Symbols []json.RawMessage }
		if err := json.Unmarshal(got, &answer); err != nil {
			t.Fatal(err)
		}
		last := -1
		for i, raw := range answer.Symbols {
			var f struct{ Symbol string }
			if err := json.Unmarshal(raw, &f); err != nil {
				t.Fatal(err)
			}
			want, ok := raws[f.Symbol]
			if !ok || !bytes.Equal(raw, want) || order[f.Symbol] <= last {
				t.Fatalf("Answer(%q) symbols[%d] = %.60q: not the snapshot's object, or out of order", rawQuery, i, raw)
			}
			last = order[f.Symbol]
		}
	})
}

// BenchmarkAnswer measures answer selection and encoding per market and
// size: the recorded spot answer (3.7 MB), the same grown to about 15 MB (see
// fixtures.Grow), and the futures answers. The query goes through
// ParseQuery for the market, so on USD-M and COIN-M, which ignore query
// parameters, every case is the full answer: only "full" runs there. The
// names asked for are taken from each snapshot, spread over its whole list.
// SetBytes is the size of the answer produced.
func BenchmarkAnswer(b *testing.B) {
	spot := fixtures.Read(b, "binance/spot_exchangeinfo.json")
	for _, bb := range []struct {
		name string
		m    exchangeinfo.Market
		body []byte
	}{
		{"spot", exchangeinfo.Spot, spot},
		{"spot-15MB", exchangeinfo.Spot, fixtures.Grow(b, spot, 15<<20)},
		{"usdm", exchangeinfo.USDM, fixtures.Read(b, "binance/usdm_exchangeinfo.json")},
		{"coinm", exchangeinfo.COINM, fixtures.Read(b, "binance/coinm_exchangeinfo.json")},
	} {
		s, err := exchangeinfo.Parse(bb.m, bb.body, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
		if err != nil {
			b.Fatalf("Parse(%s) = %v", bb.name, err)
		}
		b.Run(bb.name, func(b *testing.B) {
			for _, c := range []struct{ name, query string }{
				{"full", ""},
				{"symbol", "symbol=BTCUSDT"},
				{"symbols10", symbolsQuery(s, 10)},
				{"symbols500", symbolsQuery(s, 500)},
				{"symbolStatusTRADING", "symbolStatus=TRADING"},
				{"permissionsMARGIN", `permissions=["MARGIN"]`},
				{"hidePermissionSets", "showPermissionSets=false"},
			} {
				q, err := exchangeinfo.ParseQuery(bb.m, c.query)
				if err != nil {
					b.Fatalf("ParseQuery(%s, %.60q) = %v", bb.m, c.query, err)
				}
				if q.Full() && c.query != "" {
					continue // a futures market: the same as "full"
				}
				b.Run(c.name, func(b *testing.B) {
					answer, err := s.Answer(q)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					b.SetBytes(int64(len(answer))) // the answer produced
					for b.Loop() {
						if _, err := s.Answer(q); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// symbolsQuery is a symbols= query naming n of s's symbols, spread evenly
// over its list and in reverse order (Answer sorts them).
func symbolsQuery(s *exchangeinfo.Snapshot, n int) string {
	syms := s.Symbols()
	list := make([]string, 0, n)
	for i := len(syms) - 1; len(list) < n; i -= len(syms) / n {
		list = append(list, `"`+syms[i].Name+`"`)
	}
	return "symbols=" + url.QueryEscape("["+strings.Join(list, ",")+"]")
}

func BenchmarkParseQuery(b *testing.B) {
	list := make([]string, 500)
	for i := range list {
		list[i] = fmt.Sprintf(`"SYM%dUSDT"`, i)
	}
	for _, bb := range []struct{ name, query string }{
		{"empty", ""},
		{"symbol", "symbol=BTCUSDT"},
		{"symbols500", "symbols=" + url.QueryEscape("["+strings.Join(list, ",")+"]")},
		{"filters", `permissions=["MARGIN","LEVERAGED"]&symbolStatus=TRADING&showPermissionSets=false`},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.query)))
			for b.Loop() {
				if _, err := exchangeinfo.ParseQuery(exchangeinfo.Spot, bb.query); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
