package exchangeinfo

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// QueryError is bad query input. It is answered with HTTP 400 and Binance's
// body {"code":Code,"msg":Msg}. Code is one of Binance's negative error codes
// (https://developers.binance.com/docs/binance-spot-api-docs/errors).
type QueryError struct {
	Code int
	Msg  string
}

func (e *QueryError) Error() string { return fmt.Sprintf("binance error %d: %s", e.Code, e.Msg) }

func queryError(code int, format string, args ...any) *QueryError {
	return &QueryError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// The legal ranges Binance quotes in its -1100 messages. Binance's regular
// expressions are Java's: [\w\-._&&[^a-z]] is A-Z, 0-9, '_', '-' and '.'.
const (
	symbolRange  = `^[\w\-._&&[^a-z]]{1,50}$`
	symbolsRange = `^\[("[\w\-._&&[^a-z]]{1,50}"(,"[\w\-._&&[^a-z]]{1,50}"){0,}){0,1}\]$`
	maxNameLen   = 50
)

// errInvalidSymbol is Binance's answer for a well-formed name it does not list.
var errInvalidSymbol = &QueryError{Code: -1121, Msg: "Invalid symbol."}

// Query is a parsed exchangeInfo query. The zero Query asks for the full
// answer: the cached body as is. Binance documents that without permissions
// it lists the symbols that have SPOT, MARGIN or LEVERAGED; symcache fetches
// its body without parameters, so that body already is that default list,
// and every filter below narrows it.
type Query struct {
	// Symbols selects these symbols (from symbol= or symbols=), in the order
	// asked; the answer lists them in Binance's order all the same. Every name
	// must exist in the snapshot.
	Symbols []string
	// Permissions keeps the symbols that have any of these permissions, in
	// permissions or in any of their permissionSets.
	Permissions []string
	// HidePermissionSets (showPermissionSets=false) empties every
	// permissionSets value: "permissionSets":[].
	HidePermissionSets bool
	// SymbolStatus keeps the symbols whose status (contractStatus on COIN-M)
	// is this one: TRADING, HALT or BREAK.
	SymbolStatus string
}

// Full reports whether q asks for the whole, unfiltered answer, which is the
// snapshot's Body as is.
func (q Query) Full() bool {
	return len(q.Symbols) == 0 && len(q.Permissions) == 0 && !q.HidePermissionSets && q.SymbolStatus == ""
}

// The parameters of GET /api/v3/exchangeInfo, in the order ParseQuery
// checks them.
var spotParams = []string{"symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"}

// ParseQuery parses a raw URL query string (r.URL.RawQuery) of market m's
// exchangeInfo endpoint, and answers bad input with a *QueryError as Binance
// does.
//
// USD-M and COIN-M document "Parameters: NONE" and ignore whatever is sent,
// symbol= included: their query is always the zero Query.
//
// Spot reads symbol, symbols, permissions, showPermissionSets and
// symbolStatus. Nothing in the query string is dropped silently:
//   - Parameters are separated by '&' only; an empty one ("a=1&&b=2", a
//     trailing '&') is skipped. ';' is an ordinary character, so
//     "symbol=BTCUSDT;x=1" is a symbol with illegal characters.
//   - Names and values are %-decoded, '+' being a space. A name or value that
//     does not decode is kept as sent: it then holds a '%', which no
//     parameter name or legal value contains, so it is answered as an unknown
//     parameter or an illegal value.
//   - A parameter without '=' has an empty value.
//
// The checks, in this order, and the first that fails answers:
//
//	-1101 a parameter sent twice, known or not
//	-1105 a known parameter with an empty value
//	-1100 symbol or symbols not in Binance's legal range (upper case, digits,
//	      '-', '_' and '.', 1 to 50 characters; symbols a JSON array of
//	      such strings with no spaces and at least one element);
//	      showPermissionSets other than true or false
//	-1151 a name twice in symbols
//	-1130 permissions neither one name nor a JSON array of names
//	-1122 symbolStatus other than TRADING, HALT or BREAK
//	-1128 symbol with symbols; permissions or symbolStatus with either
//	-1104 any other parameter
//
// Whether the symbols exist is Answer's to say (-1121).
func ParseQuery(m Market, rawQuery string) (Query, error) {
	switch m {
	case Spot:
		if rawQuery == "" {
			return Query{}, nil
		}
	case USDM, COINM:
		return Query{}, nil
	default:
		return Query{}, fmt.Errorf("parse exchangeInfo query: unknown market %q", string(m))
	}
	var (
		q      Query
		vals   [5]string // by index in spotParams
		sent   [5]bool
		buf    [8]string
		seen   = nameSet{list: buf[:0]} // every parameter sent, to find duplicates
		unread int
	)
	for seg := range strings.SplitSeq(rawQuery, "&") {
		if seg == "" {
			continue
		}
		rawName, rawVal, _ := strings.Cut(seg, "=")
		name, val := unescape(rawName), unescape(rawVal)
		if !seen.add(name) {
			return Query{}, queryError(-1101, "Duplicate values for parameter '%s'.", name)
		}
		if i := slices.Index(spotParams, name); i >= 0 {
			vals[i], sent[i] = val, true
		} else {
			unread++
		}
	}
	for i, name := range spotParams {
		if sent[i] && vals[i] == "" {
			return Query{}, queryError(-1105, "Parameter '%s' was empty.", name)
		}
	}
	symbol, symbols, permissions, show, status := vals[0], vals[1], vals[2], vals[3], vals[4]
	hasSymbol, hasSymbols, hasPermissions, hasShow, hasStatus := sent[0], sent[1], sent[2], sent[3], sent[4]
	if hasSymbol {
		if !legalName(symbol) {
			return Query{}, queryError(-1100, "Illegal characters found in parameter 'symbol'; legal range is '%s'.", symbolRange)
		}
		q.Symbols = []string{symbol}
	}
	if hasSymbols {
		list, ok := parseSymbols(symbols)
		if !ok {
			return Query{}, queryError(-1100, "Illegal characters found in parameter 'symbols'; legal range is '%s'.", symbolsRange)
		}
		if hasDuplicate(list) {
			return Query{}, &QueryError{Code: -1151, Msg: "Symbol is present multiple times in the list."}
		}
		q.Symbols = list
	}
	if hasPermissions {
		list, ok := parsePermissions(permissions)
		if !ok {
			return Query{}, queryError(-1130, "Data sent for parameter 'permissions' is not valid.")
		}
		q.Permissions = list
	}
	if hasShow {
		switch show {
		case "true":
		case "false":
			q.HidePermissionSets = true
		default:
			return Query{}, queryError(-1100, "Illegal characters found in parameter 'showPermissionSets'; legal range is 'true, false'.")
		}
	}
	if hasStatus {
		switch status {
		case "TRADING", "HALT", "BREAK":
			q.SymbolStatus = status
		default:
			return Query{}, &QueryError{Code: -1122, Msg: "Invalid symbolStatus."}
		}
	}
	for _, c := range [...]struct {
		a, b       string
		hasA, hasB bool
	}{
		{"symbol", "symbols", hasSymbol, hasSymbols},
		{"permissions", "symbol", hasPermissions, hasSymbol},
		{"permissions", "symbols", hasPermissions, hasSymbols},
		{"symbolStatus", "symbol", hasStatus, hasSymbol},
		{"symbolStatus", "symbols", hasStatus, hasSymbols},
	} {
		if c.hasA && c.hasB {
			return Query{}, queryError(-1128, "Combination of optional parameters invalid. Recommendation: '%s' and '%s' cannot both be sent.", c.a, c.b)
		}
	}
	if unread > 0 {
		return Query{}, queryError(-1104, "Not all sent parameters were read; read '%d' parameter(s) but was sent '%d'.", seen.len()-unread, seen.len())
	}
	return q, nil
}

// nameSet holds the parameter names seen: a slice for the few of a normal
// query, a map once there are many.
type nameSet struct {
	list []string
	m    map[string]struct{}
}

// add adds name and reports whether it was new.
func (ns *nameSet) add(name string) bool {
	if ns.m != nil {
		if _, dup := ns.m[name]; dup {
			return false
		}
		ns.m[name] = struct{}{}
		return true
	}
	if slices.Contains(ns.list, name) {
		return false
	}
	ns.list = append(ns.list, name)
	if len(ns.list) == 16 {
		ns.m = make(map[string]struct{}, 32)
		for _, n := range ns.list {
			ns.m[n] = struct{}{}
		}
	}
	return true
}

func (ns *nameSet) len() int {
	if ns.m != nil {
		return len(ns.m)
	}
	return len(ns.list)
}

// unescape decodes a query component, or returns it as sent when it does
// not decode.
func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// legalName reports whether s is in Binance's legal range for a symbol:
// 1 to 50 of A-Z, 0-9, '-', '_' and '.'.
func legalName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// parseSymbols reads a symbols value as Binance's regular expression allows
// it: ["A","B"] without spaces or escapes, each name a legal symbol, and, as
// Binance answers for symbols=[], at least one name.
func parseSymbols(s string) ([]string, bool) {
	if len(s) < len(`[""]`) || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, false
	}
	list := make([]string, 0, strings.Count(s, ",")+1)
	for i := 1; ; {
		if s[i] != '"' {
			return nil, false
		}
		end := strings.IndexByte(s[i+1:], '"')
		if end < 0 {
			return nil, false
		}
		name := s[i+1 : i+1+end]
		if !legalName(name) {
			return nil, false
		}
		list = append(list, name)
		i += end + 2
		switch {
		case i == len(s)-1: // the closing ']'
			return list, true
		case s[i] == ',' && i+1 < len(s)-1:
			i++
		default:
			return nil, false
		}
	}
}

