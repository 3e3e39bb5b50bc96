package changes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// reference computes the changes Diff should find between the bodies from
// and to, by another algorithm: encoding/json decodes everything into maps
// (so a repeated name keeps its last value, and order is lost by
// construction), json.Compact compacts, and every name of both sides is
// visited. It fills Kind, Symbol, Filter, Field, Old, New, Added, Removed
// and Status, in no particular order.
func reference(tb testing.TB, from, to []byte) []Change {
	tb.Helper()
	var tops [2]map[string]json.RawMessage
	for k, body := range [2][]byte{from, to} {
		if err := json.Unmarshal(body, &tops[k]); err != nil {
			tb.Fatalf("reference: %v", err)
		}
	}
	var out []Change
	o, okO := tops[0]["rateLimits"]
	n, okN := tops[1]["rateLimits"]
	if !refEqual(tb, o, okO, n, okN) {
		out = append(out, Change{Kind: RateLimits, Old: refCompact(tb, o, okO), New: refCompact(tb, n, okN)})
	}
	syms := [2]map[string]map[string]json.RawMessage{}
	for k := range tops {
		var list []map[string]json.RawMessage
		if err := json.Unmarshal(tops[k]["symbols"], &list); err != nil {
			tb.Fatalf("reference: symbols: %v", err)
		}
		syms[k] = map[string]map[string]json.RawMessage{}
		for _, m := range list {
			syms[k][refString(tb, m["symbol"])] = m
		}
	}
	for name, om := range syms[0] {
		if _, ok := syms[1][name]; !ok {
			out = append(out, Change{Kind: Delisted, Symbol: name, Status: refStatus(tb, om)})
		}
	}
	for name, nm := range syms[1] {
		om, ok := syms[0][name]
		if !ok {
			out = append(out, Change{Kind: Listed, Symbol: name, Status: refStatus(tb, nm)})
			continue
		}
		for _, field := range union(om, nm) {
			o, okO := om[field]
			n, okN := nm[field]
			if refEqual(tb, o, okO, n, okN) {
				continue
			}
			switch field {
			case "status", "contractStatus":
				out = append(out, Change{Kind: Status, Symbol: name, Field: field, Old: refCompact(tb, o, okO), New: refCompact(tb, n, okN)})
			case "permissions":
				out = append(out, refPermissions(tb, name, o, okO, n, okN)...)
			case "filters":
				out = append(out, refFilters(tb, name, o, okO, n, okN)...)
			default:
				out = append(out, Change{Kind: Field, Symbol: name, Field: field, Old: refCompact(tb, o, okO), New: refCompact(tb, n, okN)})
			}
		}
	}
	return out
}

func refPermissions(tb testing.TB, name string, o json.RawMessage, okO bool, n json.RawMessage, okN bool) []Change {
	set := func(v json.RawMessage, ok bool) (map[string]bool, []string, bool) {
		if !ok {
			return map[string]bool{}, nil, true
		}
		if v[0] != '[' {
			return nil, nil, false
		}
		var list []any
		if err := json.Unmarshal(v, &list); err != nil {
			tb.Fatal(err)
		}
		m := map[string]bool{}
		var order []string
		for _, x := range list {
			s, isString := x.(string)
			if !isString {
				return nil, nil, false
			}
			m[s] = true
			order = append(order, s)
		}
		return m, order, true
	}
	so, lo, ok1 := set(o, okO)
	sn, ln, ok2 := set(n, okN)
	if !ok1 || !ok2 {
		return []Change{{Kind: Field, Symbol: name, Field: "permissions", Old: refCompact(tb, o, okO), New: refCompact(tb, n, okN)}}
	}
	var added, removed []string
	seen := map[string]bool{}
	for _, s := range ln {
		if !so[s] && !seen[s] {
			seen[s] = true
			added = append(added, s)
		}
	}
	for _, s := range lo {
		if !sn[s] && !seen[s] {
			seen[s] = true
			removed = append(removed, s)
		}
	}
	if added == nil && removed == nil {
		return nil
	}
	return []Change{{Kind: Permissions, Symbol: name, Added: added, Removed: removed, Old: refCompact(tb, o, okO), New: refCompact(tb, n, okN)}}
}

