// Command tables turns the output of this module's benchmarks into the
// markdown tables of README.md: the median of every metric over all the runs
// of a benchmark, and ratios against baselines measured in the same run.
//
// Usage:
//
//	go run ./cmd/tables LABEL=FILE...
//
// Each FILE holds the `go test -bench` output of one build (for example
// default=results/default.txt jsonv2=results/jsonv2.txt); its tables are
// printed under "### LABEL", and its ratios use only its own baselines.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tables LABEL=FILE...")
		os.Exit(2)
	}
	for _, arg := range os.Args[1:] {
		label, file, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "tables: %q is not LABEL=FILE\n", arg)
			os.Exit(2)
		}
		f, err := os.Open(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tables:", err)
			os.Exit(1)
		}
		rs, err := parse(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "tables: %s: %v\n", file, err)
			os.Exit(1)
		}
		fmt.Printf("### %s (%s)\n\n", label, file)
		report(os.Stdout, rs)
	}
}

// result is one benchmark: its keys (lib, in, level) and every value seen
// for each unit.
type result struct {
	kind   string // Decode, Valid, Encode, Gzip, Gunzip
	keys   map[string]string
	values map[string][]float64 // unit -> one value per run
}

// median returns the median of r's values for unit, or 0 when it has none.
func (r *result) median(unit string) float64 {
	v := slices.Clone(r.values[unit])
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (r *result) runs() int { return len(r.values["ns/op"]) }

var (
	line  = regexp.MustCompile(`^Benchmark(\S+)\s+\d+\s+(.*)$`)
	procs = regexp.MustCompile(`-\d+$`) // the GOMAXPROCS suffix
)

func parse(r io.Reader) (map[string]*result, error) {
	rs := map[string]*result{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		name := procs.ReplaceAllString(m[1], "")
		kind, sub, _ := strings.Cut(name, "/")
		res := rs[name]
		if res == nil {
			res = &result{kind: kind, keys: map[string]string{}, values: map[string][]float64{}}
			for _, kv := range strings.Split(sub, "/") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					res.keys[k] = v
				}
			}
			rs[name] = res
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", sc.Text(), err)
			}
			res.values[f[i+1]] = append(res.values[f[i+1]], v)
		}
	}
	return rs, sc.Err()
}

// find returns the result of kind with the given keys, or nil.
func find(rs map[string]*result, kind string, kv ...string) *result {
	name := kind
	for i := 0; i+1 < len(kv); i += 2 {
		name += "/" + kv[i] + "=" + kv[i+1]
	}
	return rs[name]
}

// of returns the results of kind in the order the benchmarks define them
// (lib order as first seen), filtered to input in.
func of(rs map[string]*result, kind, in string) []*result {
	var out []*result
	for _, r := range rs {
		if r.kind == kind && r.keys["in"] == in {
			out = append(out, r)
		}
	}
	order := map[string]int{"std": 0, "v2": 1, "goccy": 2, "segmentio": 3, "sonic": 4, "sonic-std": 5, "parse": 6, "clone": 7, "stdgzip": 0, "klauspost": 1}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.keys["lib"] != b.keys["lib"] {
			return order[a.keys["lib"]] < order[b.keys["lib"]]
		}
		return a.keys["level"] < b.keys["level"]
	})
	return out
}

var inputs = []string{"spot", "usdm", "coinm", "spot15MB"}

func ratio(a, b *result) string {
	if a == nil || b == nil || b.median("ns/op") == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a.median("ns/op")/b.median("ns/op"))
}