func hasDuplicate(list []string) bool {
	if len(list) < 16 {
		for i, a := range list {
			if slices.Contains(list[i+1:], a) {
				return true
			}
		}
		return false
	}
	seen := make(map[string]struct{}, len(list))
	for _, a := range list {
		if _, dup := seen[a]; dup {
			return true
		}
		seen[a] = struct{}{}
	}
	return false
}

// parsePermissions reads one permission name (SPOT) or a JSON array of them
// (["MARGIN","LEVERAGED"]). A name is 1 to 50 of A-Z, 0-9 and '_' (SPOT,
// TRD_GRP_004, …); names Binance may add later are accepted and select the
// symbols that have them.
func parsePermissions(s string) ([]string, bool) {
	var list []string
	if s[0] == '[' {
		if json.Unmarshal([]byte(s), &list) != nil || len(list) == 0 {
			return nil, false
		}
	} else {
		list = []string{s}
	}
	for _, p := range list {
		if len(p) == 0 || len(p) > maxNameLen || strings.IndexFunc(p, func(r rune) bool {
			return !('A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_')
		}) >= 0 {
			return nil, false
		}
	}
	return list, true
}

// Answer returns the body Binance would send for q on this snapshot: Body's
// bytes around the symbols array unchanged (timezone, serverTime, rateLimits,
// exchangeFilters, and whatever else the market sends, in its order), and in
// the array only the selected symbol objects, byte for byte as in Body, in
// Body's order whatever the order asked. With q.HidePermissionSets each
// object's "permissionSets" value is [] and nothing else changes.
//
// A name in q.Symbols that the snapshot does not list is a *QueryError
// {-1121, "Invalid symbol."}. For a full query Answer returns Body itself;
// otherwise a new slice. Body is never modified.
func (s *Snapshot) Answer(q Query) ([]byte, error) {
	if q.Full() {
		return s.body, nil
	}
	if len(q.Symbols) == 0 {
		return s.answer(&q, nil), nil
	}
	var buf [16]int
	picked := buf[:0] // indexes into s.symbols
	if len(q.Symbols) > len(buf) {
		picked = make([]int, 0, len(q.Symbols))
	}
	for _, name := range q.Symbols {
		i, ok := s.index[name]
		if !ok {
			return nil, errInvalidSymbol
		}
		picked = append(picked, i)
	}
	slices.Sort(picked)
	return s.answer(&q, slices.Compact(picked)), nil
}

