package changes

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// This file is the fast way to compare two objects of a symbol, which gives
// the same changes as differ.symbol while reading far fewer bytes: most
// changes touch one place of an object of 1.6 kB (a tick size, a status),
// and the bytes before it and after it are the same on both sides.
//
// Let a = X·A·Y and b = X·B·Y, X and Y as long as can be. The members before
// the first byte that differs are read in a alone (in b they are the same
// bytes at the same places). From there, the members of a and of b are read
// in step until both sides are at a member boundary followed by the same
// bytes to the end; what lies beyond is not read at all. When the
// difference starts inside filters, or inside one filter, the walk goes
// down into it, so that a changed tick size costs the members up to
// filters, and the first filter's.
//
// Not reading the rest is exact as long as no name of the window (the
// members read on both sides) appears again in the object: then its last
// value is the window's. That is checked in the members read before the
// window, and after it in the bytes not read: by a search for the quoted
// name (conclusive when the rest has no escapes), or by reading the rest of
// the object. When it cannot be sure, near reports nothing and says so,
// and the symbol is compared whole.

// wide is the most members or filters a window may hold, both sides
// together: a larger difference is compared whole, where it costs linear
// time, while the checks here cost the window's size times the object's.
const wide = 32

// pair is two objects of a symbol whose bytes differ.
type pair struct {
	a, b []byte
	p    int // a[:p] == b[:p], and a[p] != b[p] when both have it
}

// rest reports whether what follows offset i in a and offset j in b is the
// same bytes.
func (w *pair) rest(i, j int) bool {
	return len(w.a)-i == len(w.b)-j && bytes.Equal(w.a[i:], w.b[j:])
}

// reach is how far the window of a container goes.
type reach int

const (
	shared reach = iota // the container lies before the first difference
	within              // the window ends inside the container; the rest is the same on both sides, from at in a
	closed              // the window reaches the container's end, ea in a and eb in b
	unsure              // a name repeats around the window: compare the whole symbol
)

type walk struct {
	reach  reach
	at     int // within: where the same rest starts in a
	ea, eb int // shared, closed: the offsets just after the container
}

// near compares the objects a and b of symbol name (their bytes differ) by
// reading around the bytes that differ, and reports false, having reported
// nothing, when it cannot be sure of the answer.
func (d *differ) near(name string, a, b []byte) bool {
	w := pair{a: a, b: b, p: prefixLen(a, b)}
	mark := len(d.recs)
	if !d.nearSymbol(name, &w) {
		d.recs = d.recs[:mark]
		return false
	}
	return true
}

func (d *differ) nearSymbol(name string, w *pair) bool {
	a, b := w.a, w.b
	var down walk // filters, when the window starts inside it
	downed, filtersBefore := false, false
	last := 1                                   // where the members before the window end (just after the '{' if none), before p
	if key, v, ok := firstFilters(a, w.p); ok { // go down at once
		down, downed, last = d.nearFilters(name, w, v), true, endBefore(a, key)
		if down.reach == shared {
			downed, filtersBefore, last = false, true, down.ea
		}
	}
	for i := next(a, last); !downed && a[i] != '}'; i = next(a, last) {
		m, v := keyAt(a, i)
		isFilters := len(m.name) == len("filters") && string(m.name) == "filters" || !m.plain && m.is("filters")
		if isFilters && a[v] == '[' && v < w.p {
			down, downed = d.nearFilters(name, w, v), true
			if down.reach != shared {
				break
			}
			downed, last, filtersBefore = false, down.ea, true
			continue
		}
		end := valueEnd(a, v)
		if end >= w.p {
			break
		}
		last, filtersBefore = end, filtersBefore || isFilters
	}
	ia, ib := next(a, last), next(b, last)
	switch {
	case downed && down.reach == unsure:
		return false
	case downed && down.reach == within: // only filters differs
		return !filtersBefore && absent("filters", a[down.at:])
	case downed: // closed: go on after filters
		ia, ib = next(a, down.ea), next(b, down.eb)
	}
	ia, _, wa, wb, same := w.step(ia, ib, '}', d.swa[:0], d.swb[:0])
	d.swa, d.swb = wa, wb
	if len(wa)+len(wb) > wide {
		return false
	}
	// The window's names must appear nowhere else in the object: not
	// before it, not twice in it, not after it. The members around it are
	// read only when a search for the name cannot tell.
	var before, after []member
	readBefore, readAfter := false, false
	clash := func(name string) bool {
		if !absent(name, a[1:last]) {
			if !readBefore {
				before, readBefore = appendMembersUntil(d.nb[:0], a, last), true
				d.nb = before
			}
			if has(before, name) {
				return true
			}
		}
		if same && !absent(name, a[ia:]) {
			if !readAfter {
				after, readAfter = appendMembersFrom(d.nr[:0], a, ia), true
				d.nr = after
			}
			return has(after, name)
		}
		return false
	}
	if downed && (has(wa, "filters") || has(wb, "filters") || clash("filters")) {
		return false
	}
	for _, ms := range [2][]member{wa, wb} {
		for k, m := range ms {
			if repeated(ms, k) || clash(m.key()) {
				return false
			}
		}
	}
	d.eachDiff(wa, wb, func(field string, o, n []byte) { d.member(name, field, o, n) })
	return true
}