func refFilters(tb testing.TB, name string, o json.RawMessage, okO bool, n json.RawMessage, okN bool) []Change {
	// byType maps (filterType, occurrence) to the filter's members and bytes.
	type key struct {
		typ string
		nth int
	}
	type filter struct {
		raw     json.RawMessage
		members map[string]json.RawMessage
	}
	byType := func(v json.RawMessage, ok bool) (map[key]filter, bool) {
		m := map[key]filter{}
		if !ok {
			return m, true
		}
		var list []json.RawMessage
		if v[0] != '[' {
			return nil, false
		}
		if err := json.Unmarshal(v, &list); err != nil {
			tb.Fatal(err)
		}
		count := map[string]int{}
		for _, raw := range list {
			if raw[0] != '{' { // a filter of no type, compared whole
				m[key{"", count[""]}] = filter{raw, nil}
				count[""]++
				continue
			}
			var f map[string]json.RawMessage
			if err := json.Unmarshal(raw, &f); err != nil {
				tb.Fatal(err)
			}
			typ := ""
			if t, ok := f["filterType"]; ok && t[0] == '"' {
				typ = refString(tb, t)
			}
			m[key{typ, count[typ]}] = filter{raw, f}
			count[typ]++
		}
		return m, true
	}
	fo, ok1 := byType(o, okO)
	fn, ok2 := byType(n, okN)
	if !ok1 || !ok2 {
		return []Change{{Kind: Field, Symbol: name, Field: "filters", Old: refCompact(tb, o, okO), New: refCompact(tb, n, okN)}}
	}
	var out []Change
	for k, a := range fo {
		b, ok := fn[k]
		if !ok {
			out = append(out, Change{Kind: Filter, Symbol: name, Filter: k.typ, Old: refCompact(tb, a.raw, true)})
			continue
		}
		if a.members == nil || b.members == nil {
			if !refEqual(tb, a.raw, true, b.raw, true) {
				out = append(out, Change{Kind: Filter, Symbol: name, Filter: k.typ, Old: refCompact(tb, a.raw, true), New: refCompact(tb, b.raw, true)})
			}
			continue
		}
		for _, field := range union(a.members, b.members) {
			x, okX := a.members[field]
			y, okY := b.members[field]
			if !refEqual(tb, x, okX, y, okY) {
				out = append(out, Change{Kind: Filter, Symbol: name, Filter: k.typ, Field: field, Old: refCompact(tb, x, okX), New: refCompact(tb, y, okY)})
			}
		}
	}
	for k, b := range fn {
		if _, ok := fo[k]; !ok {
			out = append(out, Change{Kind: Filter, Symbol: name, Filter: k.typ, New: refCompact(tb, b.raw, true)})
		}
	}
	return out
}

// union returns the names of a and b, sorted.
func union(a, b map[string]json.RawMessage) []string {
	var names []string
	for k := range a {
		names = append(names, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

func refCompact(tb testing.TB, v json.RawMessage, ok bool) json.RawMessage {
	if !ok {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		tb.Fatalf("reference: compact %q: %v", v, err)
	}
	return buf.Bytes()
}

func refEqual(tb testing.TB, a json.RawMessage, okA bool, b json.RawMessage, okB bool) bool {
	if okA != okB {
		return false
	}
	return !okA || bytes.Equal(refCompact(tb, a, true), refCompact(tb, b, true))
}

// refString decodes v as a string: "" when it is missing, null, or not a
// string, as exchangeinfo.Parse reads a symbol's name and status.
func refString(tb testing.TB, v json.RawMessage) string {
	var s string
	if len(v) == 0 || v[0] != '"' {
		return ""
	}
	if err := json.Unmarshal(v, &s); err != nil {
		tb.Fatal(err)
	}
	return s
}

func refStatus(tb testing.TB, m map[string]json.RawMessage) string {
	if s := refString(tb, m["status"]); s != "" {
		return s
	}
	return refString(tb, m["contractStatus"])
}

// show writes a change's compared fields on one line.
func show(c Change) string {
	return fmt.Sprintf("%s %s filter=%q field=%q old=%s new=%s added=%q removed=%q status=%q",
		c.Kind, c.Symbol, c.Filter, c.Field, c.Old, c.New, c.Added, c.Removed, c.Status)
}

// checkReference fails unless got, Diff's answer for the bodies from and
// to, holds the changes of reference, no more and no fewer, in Diff's order.
func checkReference(t *testing.T, got []Change, from, to []byte) {
	t.Helper()
	checkOrder(t, got)
	want := reference(t, from, to)
	g, w := make([]string, len(got)), make([]string, len(want))
	for i, c := range got {
		g[i] = show(c)
	}
	for i, c := range want {
		w[i] = show(c)
	}
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return
	}
	var missing, extra []string
	for _, s := range w {
		if !slices.Contains(g, s) {
			missing = append(missing, s)
		}
	}
	for _, s := range g {
		if !slices.Contains(w, s) {
			extra = append(extra, s)
		}
	}
	t.Fatalf("Diff has %d changes, reference %d\nmissing (%d):\n  %s\nextra (%d):\n  %s", len(g), len(w),
		len(missing), strings.Join(head(missing, 20), "\n  "), len(extra), strings.Join(head(extra, 20), "\n  "))
}

func head(list []string, n int) []string { return list[:min(n, len(list))] }

// checkOrder fails unless cs are in the documented order.
func checkOrder(t *testing.T, cs []Change) {
	t.Helper()
	for i := 1; i < len(cs); i++ {
		a, b := cs[i-1], cs[i]
		ka := []string{fmt.Sprint(a.Kind != RateLimits), a.Symbol, fmt.Sprint(a.Kind.rank()), a.Filter, a.Field}
		kb := []string{fmt.Sprint(b.Kind != RateLimits), b.Symbol, fmt.Sprint(b.Kind.rank()), b.Filter, b.Field}
		if slices.Compare(ka, kb) > 0 {
			t.Fatalf("changes out of order at %d:\n  %s\n  %s", i, show(a), show(b))
		}
	}
}
