// Command load is the helper of bench/load.sh, the load harness
// of bench/README.md. The script starts the servers and runs wrk; this program
// does the parts that are awkward in shell:
//
//	load freeports N                 print N free loopback TCP ports
//	load report [flags]              turn the wrk results into the markdown report
//	load gobaseline -addr A -dir D   serve D's files from memory with plain net/http
//
// gobaseline is the floor of a Go server on this machine: net/http, no
// router, no cache lookups, the bytes from memory, ETag/304 and the .gz
// sibling for clients that accept gzip. It is informational: the report
// shows it but never counts it as a peer.
//
// report reads the runs file the script writes (one line per wrk run:
// case, server, repeat and the JSON line of bench/load/report.lua, separated
// by tabs), takes the median of each case and server over the repeats, and
// compares symcache with the better peer: throughput ratio = symcache req/s /
// the highest peer req/s (target >= 1.0), p99 ratio = symcache p99 / the
// lowest peer p99 (target <= 1.2). It prints the markdown and writes it to
// -out.
package main

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: load freeports N | load report [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "freeports":
		err = freePorts(os.Args[2:], os.Stdout)
	case "report":
		err = report(os.Args[2:], os.Stdout)
	case "gobaseline":
		err = goBaseline(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// freePorts prints n distinct ports that were free on 127.0.0.1 a moment ago.
func freePorts(args []string, out io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("freeports: want one argument, the count")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return fmt.Errorf("freeports: %q is not a positive count", args[0])
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		fmt.Fprintln(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// run is one wrk run, as printed by report.lua.
type run struct {
	Requests   int64   `json:"requests"`
	DurationS  float64 `json:"duration_s"`
	RPS        float64 `json:"rps"`
	Bytes      int64   `json:"bytes"`
	P50        int64   `json:"p50_us"`
	P90        int64   `json:"p90_us"`
	P99        int64   `json:"p99_us"`
	Max        int64   `json:"max_us"`
	ErrConnect int64   `json:"err_connect"`
	ErrRead    int64   `json:"err_read"`
	ErrWrite   int64   `json:"err_write"`
	ErrStatus  int64   `json:"err_status"`
	ErrTimeout int64   `json:"err_timeout"`
}

func (r run) errors() int64 {
	return r.ErrConnect + r.ErrRead + r.ErrWrite + r.ErrStatus + r.ErrTimeout
}

// stat is the summary of one case and server over the repeats.
type stat struct {
	n                 int
	rps, p50, p99     float64 // medians
	rpsMin, rpsMax    float64
	bytesPerReq, errs int64
	present           bool
}

func report(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	runsPath := fs.String("runs", "", "runs file: case<TAB>server<TAB>repeat<TAB>json")
	metaPath := fs.String("meta", "", "machine and setup lines, copied as a list")
	prePath := fs.String("preflight", "", "preflight lines: case<TAB>server<TAB>status<TAB>bytes<TAB>encoding<TAB>same-bytes")
	memPath := fs.String("memory", "", "memory lines: key<TAB>value (bytes)")
	servers := fs.String("servers", "symcache,nginx,varnish", "servers in table order; the first is the one under test")
	peers := fs.String("peers", "nginx,varnish", "the servers symcache is compared with")
	outPath := fs.String("out", "", "markdown file to write (besides stdout)")
	title := fs.String("title", "symcache load harness", "report title")
	if err := fs.Parse(args); err != nil {
		return err
	}
	order := strings.Split(*servers, ",")
	runs, cases, err := readRuns(*runsPath)
	if err != nil {
		return err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# %s — %s\n\n", *title, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	if *metaPath != "" {
		lines, err := readLines(*metaPath)
		if err != nil {
			return err
		}
		for _, l := range lines {
			fmt.Fprintf(&b, "- %s\n", l)
		}
		b.WriteString("\n")
	}

	stats := map[[2]string]*stat{}
	for _, c := range cases {
		for _, s := range order {
			stats[[2]string{c, s}] = summarize(runs[[2]string{c, s}])
		}
	}

	b.WriteString("## Results (median over repeats)\n\n")
	b.WriteString("| case | server | req/s | p50 | p99 | req/s min–max | bytes/req | errors | req/s ratio | p99 ratio |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	type verdict struct {
		c, best         string
		rpsR, p99R      float64
		rpsOK, p99OK    bool
		sym, bestPeerRP float64
		bestP99Peer     string
	}
	var verdicts []verdict
	for _, c := range cases {
		under := stats[[2]string{c, order[0]}]
		bestRPS, bestName, bestP99, bestP99Name := 0.0, "", 0.0, ""
		for _, s := range order[1:] {
			st := stats[[2]string{c, s}]
			if !st.present || !slices.Contains(strings.Split(*peers, ","), s) {
				continue
			}
			if st.rps > bestRPS {
				bestRPS, bestName = st.rps, s
			}
			if bestP99Name == "" || st.p99 < bestP99 {
				bestP99, bestP99Name = st.p99, s
			}
		}
		for i, s := range order {
			st := stats[[2]string{c, s}]
			if !st.present {
				continue
			}
			rr, pr := "", ""
			if i == 0 && under.present && bestName != "" {
				v := verdict{c: c, best: bestName, bestP99Peer: bestP99Name, sym: under.rps, bestPeerRP: bestRPS}
				v.rpsR = under.rps / bestRPS
				if bestP99 > 0 {
					v.p99R = under.p99 / bestP99
				}
				v.rpsOK, v.p99OK = v.rpsR >= 1.0, v.p99R <= 1.2
				verdicts = append(verdicts, v)
				rr = fmt.Sprintf("**%.2f×** (vs %s)", v.rpsR, bestName)
				pr = fmt.Sprintf("**%.2f×** (vs %s)", v.p99R, bestP99Name)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s–%s | %s | %d | %s | %s |\n",
				c, s, fmtRPS(st.rps), fmtMicros(st.p50), fmtMicros(st.p99),
				fmtRPS(st.rpsMin), fmtRPS(st.rpsMax), fmtBytes(st.bytesPerReq), st.errs, rr, pr)
		}
	}

	b.WriteString("\n## Targets (throughput ≥ 1.0× the better peer, p99 ≤ 1.2× the better peer)\n\n")
	b.WriteString("| case | symcache req/s | best peer req/s | throughput (medians) | throughput (best rounds) | p99 |\n|---|--:|--:|---|---|---|\n")
	noisy := false
	for _, v := range verdicts {
		sym := stats[[2]string{v.c, order[0]}]
		peerMax := 0.0
		if sym.rpsMin > 0 && sym.rpsMax/sym.rpsMin > 1.3 {
			noisy = true
		}
		for _, p := range strings.Split(*peers, ",") {
			if st := stats[[2]string{v.c, p}]; st != nil && st.present {
				peerMax = max(peerMax, st.rpsMax)
				if st.rpsMin > 0 && st.rpsMax/st.rpsMin > 1.3 {
					noisy = true
				}
			}
		}
		bestOf := sym.rpsMax / peerMax
		fmt.Fprintf(&b, "| %s | %s | %s (%s) | %.2f× %s | %.2f× %s | %.2f× vs %s %s |\n", v.c, fmtRPS(v.sym), fmtRPS(v.bestPeerRP), v.best,
			v.rpsR, mark(v.rpsOK), bestOf, mark(bestOf >= 1.0), v.p99R, v.bestP99Peer, mark(v.p99OK))
	}
	b.WriteString("\n\"best rounds\" compares symcache's best round with the best round of either peer: interference from other work on the machine only ever slows a run down.\n")
	if noisy {
		b.WriteString("\n**Noisy run**: some server's req/s varied by more than 30% between rounds (other work on the machine?); trust the ratios less, or run again with more REPEATS.\n")
	}

	if *memPath != "" {
		lines, err := readLines(*memPath)
		if err != nil {
			return err
		}
		mem := map[string]int64{}
		var keys []string
		for _, l := range lines {
			k, v, ok := strings.Cut(l, "\t")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				continue
			}
			mem[k] = n
			keys = append(keys, k)
		}
		raw := mem["raw_bytes"]
		limit := 3*raw + 40<<20
		b.WriteString("\n## Memory (sidecar with spot, USD-M and COIN-M loaded)\n\n")
		fmt.Fprintf(&b, "Target: RSS ≤ 3 × raw sizes (%s) + 40 MiB = **%s**.\n\n", fmtBytes(raw), fmtBytes(limit))
		b.WriteString("| measure | bytes | vs target |\n|---|--:|---|\n")
		for _, k := range keys {
			if k == "raw_bytes" {
				continue
			}
			v := mem[k]
			verdict := ""
			if strings.HasPrefix(k, "rss") || strings.HasPrefix(k, "hwm") {
				verdict = fmt.Sprintf("%.2f of target %s", float64(v)/float64(limit), mark(v <= limit))
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", k, fmtBytes(v), verdict)
		}
	}

	if *prePath != "" {
		lines, err := readLines(*prePath)
		if err != nil {
			return err
		}
		b.WriteString("\n## Preflight (one request per case and server before the runs)\n\n")
		b.WriteString("| case | server | status | body bytes | Content-Encoding | same bytes as symcache |\n|---|---|--:|--:|---|---|\n")
		for _, l := range lines {
			f := strings.Split(l, "\t")
			for len(f) < 6 {
				f = append(f, "")
			}
			fmt.Fprintf(&b, "| %s |\n", strings.Join(f[:6], " | "))
		}
	}

	md := b.String()
	if _, err := io.WriteString(out, md); err != nil {
		return err
	}
	if *outPath != "" {
		return os.WriteFile(*outPath, []byte(md), 0o644)
	}
	return nil
}

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "**MISSED**"
}

// readRuns reads the runs file; cases are returned in order of appearance.
func readRuns(path string) (map[[2]string][]run, []string, error) {
	if path == "" {
		return nil, nil, fmt.Errorf("report: -runs is required")
	}
	lines, err := readLines(path)
	if err != nil {
		return nil, nil, err
	}
	runs := map[[2]string][]run{}
	var cases []string
	for i, l := range lines {
		f := strings.SplitN(l, "\t", 4)
		if len(f) != 4 {
			return nil, nil, fmt.Errorf("%s:%d: want 4 tab-separated fields", path, i+1)
		}
		var r run
		if err := json.Unmarshal([]byte(strings.TrimPrefix(f[3], "RESULT ")), &r); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %v", path, i+1, err)
		}
		if !slices.Contains(cases, f[0]) {
			cases = append(cases, f[0])
		}
		k := [2]string{f[0], f[1]}
		runs[k] = append(runs[k], r)
	}
	return runs, cases, nil
}

func summarize(rs []run) *stat {
	st := &stat{n: len(rs)}
	if len(rs) == 0 {
		return st
	}
	st.present = true
	var rps, p50, p99 []float64
	var bytes, reqs int64
	for _, r := range rs {
		rps = append(rps, r.RPS)
		p50 = append(p50, float64(r.P50))
		p99 = append(p99, float64(r.P99))
		bytes += r.Bytes
		reqs += r.Requests
		st.errs += r.errors()
	}
	st.rps, st.p50, st.p99 = median(rps), median(p50), median(p99)
	st.rpsMin, st.rpsMax = slices.Min(rps), slices.Max(rps)
	if reqs > 0 {
		st.bytesPerReq = bytes / reqs
	}
	return st
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.SortFunc(s, cmp.Compare)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtRPS(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func fmtMicros(us float64) string {
	switch {
	case us >= 1000:
		return strconv.FormatFloat(us/1000, 'f', 2, 64) + " ms"
	default:
		return strconv.FormatFloat(us, 'f', 0, 64) + " µs"
	}
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), "\r"); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, sc.Err()
}

// goBaseline serves every file under -dir at its relative path from memory.
func goBaseline(args []string) error {
	fs := flag.NewFlagSet("gobaseline", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dir := fs.String("dir", "", "folder of files; a .gz sibling is the gzip variant")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type entry struct {
		body, gz []byte
		etag     string
	}
	files := map[string]*entry{}
	err := filepath.WalkDir(*dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".gz") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		e := &entry{body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		if gz, err := os.ReadFile(p + ".gz"); err == nil {
			e.gz = gz
		}
		rel, _ := filepath.Rel(*dir, p)
		files["/"+filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := files[r.URL.Path]
		if e == nil {
			http.NotFound(w, r)
			return
		}
		hdr := w.Header()
		hdr.Set("Content-Type", "application/json")
		hdr.Set("ETag", e.etag)
		if e.gz != nil {
			hdr.Set("Vary", "Accept-Encoding")
		}
		if r.Header.Get("If-None-Match") == e.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		b := e.body
		if e.gz != nil && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			b = e.gz
			hdr.Set("Content-Encoding", "gzip")
		}
		hdr.Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	return http.ListenAndServe(*addr, h)
}