// firstFilters finds, without reading the members before it, the symbol's
// first filters member when its array starts before p: the offsets of its
// name and of its '['. It can tell only when a[:p] has no escapes: then
// every '"' starts or ends a string, so "filters" followed by a colon is a
// member's name, and the member is the symbol's own when the brackets
// before it that are outside strings (after an even number of quotes)
// balance. ok is false when it cannot tell, or finds none.
func firstFilters(a []byte, p int) (key, v int, ok bool) {
	head := a[:p]
	if bytes.IndexByte(head, '\\') >= 0 {
		return 0, 0, false
	}
	for from := 1; ; {
		k := bytes.Index(head[from:], []byte(`filters"`)) // not from '"': too common to search for
		if k < 0 {
			return 0, 0, false
		}
		k += from - 1 // the '"' before, if any
		if a[k] != '"' {
			from = k + 2
			continue
		}
		if c := ws(a, k+len(`"filters"`)); c < p && a[c] == ':' {
			v = ws(a, c+1)
			return k, v, v < p && a[v] == '[' && balanced(a[1:k])
		}
		from = k + 2
	}
}

// balanced reports whether the brackets of b, which has no escapes, that are
// outside strings open as many as they close. With more than a few brackets
// it does not say (false): each costs a count of the quotes before it.
func balanced(b []byte) bool {
	depth, seen := 0, 0
	for _, c := range [...]byte{'{', '[', '}', ']'} {
		for from := 0; ; {
			j := bytes.IndexByte(b[from:], c)
			if j < 0 {
				break
			}
			if seen++; seen > wide {
				return false
			}
			j += from
			if bytes.Count(b[:j], []byte{'"'})%2 == 0 {
				if c == '{' || c == '[' {
					depth++
				} else {
					depth--
				}
			}
			from = j + 1
		}
	}
	return depth == 0
}

// endBefore returns where the member before the one whose name starts at
// a[key] ends (its ','), or 1 when it is the first.
func endBefore(a []byte, key int) int {
	j := key - 1
	for a[j] == ' ' || a[j] == '\t' || a[j] == '\n' || a[j] == '\r' {
		j--
	}
	if a[j] == '{' {
		return 1
	}
	return j
}

