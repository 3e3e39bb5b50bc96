package changes

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strings"

	"github.com/symcache/symcache/exchangeinfo"
)

// Diff returns the changes from the snapshot from to the snapshot to, two
// snapshots of one market (the changes carry to's), in the order the package
// documentation gives; none when they are equal. It reads both snapshots'
// bytes and modifies nothing: the changes hold copies.
//
// Diff runs once per new snapshot, off the request path, and costs little
// next to Parse: a symbol whose object is the same bytes in both snapshots
// is not looked into, and in one that differs, only the members around the
// bytes that differ are read, in most cases (see near.go).
func Diff(from, to *exchangeinfo.Snapshot) []Change {
	if from == to || bytes.Equal(from.Body(), to.Body()) {
		return nil
	}
	var d differ
	if o, n := topLevel(from, "rateLimits"), topLevel(to, "rateLimits"); !equal(o, n) {
		d.add(RateLimits, "", "", "", o, n)
	}
	olds, news := from.Symbols(), to.Symbols()
	matched := 0
	for i, s := range news {
		var o exchangeinfo.Symbol
		ok := i < len(olds) && olds[i].Name == s.Name // most symbols keep their place
		if ok {
			o = olds[i]
		} else if o, ok = from.Lookup(s.Name); !ok {
			d.addStatus(Listed, s.Name, s.Status)
			continue
		}
		matched++
		if bytes.Equal(o.Raw, s.Raw) {
			continue
		}
		if d.recs == nil { // room for one change for each symbol left
			d.recs = make([]record, 0, len(news)-i+max(len(olds)-len(news), 0)+8)
		}
		if !d.near(s.Name, o.Raw, s.Raw) {
			d.symbol(s.Name, o.Raw, s.Raw)
		}
	}
	if matched < len(olds) { // names are unique, so some are gone
		for _, o := range olds {
			if _, ok := to.Lookup(o.Name); !ok {
				d.addStatus(Delisted, o.Name, o.Status)
			}
		}
	}
	if len(d.recs) == 0 {
		return nil
	}
	return d.changes(
		Ref{FetchedAt: from.FetchedAt(), ETag: from.ETag(), ServerTime: from.ServerTime().UnixMilli()},
		Ref{FetchedAt: to.FetchedAt(), ETag: to.ETag(), ServerTime: to.ServerTime().UnixMilli()},
		to.Market())
}

// changes returns the changes found, in the package's order (changes that
// tie, of a filter type a symbol repeats, in the order they were found),
// with their market and snapshots. It sorts keys that start with the first
// 8 bytes of the symbol's name, and makes each Change once.
func (d *differ) changes(from, to Ref, m exchangeinfo.Market) []Change {
	type key struct {
		prefix uint64 // rate limits first, then the name's first 8 bytes
		i      int32
	}
	keys := make([]key, len(d.recs))
	for i := range keys {
		keys[i] = key{namePrefix(&d.recs[i]), int32(i)}
	}
	slices.SortFunc(keys, func(x, y key) int {
		if x.prefix != y.prefix {
			return cmp.Compare(x.prefix, y.prefix)
		}
		a, b := &d.recs[x.i], &d.recs[y.i]
		if c := strings.Compare(a.symbol, b.symbol); c != 0 {
			return c
		}
		if c := cmp.Compare(a.kind.rank(), b.kind.rank()); c != 0 {
			return c
		}
		if c := strings.Compare(a.filter, b.filter); c != 0 {
			return c
		}
		if c := strings.Compare(a.field, b.field); c != 0 {
			return c
		}
		return cmp.Compare(x.i, y.i)
	})
	d.arena = bytes.Clone(d.arena) // what the answer keeps: no more
	out := make([]Change, len(keys))
	for k, key := range keys {
		r := &d.recs[key.i]
		var x extra
		if r.extra > 0 {
			x = d.extras[r.extra-1]
		}
		out[k] = Change{
			Market: m, Kind: r.kind, Symbol: r.symbol, Filter: r.filter, Field: r.field,
			Old: d.value(r.old), New: d.value(r.new),
			Added: x.added, Removed: x.removed, Status: x.status,
			From: from, To: to,
		}
	}
	return out
}

