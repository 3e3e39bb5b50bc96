package exchangeinfo

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strconv"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is Parse's scanner: one pass over the body that validates it as
// JSON (as strictly as encoding/json does) while it finds serverTime and the
// symbols array and reads the few fields of each symbol object that lookups
// need. It reads values as encoding/json would decode them into the types
// the earlier, encoding/json-based Parse used (see reference_test.go), down
// to case-insensitive member names, U+FFFD for bad UTF-8 and the partial
// results of a type mismatch, and a differential fuzz test holds it to that.

// maxDepth is encoding/json's nesting limit. It counts within each value that
// Parse used to decode on its own: a member of the top-level object, or one
// entry of symbols.
const maxDepth = 10000

// plainByte marks the bytes a string may hold as they are: printable ASCII
// other than '"' and '\\'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainEnd returns the offset of the first byte at or after j that is '"',
// '\\', a control character or not ASCII, or len(b). Strings are mostly
// short, so it looks at 16 bytes at once without a branch per word.
func plainEnd(b []byte, j int) int {
	for j+8 <= len(b) {
		if t := special(binary.LittleEndian.Uint64(b[j:])); t != 0 {
			return j + bits.TrailingZeros64(t)/8
		}
		j += 8
	}
	for j < len(b) && plainByte[b[j]] {
		j++
	}
	return j
}

// special has the top bit set in the lowest byte of x (little-endian) that is
// '"', '\\', below 0x20 or above 0x7f, and possibly in bytes above it. Each
// subtraction sets a byte's top bit when the byte is below what is
// subtracted (q and e are 0 where x is '"' or '\\'), or at or above 0x80
// plus that (then x's own top bit is set too); its borrow only flags bytes
// above one that is flagged rightly.
func special(x uint64) uint64 {
	q, e := x^(lsb*'"'), x^(lsb*'\\')
	return ((q - lsb) | (e - lsb) | (x - lsb*0x20) | x) & msb
}

// parser holds the state of one Parse.
type parser struct {
	b      []byte
	intern map[string]string // the repeated strings (statuses, assets, permissions), one copy each
	perms  []string          // backs every Symbol.Perms, each a full slice expression
	buf    []byte            // scratch for unescaping
	cache  [256]string       // recent entries of intern; see internBytes
	last   struct {          // the previous symbol's permission values and their Perms
		ok          bool
		perms, sets []byte
		list        []string
	}
	memo [memoMembers]memberMemo // see skipMember
}

// memoMembers and memoElems bound skipMember's memory: the first members
// of a symbol object, and the first elements of an array member.
const (
	memoMembers = 24
	memoElems   = 16
)

// memberMemo is what skipMember saw last as one member of a symbol object:
// the whole value and each container element of an array, as slices of
// the body already validated.
type memberMemo struct {
	whole []byte
	elems [memoElems][]byte
}

func (p *parser) eof() error { return invalid("body cut short after %d bytes", len(p.b)) }

// bad reports the byte at i as not JSON, or the body as cut short when i is
// past its end.
func (p *parser) bad(i int, context string) error {
	if i >= len(p.b) {
		return p.eof()
	}
	return invalid("not JSON at byte %d: invalid character %q %s", i+1, p.b[i], context)
}