// nearFilters walks the filters arrays starting at offset v (a[v] == '[',
// v < p) of both sides.
func (d *differ) nearFilters(name string, w *pair, v int) walk {
	a, b := w.a, w.b
	last := v + 1 // where the last filter before the window ends (or the '['), before p
	for i := next(a, last); a[i] != ']'; i = next(a, last) {
		end := valueEnd(a, i)
		if end >= w.p {
			break
		}
		last = end
	}
	ia, ib := next(a, last), next(b, last)
	if ia < w.p && a[ia] == ']' {
		return walk{reach: shared, ea: ia + 1}
	}
	if ia < w.p && a[ia] == '{' { // the window starts inside this filter
		down := d.nearFilter(name, w, ia)
		if down.reach != closed {
			return down
		}
		ia, ib = next(a, down.ea), next(b, down.eb)
	}
	ia, ib, wa, wb, same := w.step(ia, ib, ']', d.fwa[:0], d.fwb[:0])
	d.fwa, d.fwb = wa, wb
	if len(wa)+len(wb) > wide {
		return walk{reach: unsure}
	}
	// Filters after the window are matched as before it only when the
	// window has as many filters of each type on both sides.
	ea, eb := d.fea[:0], d.feb[:0]
	for _, m := range wa {
		ea = append(ea, m.val)
	}
	for _, m := range wb {
		eb = append(eb, m.val)
	}
	d.fea, d.feb = ea, eb
	ta, tb := d.typesOf(ea), d.typesOf(eb)
	if len(ta) != len(tb) {
		return walk{reach: unsure}
	}
	for _, t := range ta {
		if !contains(tb, t) {
			return walk{reach: unsure}
		}
	}
	pairFilters(ta, tb, func(k, j int) {
		if !equal(ea[k], eb[j]) {
			d.filter(name, ta[k].typ, ea[k], eb[j])
		}
	})
	if same {
		return walk{reach: within, at: ia}
	}
	return walk{reach: closed, ea: ia + 1, eb: ib + 1}
}

func contains(ts []typed, t typed) bool {
	for _, u := range ts {
		if u == t {
			return true
		}
	}
	return false
}

// nearFilter walks the filter objects starting at offset v (a[v] == '{',
// v < p) of both sides, and reports the changes of their fields.
func (d *differ) nearFilter(name string, w *pair, v int) walk {
	a, b := w.a, w.b
	before := d.ob[:0]
	last := v + 1 // where the last member before the window ends (or the '{'), before p
	for i := next(a, last); a[i] != '}'; i = next(a, last) {
		m, end := memberAt(a, i)
		if end >= w.p {
			break
		}
		before, last = append(before, m), end
	}
	d.ob = before
	ia, ib, wa, wb, same := w.step(next(a, last), next(b, last), '}', d.owa[:0], d.owb[:0])
	d.owa, d.owb = wa, wb
	if len(wa)+len(wb) > wide {
		return walk{reach: unsure}
	}
	var after []member // read whole: a filter's rest is short
	if same {
		after = appendMembersFrom(d.or[:0], a, ia)
		d.or = after
	}
	for _, ms := range [2][]member{wa, wb} {
		for k, m := range ms {
			if hasName(before, m) || hasName(after, m) || repeated(ms, k) {
				return walk{reach: unsure}
			}
		}
	}
	// The type is the last filterType's: after the window, in it, or
	// before it (then the same on both sides).
	typ := func(window []member) (t []byte, ok bool) {
		for _, ms := range [2][]member{after, window} {
			for k := len(ms) - 1; k >= 0; k-- {
				if ms[k].is("filterType") {
					t, _ = text(ms[k].val)
					return t, true
				}
			}
		}
		return nil, false
	}
	ta, okA := typ(wa)
	tb, okB := typ(wb)
	if !okA && !okB {
		ta = lastText(before, "filterType")
		tb = ta
	} else if !okA || !okB {
		return walk{reach: unsure} // the type changed: match the filters again
	}
	if string(ta) != string(tb) {
		return walk{reach: unsure}
	}
	d.fields(name, d.intern(ta), wa, wb)
	if same {
		return walk{reach: within, at: ia}
	}
	return walk{reach: closed, ea: ia + 1, eb: ib + 1}
}

