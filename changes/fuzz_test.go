package changes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// FuzzDiff builds two answers from a small recorded one by edits the
// fuzzer chooses, one list each, and checks that Diff does not panic, that
// an answer has no changes from itself, and that the changes from one to
// the other, both ways, are the reference's.
func FuzzDiff(f *testing.F) {
	bases := fuzzBases(f)
	f.Add(byte(0), []byte{}, []byte{2, 1, 0}, byte(0))
	f.Add(byte(0), []byte{3, 2, 0x11}, []byte{4, 2, 1, 5, 3, 0}, byte(1))
	f.Add(byte(1), []byte{2, 0, 1}, []byte{6, 1, 3, 7, 1, 2}, byte(2))
	f.Add(byte(2), []byte{17, 0, 0}, []byte{12, 0, 3, 16, 0, 5}, byte(0))
	f.Add(byte(0), []byte{0, 3, 0, 1, 1, 0}, []byte{18, 2, 7, 19, 1, 1, 3, 1, 9}, byte(0))
	f.Fuzz(func(t *testing.T, base byte, editsA, editsB []byte, pretty byte) {
		b := bases[int(base)%len(bases)]
		bodyA := b.build(t, editsA, pretty&1 != 0)
		bodyB := b.build(t, editsB, pretty&2 != 0)
		a, errA := exchangeinfo.Parse(b.market, bodyA, fetched1)
		c, errB := exchangeinfo.Parse(b.market, bodyB, fetched2)
		if errA != nil || errB != nil {
			return // an edit emptied the symbols: not an answer
		}
		again, err := exchangeinfo.Parse(b.market, bytes.Clone(bodyA), fetched2)
		if err != nil {
			t.Fatalf("Parse(Body()) = %v", err)
		}
		if got := Diff(a, again); got != nil {
			t.Fatalf("Diff(a, a) = %v, want none", showAll(got))
		}
		checkReference(t, Diff(a, c), bodyA, bodyB)
		checkReference(t, Diff(c, a), bodyB, bodyA)
	})
}

// fuzzBase is a recorded answer cut to a few symbols, as an ordered model
// that edits change and then write out.
type fuzzBase struct {
	market exchangeinfo.Market
	top    object // symbols last
	syms   []object
}

// object is a JSON object's members in order: names as written (with their
// quotes, so that an edit may escape them), values as JSON.
type object []entry

type entry struct {
	name string
	val  json.RawMessage
}

func fuzzBases(tb testing.TB) []fuzzBase {
	var bases []fuzzBase
	for _, b := range []struct {
		file string
		m    exchangeinfo.Market
		n    int
	}{
		{"spot_testnet_exchangeinfo_2021-07-11.json", exchangeinfo.Spot, 6},
		{"coinm_exchangeinfo.json", exchangeinfo.COINM, 4},
		{"usdm_exchangeinfo.json", exchangeinfo.USDM, 4},
	} {
		top := decodeObject(tb, fixtures.Read(tb, "binance/"+b.file))
		base := fuzzBase{market: b.m}
		for _, m := range top {
			if m.name != `"symbols"` {
				base.top = append(base.top, m)
				continue
			}
			var list []json.RawMessage
			if err := json.Unmarshal(m.val, &list); err != nil {
				tb.Fatal(err)
			}
			for _, raw := range list[:b.n] {
				base.syms = append(base.syms, decodeObject(tb, raw))
			}
		}
		bases = append(bases, base)
	}
	return bases
}

// decodeObject reads the object b in order, its values compacted.
func decodeObject(tb testing.TB, b []byte) object {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		tb.Fatalf("decodeObject: %v %v", tok, err)
	}
	var o object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			tb.Fatal(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			tb.Fatal(err)
		}
		name, _ := json.Marshal(tok.(string))
		o = append(o, entry{string(name), compactBytes(tb, v)})
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		tb.Fatal(err)
	}
	return o
}

func compactBytes(tb testing.TB, v []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func (o object) bytes() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.name)
		b.WriteByte(':')
		b.Write(m.val)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// find returns the index of the last member named name (unescaped), or -1.