// namePrefix orders r by kind (rate limits first) and then the first 8
// bytes of its symbol's name.
func namePrefix(r *record) uint64 {
	if r.kind == RateLimits {
		return 0
	}
	var b [8]byte
	copy(b[:], r.symbol)
	return binary.BigEndian.Uint64(b[:]) | 1 // names are never empty: above 0
}

// record is a change as the comparisons find it: small, so that thousands
// of them cost little before Diff makes its answer. Its values are offsets
// into differ.arena; what few kinds carry more is in differ.extras.
type record struct {
	kind                  Kind
	symbol, filter, field string
	old, new              loc
	extra                 int // 1 + its index in differ.extras; 0 is none
}

// loc is where a value is in differ.arena; start < 0 is no value.
type loc struct{ start, end int32 }

// extra is what listed, delisted and permissions changes carry besides.
type extra struct {
	status         string
	added, removed []string
}

// differ holds one Diff's changes and the scratch slices it reuses from one
// symbol to the next.
type differ struct {
	recs   []record
	extras []extra
	arena  []byte            // every Old and New, compacted
	names  map[string]string // one copy of each name and filter type

	// symbol, whole
	ma, mb []member // the two symbol objects
	ea, eb [][]byte // their filters
	fa, fb []member // two filters

	// near: the members before, in and after the window, for each level
	nb, swa, swb, nr []member // the symbol
	fwa, fwb         []member // filters
	fea, feb         [][]byte
	ob, owa, owb, or []member // one filter
}

// add records a change of kind whose Old and New are the values o and n
// (nil for none), compacted.
func (d *differ) add(kind Kind, symbol, filter, field string, o, n []byte) {
	d.recs = append(d.recs, record{kind: kind, symbol: symbol, filter: filter, field: field, old: d.raw(o), new: d.raw(n)})
}

// addStatus records a listed or delisted symbol.
func (d *differ) addStatus(kind Kind, symbol, status string) {
	d.extras = append(d.extras, extra{status: status})
	d.recs = append(d.recs, record{kind: kind, symbol: symbol, old: loc{-1, -1}, new: loc{-1, -1}, extra: len(d.extras)})
}

// addPermissions records a change of the permissions set from o to n.
func (d *differ) addPermissions(symbol string, added, removed []string, o, n []byte) {
	d.extras = append(d.extras, extra{added: added, removed: removed})
	d.recs = append(d.recs, record{kind: Permissions, symbol: symbol, old: d.raw(o), new: d.raw(n), extra: len(d.extras)})
}

// raw appends the value v to the arena without the whitespace between its
// tokens (see appendCompact), and returns where; nil is no value.
func (d *differ) raw(v []byte) loc {
	if v == nil {
		return loc{-1, -1}
	}
	start := len(d.arena)
	d.arena = appendCompact(d.arena, v)
	return loc{int32(start), int32(len(d.arena))}
}

// value returns the value at l in the arena, capped at its length so that
// appending to it copies it; nil for no value.
func (d *differ) value(l loc) json.RawMessage {
	if l.start < 0 {
		return nil
	}
	return d.arena[l.start:l.end:l.end]
}

// intern returns b as a string, one copy per distinct value.
func (d *differ) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	if d.names == nil {
		d.names = make(map[string]string)
	}
	s := string(b)
	d.names[s] = s
	return s
}

// key returns m's decoded name, interned.
func (d *differ) key(m member) string {
	if m.plain {
		return d.intern(m.name)
	}
	return d.intern([]byte(unquote(m.name)))
}

// symbol compares two objects of the symbol name whose bytes differ, whole.
func (d *differ) symbol(name string, a, b []byte) {
	d.ma = appendMembers(d.ma[:0], a)
	d.mb = appendMembers(d.mb[:0], b)
	d.eachDiff(d.ma, d.mb, func(field string, o, n []byte) { d.member(name, field, o, n) })
}

// member reports the change of the symbol's member field from o to n
// (either may be missing).
func (d *differ) member(name, field string, o, n []byte) {
	switch field {
	case "status", "contractStatus":
		d.add(Status, name, "", field, o, n)
	case "permissions":
		d.permissions(name, o, n)
	case "filters":
		d.filters(name, o, n)
	default:
		d.add(Field, name, "", field, o, n)
	}
}