// step reads the members (closer '}') or elements (closer ']') of a
// container, in a from offset i and in b from offset j (each the start of
// an item or the closer), the side with more bytes left first, until both
// are followed by the same bytes (same) or both are at the closer, or it
// has read more than wide items. It appends what it reads to wa and wb
// (elements as members without a name) and returns where it stopped.
func (w *pair) step(i, j int, closer byte, wa, wb []member) (int, int, []member, []member, bool) {
	a, b := w.a, w.b
	for !w.rest(i, j) {
		endA, endB := a[i] == closer, b[j] == closer
		if endA && endB || len(wa)+len(wb) > wide {
			return i, j, wa, wb, false
		}
		ra, rb := len(a)-i, len(b)-j
		stepA := !endA && (ra >= rb || endB)
		stepB := !endB && (rb >= ra || endA)
		if stepA {
			m, end := itemAt(a, i, closer)
			wa, i = append(wa, m), next(a, end)
		}
		if stepB {
			m, end := itemAt(b, j, closer)
			wb, j = append(wb, m), next(b, end)
		}
	}
	return i, j, wa, wb, true
}

// itemAt reads the member (closer '}') or element (closer ']') at b[i] and
// returns the offset after it.
func itemAt(b []byte, i int, closer byte) (member, int) {
	if closer == '}' {
		return memberAt(b, i)
	}
	end := valueEnd(b, i)
	return member{val: b[i:end]}, end
}

// keyAt reads the member name at b[i] and returns the member without its
// value, and the offset of the value.
func keyAt(b []byte, i int) (member, int) {
	kEnd, isPlain := strEnd(b, i)
	v := kEnd
	if b[v] != ':' {
		v = ws(b, v)
	}
	return member{name: b[i+1 : kEnd-1], plain: isPlain}, ws(b, v+1)
}

// memberAt reads the member at b[i] and returns the offset after its value.
func memberAt(b []byte, i int) (member, int) {
	m, v := keyAt(b, i)
	end := valueEnd(b, v)
	m.val = b[v:end]
	return m, end
}

// appendMembersUntil appends the members of the object b that end before
// offset last (the end of one of them) to dst.
func appendMembersUntil(dst []member, b []byte, last int) []member {
	for i := next(b, 1); i < last; {
		m, end := memberAt(b, i)
		dst, i = append(dst, m), next(b, end)
	}
	return dst
}

// appendMembersFrom appends the members of an object from b[i], a member's
// name or the object's '}', to dst.
func appendMembersFrom(dst []member, b []byte, i int) []member {
	for b[i] != '}' {
		m, end := memberAt(b, i)
		dst, i = append(dst, m), next(b, end)
	}
	return dst
}

// next returns the offset of what follows the item that ends at end: the
// next item, or the container's close.
func next(b []byte, end int) int {
	i := ws(b, end)
	if b[i] == ',' {
		i = ws(b, i+1)
	}
	return i
}

// hasName reports whether a member of ms has m's name.
func hasName(ms []member, m member) bool {
	for _, x := range ms {
		if x.sameName(m) {
			return true
		}
	}
	return false
}

// has reports whether a member of ms is named name.
func has(ms []member, name string) bool {
	for _, m := range ms {
		if m.is(name) {
			return true
		}
	}
	return false
}

// absent reports whether no member named name can be in rest: rest has no
// escapes, and name, which is printable ASCII, is nowhere in it between
// quotes. False means it may be.
func absent(name string, rest []byte) bool {
	if !plainString([]byte(name)) || bytes.IndexByte(rest, '\\') >= 0 {
		return false
	}
	for i := 0; ; {
		j := bytes.Index(rest[i:], []byte(name))
		if j < 0 {
			return true
		}
		j += i
		if j > 0 && rest[j-1] == '"' && j+len(name) < len(rest) && rest[j+len(name)] == '"' {
			return false
		}
		i = j + 1
	}
}

func plainString(s []byte) bool {
	for _, c := range s {
		if !plain[c] {
			return false
		}
	}
	return true
}

// prefixLen returns the length of the longest common prefix of a and b.
func prefixLen(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i+64 <= n && bytes.Equal(a[i:i+64], b[i:i+64]) {
		i += 64
	}
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}