func (o object) find(name string) int {
	for i := len(o) - 1; i >= 0; i-- {
		var n string
		json.Unmarshal([]byte(o[i].name), &n)
		if n == name {
			return i
		}
	}
	return -1
}

func (o object) clone() object { return slices.Clone(o) }

func (o *object) set(name string, v string) {
	q, _ := json.Marshal(name)
	if i := o.find(name); i >= 0 {
		(*o)[i].val = json.RawMessage(v)
		return
	}
	*o = append(*o, entry{string(q), json.RawMessage(v)})
}

// build applies the edits (three bytes each: what, which, how) to a copy
// of the base and writes the answer, indented when pretty.
func (fb fuzzBase) build(tb testing.TB, edits []byte, pretty bool) []byte {
	tb.Helper()
	top := fb.top.clone()
	syms := make([]object, len(fb.syms))
	for i, s := range fb.syms {
		syms[i] = s.clone()
	}
	clones := 0
	for ; len(edits) >= 3; edits = edits[3:] {
		op, x, y := edits[0], int(edits[1]), int(edits[2])
		if len(syms) == 0 {
			break
		}
		s := &syms[x%len(syms)]
		filters := func() []json.RawMessage {
			var fs []json.RawMessage
			if i := s.find("filters"); i >= 0 {
				json.Unmarshal((*s)[i].val, &fs)
			}
			return fs
		}
		setFilters := func(fs []json.RawMessage) {
			b, _ := json.Marshal(fs)
			s.set("filters", string(b))
		}
		// onFilter edits filter y's members.
		onFilter := func(edit func(*object)) {
			fs := filters()
			if len(fs) == 0 {
				return
			}
			k := y % len(fs)
			if len(fs[k]) == 0 || fs[k][0] != '{' {
				return
			}
			fo := decodeObject(tb, fs[k])
			edit(&fo)
			fs[k] = fo.bytes()
			setFilters(fs)
		}
		switch op % 22 {
		case 0: // delist
			syms = slices.Delete(syms, x%len(syms), x%len(syms)+1)
		case 1: // list a copy under a new name
			c := s.clone()
			clones++
			c.set("symbol", fmt.Sprintf(`"NEW%dX%d"`, clones, y))
			syms = slices.Insert(syms, y%(len(syms)+1), c)
		case 2: // status
			v := []string{`"TRADING"`, `"BREAK"`, `"HALT"`, `""`}[y%4]
			if s.find("contractStatus") >= 0 {
				s.set("contractStatus", v)
			} else {
				s.set("status", v)
			}
		case 3: // a filter's field
			onFilter(func(fo *object) {
				if len(*fo) > 1 {
					k := 1 + (y>>4)%(len(*fo)-1)
					(*fo)[k].val = json.RawMessage(fmt.Sprintf(`"0.%08d"`, y*37+x))
				}
			})
		case 4: // a filter disappears
			if fs := filters(); len(fs) > 0 {
				setFilters(slices.Delete(fs, y%len(fs), y%len(fs)+1))
			}
		case 5: // a filter's type repeats
			if fs := filters(); len(fs) > 0 {
				setFilters(append(fs, fs[y%len(fs)]))
			}
		case 6: // a permission comes or goes
			var ps []string
			if i := s.find("permissions"); i >= 0 {
				json.Unmarshal((*s)[i].val, &ps)
			}
			p := fmt.Sprintf("P%d", y%4)
			if i := slices.Index(ps, p); i >= 0 {
				ps = slices.Delete(ps, i, i+1)
			} else {
				ps = slices.Insert(ps, y%(len(ps)+1), p)
			}
			b, _ := json.Marshal(ps)
			s.set("permissions", string(b))
		case 7: // members reordered
			if len(*s) > 0 {
				k := y % len(*s)
				*s = append((*s)[k:], (*s)[:k]...)
			}
		case 8: // filters reordered
			if fs := filters(); len(fs) > 0 {
				k := y % len(fs)
				setFilters(append(fs[k:], fs[:k]...))
			}
		case 9: // a new member
			s.set(fmt.Sprintf("new%d", y%3), fmt.Sprint(x))
		case 10: // a member goes
			if k := y % len(*s); (*s)[k].name != `"symbol"` {
				*s = slices.Delete(*s, k, k+1)
			}
		case 11: // a rate limit
			if i := top.find("rateLimits"); i >= 0 {
				var rl []map[string]any
				json.Unmarshal(top[i].val, &rl)
				if len(rl) > 0 {
					rl[y%len(rl)]["limit"] = x * 100
					b, _ := json.Marshal(rl)
					top[i].val = b
				}
			}
		case 12: // a member's name escaped: the same name
			if k := y % len(*s); len((*s)[k].name) > 2 {
				n := (*s)[k].name
				(*s)[k].name = fmt.Sprintf(`"\u%04x%s`, n[1], n[2:])
			}
		case 13: // permissions not an array of strings
			s.set("permissions", []string{`null`, `["SPOT",1]`, `"SPOT"`}[y%3])
		case 14: // a filter's type missing, or not a string
			onFilter(func(fo *object) {
				if i := fo.find("filterType"); i >= 0 {
					if x%2 == 0 {
						*fo = slices.Delete(*fo, i, i+1)
					} else {
						(*fo)[i].val = json.RawMessage(`5`)
					}
				}
			})
		case 15: // a filter's fields reordered
			onFilter(func(fo *object) {
				k := x % len(*fo)
				*fo = append((*fo)[k:], (*fo)[:k]...)
			})
		case 16: // a member repeated, the last value winning
			if k := y % len(*s); (*s)[k].name != `"symbol"` {
				*s = append(*s, entry{(*s)[k].name, json.RawMessage(fmt.Sprintf(`"dup%d"`, x))})
			}
		case 17: // permissionSets
			s.set("permissionSets", []string{`[["SPOT","MARGIN"]]`, `["GRID","COPY"]`, `[]`, `[["SPOT"],["TRD_GRP_002"]]`}[y%4])
		case 18: // brackets and the word filters inside strings, before filters
			v := []string{`"}{]["`, `"[\"filters\":[{"`, `"{\"filters\":1}"`, `"filters"`, `"\"filters\":["`}[x%5]
			*s = slices.Insert(*s, 1, entry{fmt.Sprintf(`"text%d"`, y), json.RawMessage(v)})
		case 19: // a nested filters member, before or after the symbol's
			nest := `{"filters":[{"filterType":"PRICE_FILTER","tickSize":"1"}]}`
			if y%2 == 0 {
				*s = slices.Insert(*s, 1, entry{`"nest"`, json.RawMessage(nest)})
			} else {
				s.set("nest", nest)
			}
		case 20: // a filter that is not an object
			if fs := filters(); len(fs) > 0 {
				fs[y%len(fs)] = json.RawMessage([]string{`5`, `"x"`, `null`, `[1]`}[x%4])
				setFilters(fs)
			}
		case 21: // filters not an array, or gone, or a second filters member
			switch x % 3 {
			case 0:
				s.set("filters", `null`)
			case 1:
				if i := s.find("filters"); i >= 0 {
					*s = slices.Delete(*s, i, i+1)
				}
			case 2:
				*s = append(*s, entry{`"filters"`, json.RawMessage(`[{"filterType":"LOT_SIZE","minQty":"1"}]`)})
			}
		}
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for _, m := range top {
		b.WriteString(m.name + ":")
		b.Write(m.val)
		b.WriteByte(',')
	}
	b.WriteString(`"symbols":[`)
	for i, s := range syms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(s.bytes())
	}
	b.WriteString("]}")
	if pretty {
		var out bytes.Buffer
		if err := json.Indent(&out, b.Bytes(), "", strings.Repeat(" ", 2)); err != nil {
			tb.Fatalf("build: %v\n%s", err, b.Bytes())
		}
		return out.Bytes()
	}
	return b.Bytes()
}