// answer builds the body for q from the symbols at the ascending indexes
// picked, or from every symbol when picked is nil, keeping those that pass
// q's filters. It sizes the answer first and allocates it once.
func (s *Snapshot) answer(q *Query, picked []int) []byte {
	count := len(picked)
	if picked == nil {
		count = len(s.symbols)
	}
	at := func(k int) int {
		if picked == nil {
			return k
		}
		return picked[k]
	}
	var sets []span
	if q.HidePermissionSets {
		sets = s.permissionSets()
	}
	prefix, suffix := s.body[:s.arrOpen+1], s.body[s.arrClose:]
	n, kept := len(prefix)+len(suffix), 0
	for k := range count {
		i := at(k)
		if !q.keeps(&s.symbols[i]) {
			continue
		}
		n += len(s.symbols[i].Raw)
		if sets != nil && sets[i].ok() {
			n -= sets[i].end - sets[i].start - len("[]")
		}
		kept++
	}
	n += max(kept-1, 0) // commas

	b := make([]byte, 0, n)
	b = append(b, prefix...)
	kept = 0
	for k := range count {
		i := at(k)
		if !q.keeps(&s.symbols[i]) {
			continue
		}
		if kept++; kept > 1 {
			b = append(b, ',')
		}
		raw := s.symbols[i].Raw
		if sets != nil && sets[i].ok() {
			b = append(b, raw[:sets[i].start]...)
			b = append(b, "[]"...)
			b = append(b, raw[sets[i].end:]...)
			continue
		}
		b = append(b, raw...)
	}
	return append(b, suffix...)
}