// eachDiff calls f with the decoded name and the two values (nil where
// missing) of every member whose last value in a differs from its last
// value in b, first in a's order, then those b alone has in b's order.
func (d *differ) eachDiff(a, b []member, f func(name string, o, n []byte)) {
	same := len(a) == len(b)
	for k := 0; same && k < len(a); k++ {
		same = a[k].sameName(b[k])
	}
	var la map[string]int // by name, the index of its last member in a
	last := func(ms []member) map[string]int {
		m := make(map[string]int, len(ms))
		for k, x := range ms {
			m[x.key()] = k
		}
		return m
	}
	if same { // the usual case: the same names in the same order
		for k := range a {
			if equal(a[k].val, b[k].val) {
				continue
			}
			if len(a) > wide && la == nil {
				la = last(a)
			}
			if la != nil && la[a[k].key()] != k || la == nil && repeated(a, k) {
				continue // a later member of that name wins
			}
			f(d.key(a[k]), a[k].val, b[k].val)
		}
		return
	}
	la, lb := last(a), last(b)
	for k, x := range a {
		name := x.key()
		if la[name] != k {
			continue
		}
		var n []byte
		if j, ok := lb[name]; ok {
			n = b[j].val
		}
		if !equal(x.val, n) {
			f(name, x.val, n)
		}
	}
	for j, x := range b {
		name := x.key()
		if _, ok := la[name]; !ok && lb[name] == j {
			f(name, nil, x.val)
		}
	}
}

// repeated reports whether a member after ms[k] has its name.
func repeated(ms []member, k int) bool {
	for _, x := range ms[k+1:] {
		if x.sameName(ms[k]) {
			return true
		}
	}
	return false
}

// permissions reports a change of the permissions values o and n (either
// may be missing). When both are arrays of strings, or missing, it compares
// them as sets; otherwise, as a field.
func (d *differ) permissions(name string, o, n []byte) {
	po, okO := stringSet(o)
	pn, okN := stringSet(n)
	if !okO || !okN {
		d.add(Field, name, "", "permissions", o, n)
		return
	}
	added, removed := minus(pn, po), minus(po, pn)
	if len(added) == 0 && len(removed) == 0 {
		return // reordered or repeated, or absent against empty
	}
	d.addPermissions(name, added, removed, o, n)
}

// stringSet returns the strings of the array v, in order, or none when v is
// missing; ok is false when v is anything but an array of strings.
func stringSet(v []byte) (list []string, ok bool) {
	if v == nil {
		return nil, true
	}
	if v[0] != '[' {
		return nil, false
	}
	for _, e := range appendElems(nil, v) {
		s, ok := text(e)
		if !ok {
			return nil, false
		}
		list = append(list, string(s))
	}
	return list, true
}