// ws returns the offset of the first non-space byte at or after i.
func (p *parser) ws(i int) int {
	if i < len(p.b) && p.b[i] > ' ' {
		return i // Binance sends no spaces
	}
	for i < len(p.b) {
		switch p.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// str validates the string starting at b[i] == '"' and returns the offset
// just after it, and whether its bytes between the quotes are the string
// itself (printable ASCII, no escapes).
func (p *parser) str(i int) (end int, plain bool, err error) {
	b := p.b
	plain = true
	for i++; ; {
		i = plainEnd(b, i)
		if i >= len(b) {
			return 0, false, p.eof()
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, plain, nil
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return 0, false, p.eof()
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := i + 2; j < i+6; j++ {
					if j >= len(b) {
						return 0, false, p.eof()
					}
					if unhex(b[j]) < 0 {
						return 0, false, p.bad(j, "in \\u hexadecimal character escape")
					}
				}
				i += 6
			default:
				return 0, false, p.bad(i+1, "in string escape code")
			}
		case c < 0x20:
			return 0, false, p.bad(i, "in string literal")
		default: // not ASCII: kept as is when valid UTF-8, else U+FFFD
			plain = false
			i++
		}
	}
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// num validates the number starting at b[i] and returns the offset after it.
func (p *parser) num(i int) (int, error) {
	b := p.b
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, p.eof()
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	default:
		return 0, p.bad(i, "in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, p.bad(i, "after decimal point in numeric literal")
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return 0, p.bad(i, "in exponent of numeric literal")
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	return i, nil
}

// lit validates the literal word (true, false or null) at b[i].
func (p *parser) lit(i int, word string) (int, error) {
	for j := 0; j < len(word); j++ {
		if i+j >= len(p.b) {
			return 0, p.eof()
		}
		if p.b[i+j] != word[j] {
			return 0, p.bad(i+j, "in literal "+word)
		}
	}
	return i + len(word), nil
}

// scalar validates the string, number or literal at b[i] and returns the
// offset after it; ok is false when b[i] starts none of them.
func (p *parser) scalar(i int) (end int, ok bool, err error) {
	switch c := p.b[i]; {
	case c == '"':
		end, _, err = p.str(i)
	case c == '-' || '0' <= c && c <= '9':
		end, err = p.num(i)
	case c == 't':
		end, err = p.lit(i, "true")
	case c == 'f':
		end, err = p.lit(i, "false")
	case c == 'n':
		end, err = p.lit(i, "null")
	default:
		return 0, false, nil
	}
	return end, true, err
}

// skip validates the value starting at b[i] (i < len(b), no space before it)
// and returns the offset just after it. outer is how many containers around
// it count towards maxDepth.
func (p *parser) skip(i, outer int) (int, error) {
	b := p.b
	var buf [32]bool
	stack := buf[:0] // per open container: true for an object
	isKey := false   // whether b[i] starts a member name rather than a value
	for {
		if i >= len(b) {
			return 0, p.eof()
		}
		switch c := b[i]; c {
		case '"':
			// Inline, for plain strings: filters are mostly short ones.
			j := plainEnd(b, i+1)
			if j < len(b) && b[j] == '"' {
				i = j + 1
			} else {
				end, _, err := p.str(i)
				if err != nil {
					return 0, err
				}
				i = end
			}
			if isKey {
				isKey = false
				i = p.ws(i)
				if i >= len(b) || b[i] != ':' {
					return 0, p.bad(i, "after object key")
				}
				i = p.ws(i + 1)
				continue
			}
		case '{', '[':
			if isKey {
				return 0, p.bad(i, "looking for beginning of object key string")
			}
			if outer+len(stack)+1 > maxDepth {
				return 0, invalid("not JSON at byte %d: exceeded max depth", i+1)
			}
			i = p.ws(i + 1)
			if i >= len(b) {
				return 0, p.eof()
			}
			if c == '{' {
				if b[i] == '}' {
					i++
					break
				}
				stack = append(stack, true)
				isKey = true
				continue
			}
			if b[i] == ']' {
				i++
				break
			}
			stack = append(stack, false)
			continue
		default:
			if isKey {
				return 0, p.bad(i, "looking for beginning of object key string")
			}
			end, ok, err := p.scalar(i)
			if err != nil {
				return 0, err
			}
			if !ok {
				return 0, p.bad(i, "looking for beginning of value")
			}
			i = end
		}
		// A value ended just before b[i].
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = p.ws(i)
			if i >= len(b) {
				return 0, p.eof()
			}
			obj := stack[len(stack)-1]
			c := b[i]
			if c == ',' {
				i = p.ws(i + 1)
				isKey = obj
				break
			}
			if obj && c == '}' || !obj && c == ']' {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			if obj {
				return 0, p.bad(i, "after object key:value pair")
			}
			return 0, p.bad(i, "after array element")
		}
	}
}

// key validates a member name at b[i] and the colon after it, and returns the
// offset of the value.
func (p *parser) key(i int) (int, error) {
	if i >= len(p.b) || p.b[i] != '"' {
		return 0, p.bad(i, "looking for beginning of object key string")
	}
	end, _, err := p.str(i)
	if err != nil {
		return 0, err
	}
	i = p.ws(end)
	if i >= len(p.b) || p.b[i] != ':' {
		return 0, p.bad(i, "after object key")
	}
	return p.ws(i + 1), nil
}

// scan walks the top-level object once, keeping serverTime, the span of
// every symbol object within body and the fields the index needs.
func (s *Snapshot) scan() error {
	p := &parser{b: s.body, intern: make(map[string]string, 64)}
	b := s.body
	i := p.ws(0)
	if i >= len(b) {
		return p.eof()
	}
	if b[i] != '{' {
		if _, ok, _ := p.scalar(i); ok || b[i] == '[' {
			return invalid("not a JSON object")
		}
		return p.bad(i, "looking for beginning of value")
	}
	var (
		sawSymbols, sawServerTime bool
		sawCode                   bool
		errCode, errMsg           string
		err                       error
	)
	i = p.ws(i + 1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			kStart := i
			if i, err = p.key(i); err != nil {
				return err
			}
			if i >= len(b) {
				return p.eof()
			}
			v := i
			switch key := p.name(kStart); key {
			case "symbols":
				if sawSymbols {
					return invalid("symbols appears twice")
				}
				sawSymbols = true
				i, err = s.scanSymbols(p, i)
			case "serverTime":
				if i, err = p.skip(i, 0); err != nil {
					return err
				}
				n, ok := p.number(v, i)
				if !ok {
					return invalid("serverTime is not a number")
				}
				ms, err := strconv.ParseInt(n, 10, 64)
				if err != nil || ms <= 0 {
					return invalid("serverTime %s is not a positive integer", n)
				}
				sawServerTime = true
				s.serverTime = time.UnixMilli(ms).UTC()
			case "code":
				if i, err = p.skip(i, 0); err != nil {
					return err
				}
				n, ok := p.number(v, i)
				if !ok {
					return invalid("code %.40s is not a number", b[v:i])
				}
				sawCode, errCode = true, n
			case "msg":
				if i, err = p.skip(i, 0); err != nil {
					return err
				}
				if b[v] == '"' {
					errMsg = string(p.unquote(b[v+1 : i-1]))
				}
			default:
				i, err = p.skip(i, 0)
			}
			if err != nil {
				return err
			}
			i = p.ws(i)
			if i >= len(b) {
				return p.eof()
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return p.bad(i, "after object key:value pair")
			}
			i = p.ws(i + 1)
		}
	}
	if p.ws(i) != len(b) {
		return invalid("trailing data after the JSON object")
	}
	switch {
	case sawCode && !sawSymbols:
		return invalid("Binance error %s: %.200q", errCode, errMsg)
	case !sawSymbols || s.symbols == nil:
		return invalid("no symbols array")
	case len(s.symbols) == 0:
		return invalid("empty symbols array")
	case !sawServerTime:
		return invalid("no serverTime")
	}
	return nil
}

// name returns the member name at b[i] (validated), decoded.
func (p *parser) name(i int) string {
	end, plain, _ := p.str(i)
	if plain {
		switch raw := p.b[i+1 : end-1]; string(raw) { // no allocation
		case "symbols":
			return "symbols"
		case "serverTime":
			return "serverTime"
		case "code":
			return "code"
		case "msg":
			return "msg"
		}
		return ""
	}
	return string(p.unquote(p.b[i+1 : end-1]))
}

// number reads the validated value b[v:end] as encoding/json decodes it into
// a json.Number: a number as written, a string holding a valid number, or ""
// for null. ok is false for any other value.
func (p *parser) number(v, end int) (n string, ok bool) {
	switch c := p.b[v]; {
	case c == 'n':
		return "", true
	case c == '"':
		n = string(p.unquote(p.b[v+1 : end-1]))
		return n, validNumber(n)
	case c == '-' || '0' <= c && c <= '9':
		return string(p.b[v:end]), true
	}
	return "", false
}

// validNumber reports whether s is exactly one JSON number.
func validNumber(s string) bool {
	if s == "" {
		return false
	}
	q := parser{b: []byte(s)}
	end, err := q.num(0)
	return err == nil && end == len(s)
}

// scanSymbols reads the symbols value starting at b[i] and returns the
// offset after it.
func (s *Snapshot) scanSymbols(p *parser, i int) (int, error) {
	b := p.b
	switch b[i] {
	case 'n':
		return p.lit(i, "null") // "symbols": null is no symbols array
	case '[':
	default:
		if _, err := p.skip(i, 0); err != nil {
			return 0, err
		}
		return 0, invalid("symbols is not an array")
	}
	s.arrOpen = i
	n := len(b)/1500 + 16 // spot runs about 1,600 bytes a symbol
	s.symbols = make([]Symbol, 0, n)
	s.index = make(map[string]int, n)
	i = p.ws(i + 1)
	if i < len(b) && b[i] == ']' {
		s.arrClose = i
		return i + 1, nil
	}
	for k := 0; ; k++ {
		if i >= len(b) {
			return 0, p.eof()
		}
		if b[i] != '{' {
			if _, err := p.skip(i, 0); err != nil {
				return 0, err
			}
			return 0, invalid("symbols[%d]: not an object", k)
		}
		sym, end, err := p.symbol(i)
		if err != nil {
			return 0, err
		}
		if sym.Name == "" {
			return 0, invalid("symbols[%d]: no symbol name", k)
		}
		if k == MaxSymbols {
			return 0, invalid("more than %d symbols", MaxSymbols)
		}
		if _, dup := s.index[sym.Name]; dup {
			return 0, invalid("symbols[%d]: duplicate symbol %q", k, sym.Name)
		}
		s.index[sym.Name] = len(s.symbols)
		s.symbols = append(s.symbols, sym)
		i = p.ws(end)
		if i >= len(b) {
			return 0, p.eof()
		}
		switch b[i] {
		case ',':
			i = p.ws(i + 1)
		case ']':
			s.arrClose = i
			return i + 1, nil
		default:
			return 0, p.bad(i, "after array element")
		}
	}
}

// The members of a symbol object that Parse reads.
const (
	fSymbol = iota
	fStatus
	fContractStatus
	fBaseAsset
	fQuoteAsset
	fPermissions
	fPermissionSets
	nFields
)

// fieldNames are the members, folded as encoding/json folds names to match
// them case-insensitively.
var fieldNames = [nFields]string{"SYMBOL", "STATUS", "CONTRACTSTATUS", "BASEASSET", "QUOTEASSET", "PERMISSIONS", "PERMISSIONSETS"}

// symbol reads the object at b[i] == '{' and returns the offset after it.
// A Symbol without a Name means the object has no usable name.
func (p *parser) symbol(i int) (Symbol, int, error) {
	b := p.b
	start := i
	var f [nFields]span // the last value of each member, as encoding/json keeps
	for k := range f {
		f[k] = span{-1, -1}
	}
	i = p.ws(i + 1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for member := 0; ; member++ {
			if i >= len(b) || b[i] != '"' {
				return Symbol{}, 0, p.bad(i, "looking for beginning of object key string")
			}
			kEnd, plain, err := p.str(i)
			if err != nil {
				return Symbol{}, 0, err
			}
			field := p.field(b[i+1:kEnd-1], plain)
			i = p.ws(kEnd)
			if i >= len(b) || b[i] != ':' {
				return Symbol{}, 0, p.bad(i, "after object key")
			}
			if i = p.ws(i + 1); i >= len(b) {
				return Symbol{}, 0, p.eof()
			}
			v := i
			switch b[i] {
			case '{', '[':
				i, err = p.skipMember(i, member)
			default:
				var ok bool
				if i, ok, err = p.scalar(i); err == nil && !ok {
					err = p.bad(i, "looking for beginning of value")
				}
			}
			if err != nil {
				return Symbol{}, 0, err
			}
			if field >= 0 {
				f[field] = span{v, i}
			}
			i = p.ws(i)
			if i >= len(b) {
				return Symbol{}, 0, p.eof()
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return Symbol{}, 0, p.bad(i, "after object key:value pair")
			}
			i = p.ws(i + 1)
		}
	}
	sym := Symbol{Raw: b[start:i:i]}
	name, isString := p.text(f[fSymbol], false)
	if !isString || name == "" {
		return Symbol{}, i, nil
	}
	sym.Name = name
	if sym.Status, _ = p.text(f[fStatus], true); sym.Status == "" {
		sym.Status, _ = p.text(f[fContractStatus], true)
	}
	sym.BaseAsset, _ = p.text(f[fBaseAsset], true)
	sym.QuoteAsset, _ = p.text(f[fQuoteAsset], true)
	sym.Perms = p.permissions(f[fPermissions], f[fPermissionSets])
	return sym, i, nil
}

// skipMember is skip for the container value at b[i] of a symbol object's
// member-th member. Symbols repeat much of each other (the same order
// types, many of the same filters), and the bytes of a JSON container are
// valid wherever they stand: a value, or an element of an array value,
// that starts with the bytes this member had last time is those bytes,
// already validated, and is passed over with one comparison.
func (p *parser) skipMember(i, member int) (int, error) {
	if member >= memoMembers {
		return p.skip(i, 1)
	}
	m := &p.memo[member]
	b := p.b
	if len(m.whole) > 0 && bytes.HasPrefix(b[i:], m.whole) {
		return i + len(m.whole), nil
	}
	var end int
	var err error
	if b[i] == '[' {
		end, err = p.skipArray(i, m)
	} else {
		end, err = p.skip(i, 1)
	}
	if err != nil {
		return 0, err
	}
	m.whole = b[i:end]
	return end, nil
}

// skipArray is skip for the array at b[i] == '[' that is a symbol's
// member, with m's elements compared first (see skipMember). Its errors are
// skip's.
func (p *parser) skipArray(i int, m *memberMemo) (int, error) {
	b := p.b
	if i = p.ws(i + 1); i >= len(b) {
		return 0, p.eof()
	}
	if b[i] == ']' {
		return i + 1, nil
	}
	for k := 0; ; k++ {
		if i >= len(b) {
			return 0, p.eof()
		}
		var end int
		if k < memoElems && len(m.elems[k]) > 0 && bytes.HasPrefix(b[i:], m.elems[k]) {
			end = i + len(m.elems[k])
		} else {
			var err error
			if end, err = p.skip(i, 2); err != nil {
				return 0, err
			}
			if c := b[i]; k < memoElems && (c == '{' || c == '[') {
				m.elems[k] = b[i:end]
			}
		}
		if i = p.ws(end); i >= len(b) {
			return 0, p.eof()
		}
		switch b[i] {
		case ',':
			i = p.ws(i + 1)
		case ']':
			return i + 1, nil
		default:
			return 0, p.bad(i, "after array element")
		}
	}
}

// field returns which of fieldNames the member name raw (its bytes between
// the quotes) matches, or -1.
func (p *parser) field(raw []byte, plain bool) int {
	if plain {
		for k, name := range fieldNames {
			if len(raw) == len(name) && asciiFold(raw, name) {
				return k
			}
		}
		return -1
	}
	folded := appendFoldedName(nil, p.unquote(raw))
	for k, name := range fieldNames {
		if string(folded) == name {
			return k
		}
	}
	return -1
}

// asciiFold reports whether raw, upper-cased, is upper (both ASCII).
func asciiFold(raw []byte, upper string) bool {
	for j, c := range raw {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[j] {
			return false
		}
	}
	return true
}

// appendFoldedName is encoding/json's: ASCII upper-cased, and every other
// rune the smallest of its fold set.
func appendFoldedName(out, in []byte) []byte {
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
		i += n
	}
	return out
}

// text reads the validated value at sp as encoding/json decodes it into a
// string: the string, or "" for null and for any other value, isString
// telling those apart (null counts as a string). Repeated strings are shared
// when intern is set.
func (p *parser) text(sp span, intern bool) (s string, isString bool) {
	if !sp.ok() {
		return "", false
	}
	switch p.b[sp.start] {
	case 'n':
		return "", true
	case '"':
	default:
		return "", false
	}
	raw := p.b[sp.start+1 : sp.end-1]
	if !plainString(raw) {
		raw = p.unquote(raw)
	}
	if !intern {
		return string(raw), true
	}
	return p.internBytes(raw), true
}

// internBytes returns raw as a string, one copy per distinct value: a small
// direct-mapped cache in front of p.intern, since a map lookup costs more
// than the comparison that usually settles it.
func (p *parser) internBytes(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	h := (len(raw)*31 + int(raw[0])*7 + int(raw[len(raw)-1])) & (len(p.cache) - 1)
	if s := p.cache[h]; s == string(raw) { // no allocation
		return s
	}
	s, ok := p.intern[string(raw)]
	if !ok {
		s = string(raw)
		p.intern[s] = s
	}
	p.cache[h] = s
	return s
}

func plainString(raw []byte) bool {
	for _, c := range raw {
		if !plainByte[c] {
			return false
		}
	}
	return true
}

// permissions builds a symbol's Perms from its permissions and permissionSets
// values as the encoding/json-based Parse did: permissions decoded into a
// []string, then every entry of permissionSets decoded into a [][]string (or,
// when that fails, a []string) that Perms lacks, in order.
func (p *parser) permissions(perms, sets span) []string {
	// Most symbols list the same permissions as the one before: share them.
	raw := func(sp span) []byte {
		if !sp.ok() {
			return nil
		}
		return p.b[sp.start:sp.end]
	}
	rawPerms, rawSets := raw(perms), raw(sets)
	if p.last.ok && bytes.Equal(rawPerms, p.last.perms) && bytes.Equal(rawSets, p.last.sets) &&
		(rawPerms == nil) == (p.last.perms == nil) && (rawSets == nil) == (p.last.sets == nil) {
		return p.last.list
	}
	list := p.buildPermissions(perms, sets)
	p.last.ok, p.last.perms, p.last.sets, p.last.list = true, rawPerms, rawSets, list
	return list
}

func (p *parser) buildPermissions(perms, sets span) []string {
	from := len(p.perms)
	if perms.ok() && p.b[perms.start] == '[' {
		p.elems(perms, func(e span) {
			s, _ := p.text(e, true)
			p.perms = append(p.perms, s)
		})
	}
	if sets.ok() && p.b[sets.start] == '[' {
		// As [][]string: fails on an entry that is neither an array nor
		// null, or on an array entry's entry that is not a string or null;
		// the entries decoded so far are kept all the same.
		nested, flat := true, true
		p.elems(sets, func(e span) {
			switch p.b[e.start] {
			case '[':
				flat = false
				p.elems(e, func(e span) {
					if _, isString := p.text(e, false); !isString {
						nested = false
					}
				})
			case 'n':
			case '"':
				nested = false
			default:
				nested, flat = false, false
			}
		})
		if nested || !flat {
			p.elems(sets, func(e span) {
				if p.b[e.start] == '[' {
					p.elems(e, func(e span) { p.addPerm(from, e) })
				}
			})
		} else {
			p.elems(sets, func(e span) { p.addPerm(from, e) })
		}
	}
	if len(p.perms) == from {
		return nil
	}
	return p.perms[from:len(p.perms):len(p.perms)]
}

// addPerm appends the string at e to p.perms unless p.perms[from:] has it.
func (p *parser) addPerm(from int, e span) {
	s, _ := p.text(e, true)
	for _, have := range p.perms[from:] {
		if have == s {
			return
		}
	}
	p.perms = append(p.perms, s)
}

// elems calls yield with the span of each entry of the validated array at sp.
func (p *parser) elems(sp span, yield func(span)) {
	i := p.ws(sp.start + 1)
	if p.b[i] == ']' {
		return
	}
	for {
		end, _ := p.skip(i, 0) // validated before, and no deeper than then
		yield(span{i, end})
		i = p.ws(end)
		if p.b[i] == ']' {
			return
		}
		i = p.ws(i + 1) // after ','
	}
}

// unquote decodes the bytes between a validated string's quotes as
// encoding/json does: bad UTF-8 and lone surrogates become U+FFFD. The
// result is valid until the next call.
func (p *parser) unquote(s []byte) []byte {
	b := p.buf[:0]
	for r := 0; r < len(s); {
		switch c := s[r]; {
		case c == '\\':
			switch e := s[r+1]; e {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if rr1 := getu4(s[r:]); rr1 >= 0 {
						if dec := utf16.DecodeRune(rr, rr1); dec != unicode.ReplacementChar {
							b = utf8.AppendRune(b, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			b = utf8.AppendRune(b, rr)
			r += size
		}
	}
	p.buf = b
	return b
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		h := unhex(c)
		if h < 0 {
			return -1
		}
		r = r<<4 | h
	}
	return r
}