// keeps reports whether sym passes q's status and permissions filters.
func (q *Query) keeps(sym *Symbol) bool {
	if q.SymbolStatus != "" && sym.Status != q.SymbolStatus {
		return false
	}
	if len(q.Permissions) == 0 {
		return true
	}
	for _, p := range q.Permissions {
		if slices.Contains(sym.Perms, p) {
			return true
		}
	}
	return false
}

// span is a value's position within a symbol's Raw object; start < 0 when
// the object has no such key.
type span struct{ start, end int }

func (sp span) ok() bool { return sp.start >= 0 }

// permissionSets finds, once per snapshot, where each symbol object's
// top-level "permissionSets" value sits.
func (s *Snapshot) permissionSets() []span {
	s.setsOnce.Do(func() {
		s.sets = make([]span, len(s.symbols))
		for i := range s.symbols {
			s.sets[i] = memberValue(s.symbols[i].Raw, "permissionSets")
		}
	})
	return s.sets
}

// memberValue returns the span of the value of obj's top-level member key.
// obj is a JSON object that Parse has already validated.
func memberValue(obj []byte, key string) span {
	none := span{-1, -1}
	i := skipSpace(obj, 1) // after '{'
	for i < len(obj) && obj[i] == '"' {
		kEnd := skipString(obj, i)
		if kEnd < 0 {
			return none
		}
		match := memberName(obj[i:kEnd]) == key
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return none
		}
		start := skipSpace(obj, i+1)
		end := skipValue(obj, start)
		if end < 0 {
			return none
		}
		if match {
			return span{start, end}
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ',' {
			return none
		}
		i = skipSpace(obj, i+1)
	}
	return none
}

// memberName decodes a quoted member name.
func memberName(quoted []byte) string {
	if !slices.Contains(quoted, '\\') {
		return string(quoted[1 : len(quoted)-1])
	}
	var name string
	if json.Unmarshal(quoted, &name) != nil {
		return ""
	}
	return name
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset just after the string starting at b[i], or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the offset just after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}