// minus returns the strings of a that b lacks, in a's order, once each.
func minus(a, b []string) []string {
	seen := make(map[string]bool, len(b))
	for _, s := range b {
		seen[s] = true
	}
	var out []string
	for _, s := range a {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// filters reports the changes between the filters values o and n (either
// may be missing: no filters). When either is not an array, it compares
// them as a field.
func (d *differ) filters(name string, o, n []byte) {
	if o != nil && o[0] != '[' || n != nil && n[0] != '[' {
		d.add(Field, name, "", "filters", o, n)
		return
	}
	d.ea, d.eb = d.ea[:0], d.eb[:0]
	if o != nil {
		d.ea = appendElems(d.ea, o)
	}
	if n != nil {
		d.eb = appendElems(d.eb, n)
	}
	ea, eb := d.ea, d.eb
	to, tn := d.typesOf(ea), d.typesOf(eb)
	pairFilters(to, tn, func(k, j int) {
		switch {
		case j < 0:
			d.add(Filter, name, to[k].typ, "", ea[k], nil)
		case k < 0:
			d.add(Filter, name, tn[j].typ, "", nil, eb[j])
		case !equal(ea[k], eb[j]):
			d.filter(name, to[k].typ, ea[k], eb[j])
		}
	})
}

// typed is a filter's type and how many filters of that type come before
// it: filters are matched by it.
type typed struct {
	typ string
	nth int
}

// typesOf returns the typed of each filter of fs.
func (d *differ) typesOf(fs [][]byte) []typed {
	if len(fs) == 0 {
		return nil
	}
	ts := make([]typed, len(fs))
	count := make(map[string]int)
	for k, f := range fs {
		t := d.intern(filterType(f))
		ts[k] = typed{t, count[t]}
		count[t]++
	}
	return ts
}

// pairFilters calls f(k, j) for the filters ts[k] and us[j] of the same
// typed, f(k, -1) for those of ts that us lacks, and then f(-1, j) for
// those of us that ts lacks, each in order.
func pairFilters(ts, us []typed, f func(k, j int)) {
	in := make(map[typed]int, len(us))
	for j, u := range us {
		in[u] = j
	}
	paired := make(map[typed]bool, len(ts))
	for k, t := range ts {
		j, ok := in[t]
		if !ok {
			j = -1
		}
		paired[t] = ok
		f(k, j)
	}
	for j, u := range us {
		if !paired[u] {
			f(-1, j)
		}
	}
}

// filterType returns the string value of the last filterType member of the
// filter f, or nil when it has none, it is not a string, or f is not an
// object.
func filterType(f []byte) []byte {
	if f[0] != '{' {
		return nil
	}
	var buf [8]member
	return lastText(appendMembers(buf[:0], f), "filterType")
}

// filter reports the changes between two filters of type typ whose bytes
// differ: one per field when both are objects, else one for the whole.
func (d *differ) filter(name, typ string, a, b []byte) {
	if a[0] != '{' || b[0] != '{' {
		d.add(Filter, name, typ, "", a, b)
		return
	}
	d.fa = appendMembers(d.fa[:0], a)
	d.fb = appendMembers(d.fb[:0], b)
	d.fields(name, typ, d.fa, d.fb)
}

// fields reports the fields that differ between the members of two filters
// of type typ.
func (d *differ) fields(name, typ string, a, b []member) {
	d.eachDiff(a, b, func(field string, o, n []byte) {
		d.add(Filter, name, typ, field, o, n)
	})
}

// lastText returns the string value of the last member named name, or nil
// when there is none or it is not a string.
func lastText(ms []member, name string) []byte {
	for k := len(ms) - 1; k >= 0; k-- {
		if ms[k].is(name) {
			s, _ := text(ms[k].val)
			return s
		}
	}
	return nil
}

// topLevel returns the value of the snapshot's top-level member name (the
// last one, if repeated), or nil. It steps over the symbols array by the
// lengths of the symbols Parse indexed, without reading them again.
func topLevel(s *exchangeinfo.Snapshot, name string) []byte {
	b := s.Body()
	i := ws(b, ws(b, 0)+1)
	if b[i] == '}' {
		return nil
	}
	var val []byte
	for {
		kEnd, isPlain := strEnd(b, i)
		m := member{name: b[i+1 : kEnd-1], plain: isPlain}
		i = ws(b, ws(b, kEnd)+1)
		var end int
		if b[i] == '[' && m.is("symbols") {
			end = skipSymbols(b, i, s.Symbols())
		} else {
			end = valueEnd(b, i)
		}
		if m.is(name) {
			val = b[i:end]
		}
		i = ws(b, end)
		if b[i] == '}' {
			return val
		}
		i = ws(b, i+1)
	}
}

// skipSymbols returns the offset after the symbols array starting at
// b[i] == '[', whose objects are syms' Raw, sub-slices of b. When b is
// compact, the last one is where their lengths and commas say: then it
// does not read them (that would bring each into the cache, for nothing).
// Otherwise it steps from one to the next, comparing each with b, which
// costs nothing either when they are the same memory.
func skipSymbols(b []byte, i int, syms []exchangeinfo.Symbol) int {
	j := ws(b, i+1)
	if len(syms) == 0 || j >= len(b) {
		return valueEnd(b, i)
	}
	last := syms[len(syms)-1].Raw
	at := j + len(syms) - 1
	for _, s := range syms {
		at += len(s.Raw)
	}
	at -= len(last)
	if at+len(last) < len(b) && &b[j] == &syms[0].Raw[0] && &b[at] == &last[0] {
		if k := ws(b, at+len(last)); b[k] == ']' {
			return k + 1
		}
	}
	for k, s := range syms {
		if j+len(s.Raw) > len(b) || !bytes.Equal(b[j:j+len(s.Raw)], s.Raw) {
			return valueEnd(b, i)
		}
		j = ws(b, j+len(s.Raw))
		if k < len(syms)-1 {
			if b[j] != ',' {
				return valueEnd(b, i)
			}
			j = ws(b, j+1)
		}
	}
	if b[j] != ']' {
		return valueEnd(b, i)
	}
	return j + 1
}
