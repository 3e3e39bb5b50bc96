package changes

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
)

// This file is a small scanner over JSON that exchangeinfo.Parse has
// validated already: it splits an object into its members and an array into
// its elements, and compares and compacts values, without checking anything
// again. Given bytes that are not valid JSON it may panic.

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// zeros has the top bit set in the lowest zero byte of v (little-endian),
// and possibly in bytes above it, never below.
func zeros(v uint64) uint64 { return (v - lsb) &^ v & msb }

// special has the top bit set in the lowest byte of x that is '"', '\\',
// below 0x20 or above 0x7f, and possibly in bytes above it (see
// exchangeinfo's scanner, which this copies).
func special(x uint64) uint64 {
	q, e := x^(lsb*'"'), x^(lsb*'\\')
	return ((q - lsb) | (e - lsb) | (x - lsb*0x20) | x) & msb
}

// plain marks the bytes a string holds as they are: printable ASCII other
// than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// ws returns the offset of the first byte at or after i that is not JSON
// whitespace.
func ws(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i // Binance sends no spaces
	}
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// strEnd returns the offset just after the string starting at b[i] == '"',
// and whether the bytes between its quotes are the string itself (printable
// ASCII, no escapes).
func strEnd(b []byte, i int) (end int, isPlain bool) {
	isPlain = true
	for i++; ; {
		for i+8 <= len(b) {
			if t := special(binary.LittleEndian.Uint64(b[i:])); t != 0 {
				i += bits.TrailingZeros64(t) / 8
				goto stop
			}
			i += 8
		}
		for plain[b[i]] {
			i++
		}
	stop:
		switch b[i] {
		case '"':
			return i + 1, isPlain
		case '\\':
			isPlain = false
			i += 2 // past the escaped byte; a \u's hex digits are plain
		default:
			isPlain = false
			i++
		}
	}
}

// structural returns the offset of the first '"', '{', '}', '[' or ']' at or
// after i.
func structural(b []byte, i int) int {
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		y := x | lsb*0x20 // '[' becomes '{', ']' becomes '}'; nothing else does
		if t := zeros(x^lsb*'"') | zeros(y^lsb*'{') | zeros(y^lsb*'}'); t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
		i += 8
	}
	for {
		switch b[i] {
		case '"', '{', '}', '[', ']':
			return i
		}
		i++
	}
}

// valueEnd returns the offset just after the value starting at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := strEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for {
			i = structural(b, i)
			switch b[i] {
			case '"':
				i, _ = strEnd(b, i)
				continue
			case '{', '[':
				depth++
			default:
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	switch b[i] {
	case 't', 'n': // true, null
		return i + 4
	case 'f': // false
		return i + 5
	}
	for i++; i < len(b) && number[b[i]]; i++ {
	}
	return i
}

// number marks the bytes a number holds after its first.
var number = func() (t [256]bool) {
	for _, c := range []byte("0123456789.eE+-") {
		t[c] = true
	}
	return t
}()

// member is one name:value pair of an object.
type member struct {
	name  []byte // between the quotes, as written
	plain bool   // name is the decoded name itself
	val   []byte
}

// is reports whether m's decoded name is s.
func (m member) is(s string) bool {
	if m.plain {
		return string(m.name) == s
	}
	return unquote(m.name) == s
}

// key is m's decoded name.
func (m member) key() string {
	if m.plain {
		return string(m.name)
	}
	return unquote(m.name)
}

// sameName reports whether m and o have the same decoded name.
func (m member) sameName(o member) bool {
	if m.plain && o.plain {
		return string(m.name) == string(o.name)
	}
	return m.key() == o.key()
}

// appendMembers appends the members of the object b, in order, to dst.
func appendMembers(dst []member, b []byte) []member {
	i := ws(b, 1)
	if b[i] == '}' {
		return dst
	}
	for {
		kEnd, isPlain := strEnd(b, i)
		name := b[i+1 : kEnd-1]
		i = ws(b, ws(b, kEnd)+1) // past the colon
		end := valueEnd(b, i)
		dst = append(dst, member{name: name, plain: isPlain, val: b[i:end]})
		i = ws(b, end)
		if b[i] == '}' {
			return dst
		}
		i = ws(b, i+1)
	}
}

// appendElems appends the elements of the array b, in order, to dst.
func appendElems(dst [][]byte, b []byte) [][]byte {
	i := ws(b, 1)
	if b[i] == ']' {
		return dst
	}
	for {
		end := valueEnd(b, i)
		dst = append(dst, b[i:end])
		i = ws(b, end)
		if b[i] == ']' {
			return dst
		}
		i = ws(b, i+1)
	}
}

// text returns the string the value v holds, without its quotes: the bytes
// themselves when plain, else decoded (bad UTF-8 and lone surrogates become
// U+FFFD, as encoding/json has them). ok is false when v is not a string.
func text(v []byte) (s []byte, ok bool) {
	if len(v) == 0 || v[0] != '"' {
		return nil, false
	}
	if end, isPlain := strEnd(v, 0); isPlain && end == len(v) {
		return v[1 : len(v)-1], true
	}
	return []byte(unquote(v[1 : len(v)-1])), true
}

// unquote decodes the bytes between a valid string's quotes.
func unquote(raw []byte) string {
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var s string
	json.Unmarshal(q, &s) // valid: Parse checked it
	return s
}

// equal reports whether the values a and b are the same bytes once the
// whitespace between their tokens is removed. nil is a missing value: equal
// only to nil.
func equal(a, b []byte) bool {
	if string(a) == string(b) {
		return (a == nil) == (b == nil)
	}
	if a == nil || b == nil {
		return false
	}
	i, j := 0, 0
	inString := false
	for {
		if !inString {
			i, j = ws(a, i), ws(b, j)
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		c := a[i]
		if c != b[j] {
			return false
		}
		i, j = i+1, j+1
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\': // the escaped byte must match too
			if i == len(a) || j == len(b) || a[i] != b[j] {
				return false
			}
			i, j = i+1, j+1
		}
	}
}

// appendCompact appends the value v to dst without the whitespace between
// its tokens, as json.Compact does (and without its checks).
func appendCompact(dst, v []byte) []byte {
	for _, c := range v {
		if c <= ' ' {
			goto spaces
		}
	}
	return append(dst, v...)
spaces:
	inString := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inString:
			dst = append(dst, c)
			if c == '\\' {
				i++
				dst = append(dst, v[i])
			} else if c == '"' {
				inString = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			dst = append(dst, c)
			inString = c == '"'
		}
	}
	return dst
}