func report(w io.Writer, rs map[string]*result) {
	runs := 0
	for _, r := range rs {
		runs = max(runs, r.runs())
	}
	fmt.Fprintf(w, "Medians of %d runs. ×std: time ÷ encoding/json's time for the same input and operation; ×clone: time ÷ bytes.Clone's.\n\n", runs)

	fmt.Fprintf(w, "#### JSON decode (full typed decode; parse = exchangeinfo.Parse; clone = bytes.Clone)\n\n")
	fmt.Fprintf(w, "| input | lib | ns/op | MB/s | allocs/op | B/op | ×std decode | ×clone |\n|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, in := range inputs {
		std, clone := find(rs, "Decode", "lib", "std", "in", in), find(rs, "Decode", "lib", "clone", "in", in)
		for _, r := range of(rs, "Decode", in) {
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %s | %s | %s |\n", in, r.keys["lib"], num(r.median("ns/op")),
				r.median("MB/s"), num(r.median("allocs/op")), num(r.median("B/op")), ratio(r, std), ratio(r, clone))
		}
	}

	fmt.Fprintf(w, "\n#### JSON validity only (json.Valid; v2: jsontext.Value.IsValid)\n\n")
	fmt.Fprintf(w, "| input | lib | ns/op | MB/s | allocs/op | ×std Valid | ×std decode | ×clone |\n|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, in := range inputs {
		std, dec, clone := find(rs, "Valid", "lib", "std", "in", in), find(rs, "Decode", "lib", "std", "in", in), find(rs, "Decode", "lib", "clone", "in", in)
		for _, r := range of(rs, "Valid", in) {
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %s | %s | %s |\n", in, r.keys["lib"], num(r.median("ns/op")),
				r.median("MB/s"), num(r.median("allocs/op")), ratio(r, std), ratio(r, dec), ratio(r, clone))
		}
	}

	fmt.Fprintf(w, "\n#### JSON encode (MB/s of the input answer's size; out-bytes is the output, the same for every lib)\n\n")
	fmt.Fprintf(w, "| input | lib | ns/op | MB/s | allocs/op | B/op | out-bytes | ×std encode | ×clone |\n|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, in := range inputs {
		std, clone := find(rs, "Encode", "lib", "std", "in", in), find(rs, "Decode", "lib", "clone", "in", in)
		for _, r := range of(rs, "Encode", in) {
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s |\n", in, r.keys["lib"], num(r.median("ns/op")),
				r.median("MB/s"), num(r.median("allocs/op")), num(r.median("B/op")), num(r.median("out-bytes")), ratio(r, std), ratio(r, clone))
		}
	}

	if len(of(rs, "Gzip", "spot")) > 0 {
		fmt.Fprintf(w, "\n#### gzip compression (one fresh writer per op; ratio = input ÷ compressed)\n\n")
		fmt.Fprintf(w, "| input | lib | level | ns/op | MB/s | allocs/op | gz-bytes | ratio | time ×stdgzip-1 | size ×stdgzip-1 |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, in := range inputs {
			base := find(rs, "Gzip", "lib", "stdgzip", "level", "1", "in", in)
			for _, r := range of(rs, "Gzip", in) {
				size := "–"
				if base != nil && base.median("gz-bytes") > 0 {
					size = fmt.Sprintf("%.2f", r.median("gz-bytes")/base.median("gz-bytes"))
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f | %s | %s | %.1f | %s | %s |\n", in, r.keys["lib"], r.keys["level"],
					num(r.median("ns/op")), r.median("MB/s"), num(r.median("allocs/op")), num(r.median("gz-bytes")),
					r.median("ratio"), ratio(r, base), size)
			}
		}
	}

	if len(of(rs, "Gunzip", "spot")) > 0 {
		fmt.Fprintf(w, "\n#### gzip decompression (of compress/gzip's level-6 stream; MB/s of the decompressed size)\n\n")
		fmt.Fprintf(w, "| input | lib | ns/op | MB/s | allocs/op | B/op | ×stdgzip |\n|---|---|--:|--:|--:|--:|--:|\n")
		for _, in := range inputs {
			base := find(rs, "Gunzip", "lib", "stdgzip", "in", in)
			for _, r := range of(rs, "Gunzip", in) {
				fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %s | %s |\n", in, r.keys["lib"], num(r.median("ns/op")),
					r.median("MB/s"), num(r.median("allocs/op")), num(r.median("B/op")), ratio(r, base))
			}
		}
	}
	fmt.Fprintln(w)
}

// num writes n with thousands separators.
func num(n float64) string {
	s := strconv.FormatFloat(n, 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
