// Command load is the helper of bench/load.sh, the load harness
// of bench/README.md. The script starts the servers and runs wrk; this program
// does the parts that are awkward in shell:
//
//	load freeports N                 print N free loopback TCP ports
//	load report [flags]              turn the wrk results into the markdown report
//	load gobaseline -addr A -dir D   serve D's files from memory with plain net/http
//	                [-contract]      ... with the sidecar's headers and timeouts
//	                [-unix P]        ... also on the Unix socket P
//	load fakebinance -addr A -dir D  a fake Binance for the forwarding cases
//	load goproxy -addr A -upstream U a bare httputil.ReverseProxy to U
//	load rate -url U -rate R         latency at a steady rate (rate.go)
//	load ratereport -runs F          the markdown of the harness's steady-rate runs
//
// gobaseline is the floor of a Go server on this machine: net/http, no
// router, no cache lookups, the bytes from memory, ETag/304 and the .gz
// sibling for clients that accept gzip. It is informational: the report
// shows it but never counts it as a peer. With -contract (the harness's
// gocontract) it also sends the headers the sidecar's answers carry
// (X-Cache, Age, Cache-Control, Last-Modified, and on spot answers the
// used weight, which the sidecar sends only in the minute after an
// upstream request) and has the sidecar's server timeouts: the floor of a Go server keeping symcache's contract, so that
// the difference between the two floors is the contract's cost and the
// rest is symcache's own work.
//
// fakebinance is the upstream of the forwarding cases: the recorded
// exchangeInfo answers of -dir, plain or gzipped like cmd/replay's (so the
// sidecar loads its cache from it), and two small answers from memory with
// Binance's headers, GET /api/v3/time and GET /api/v3/ticker/price?symbol=BTCUSDT.
// The sidecar, nginx's proxy_pass and the direct runs all ask it.
//
// goproxy is the floor of a Go forwarder, as gobaseline is of a Go server:
// httputil.ReverseProxy with a buffer pool and kept-alive connections, no
// router, no rate-limit gate, no metrics. It is informational too.
//
// report reads the runs file the script writes (one line per wrk run:
// case, server, repeat and the JSON line of bench/load/report.lua, separated
// by tabs), takes the median of each case and server over the repeats, and
// compares symcache with the better peer: throughput ratio = symcache req/s /
// the highest peer req/s (target >= 1.0), p99 ratio = symcache p99 / the
// lowest peer p99 (target <= 1.2). The forwarding cases (-forward) are
// judged apart, against their own targets: symcache's req/s >= 0.8 x nginx's
// proxy_pass (-forward-peer) to the same fake Binance, and symcache's p50 at
// most 100 µs above the fake's own (-direct), per round. It prints the
// markdown and writes it to -out.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: load freeports N | load report [flags] | load gobaseline [flags] | load fakebinance [flags] | load goproxy [flags]")
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
	case "fakebinance":
		err = fakeBinance(os.Args[2:])
	case "goproxy":
		err = goProxy(os.Args[2:])
	case "rate":
		err = rateCmd(os.Args[2:], os.Stdout)
	case "ratereport":
		err = rateReport(os.Args[2:], os.Stdout)
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
	Round      int     `json:"-"` // the repeat it belongs to, from the runs file
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
	fwdCases := fs.String("forward", "forward,forward-1", "the forwarding cases, judged against their own targets")
	fwdPeer := fs.String("forward-peer", "nginx", "the proxy symcache's forwarding is compared with")
	direct := fs.String("direct", "direct", "the server name of the fake Binance asked directly")
	floor := fs.String("forward-floor", "goproxy", "the bare Go forwarder, shown when it ran")
	floors := fs.String("floors", "", "the Go servers symcache is judged against besides its peers (gobaseline,gocontract), when they ran")
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
	isForward := func(c string) bool { return slices.Contains(strings.Split(*fwdCases, ","), c) }
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
			if i == 0 && under.present && bestName != "" && !isForward(c) {
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
	if fl := floorReport(cases, runs, stats, isForward, order[0], strings.Split(*floors, ",")); fl != "" {
		b.WriteString(fl)
	}
	if fwd := forwardReport(cases, runs, stats, isForward, order[0], *fwdPeer, *direct, *floor); fwd != "" {
		b.WriteString(fwd)
	}
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
		if r.Round, err = strconv.Atoi(f[2]); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: repeat %q is not a number", path, i+1, f[2])
		}
		if !slices.Contains(cases, f[0]) {
			cases = append(cases, f[0])
		}
		k := [2]string{f[0], f[1]}
		runs[k] = append(runs[k], r)
	}
	return runs, cases, nil
}

// floorTarget is the least throughput symcache must reach against a Go
// floor (the first of -floors).
const floorTarget = 0.95

// floorReport judges under against the Go servers of floors, those that
// ran: per case, the median over rounds of the round's ratio of req/s
// (the servers run interleaved, so a round's ratio is the least disturbed
// by other work on the machine), and the ratio of best rounds. The first
// floor carries the target.
func floorReport(cases []string, runs map[[2]string][]run, stats map[[2]string]*stat, isForward func(string) bool, under string, floors []string) string {
	var ran []string
	for _, f := range floors {
		for _, c := range cases {
			if st := stats[[2]string{c, f}]; st != nil && st.present && !slices.Contains(ran, f) {
				ran = append(ran, f)
			}
		}
	}
	if len(ran) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Against Go's floor (target: ≥ %.2f× %s)\n\n", floorTarget, floors[0])
	b.WriteString("Ratios of req/s: the median over rounds of each round's ratio, and the ratio of the best rounds.\n\n")
	b.WriteString("| case | " + under + " req/s |")
	for _, f := range ran {
		fmt.Fprintf(&b, " %s req/s | ÷ %s (rounds) | (best rounds) |", f, f)
	}
	b.WriteString("\n|---|--:|" + strings.Repeat("--:|---|---|", len(ran)) + "\n")
	for _, c := range cases {
		u := stats[[2]string{c, under}]
		if isForward(c) || u == nil || !u.present {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", c, fmtRPS(u.rps))
		for _, f := range ran {
			st := stats[[2]string{c, f}]
			if st == nil || !st.present {
				b.WriteString(" – | – | – |")
				continue
			}
			var ratios []float64
			for _, ur := range runs[[2]string{c, under}] {
				for _, fr := range runs[[2]string{c, f}] {
					if fr.Round == ur.Round && fr.RPS > 0 {
						ratios = append(ratios, ur.RPS/fr.RPS)
					}
				}
			}
			r, best := median(ratios), u.rpsMax/st.rpsMax
			judged := func(x float64) string {
				if f != floors[0] {
					return fmt.Sprintf("%.2f×", x)
				}
				return fmt.Sprintf("%.2f× %s", x, mark(x >= floorTarget))
			}
			fmt.Fprintf(&b, " %s | %s | %s |", fmtRPS(st.rps), judged(r), judged(best))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// forwardReport is the section of the forwarding cases: the sidecar
// forwarding a small GET to the fake Binance, against peer (nginx's
// proxy_pass to the same fake) and the fake asked directly. Targets:
// throughput >= 0.8 x peer, and p50 at most 100 µs above direct's. The p50
// differences are per round (the three ran one after the other), then the
// median over rounds.
func forwardReport(cases []string, runs map[[2]string][]run, stats map[[2]string]*stat, isForward func(string) bool, under, peer, direct, floor string) string {
	var floors []string
	var b strings.Builder
	for _, c := range cases {
		if !isForward(c) {
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "\n## Forwarding (a small GET: %s and %s in front of the same fake Binance, and the fake asked directly)\n\n", under, peer)
			fmt.Fprintf(&b, "Targets: throughput ≥ 0.8× %s; p50 ≤ 100 µs above %s's (median over rounds of the per-round difference; at one connection, since with many p50 is mostly queueing).\n\n", peer, direct)
			fmt.Fprintf(&b, "| case | %s req/s | %s req/s | %s req/s | throughput ÷ %s (medians) | (best rounds) | p50 %s / %s / %s | p50 − %s: %s | p50 − %s: %s | p99 %s / %s / %s |\n", under, peer, direct, peer,
				direct, under, peer, direct, under, direct, peer, direct, under, peer)
			b.WriteString("|---|--:|--:|--:|---|---|--:|--:|--:|--:|\n")
		}
		u, p, d := stats[[2]string{c, under}], stats[[2]string{c, peer}], stats[[2]string{c, direct}]
		if u == nil || p == nil || d == nil || !u.present || !p.present || !d.present {
			fmt.Fprintf(&b, "| %s | missing runs | | | | | | | | |\n", c)
			continue
		}
		ratio, best := u.rps/p.rps, u.rpsMax/p.rpsMax
		over := func(s string) float64 { // median over rounds of p50(s) - p50(direct)
			byRound := map[int]int64{}
			for _, r := range runs[[2]string{c, direct}] {
				byRound[r.Round] = r.P50
			}
			var diffs []float64
			for _, r := range runs[[2]string{c, s}] {
				if dp, ok := byRound[r.Round]; ok {
					diffs = append(diffs, float64(r.P50-dp))
				}
			}
			if len(diffs) == 0 {
				return 0
			}
			return median(diffs)
		}
		uo, po := over(under), over(peer)
		rpsMark, p50Mark := "", ""
		if c == "forward-1" {
			p50Mark = " " + mark(uo <= 100)
		} else {
			rpsMark = " " + mark(ratio >= 0.8)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | **%.2f×**%s | %.2f× | %s / %s / %s | **%s**%s | %s | %s / %s / %s |\n", c,
			fmtRPS(u.rps), fmtRPS(p.rps), fmtRPS(d.rps), ratio, rpsMark, best,
			fmtMicros(d.p50), fmtMicros(u.p50), fmtMicros(p.p50), fmtSignedMicros(uo), p50Mark, fmtSignedMicros(po),
			fmtMicros(d.p99), fmtMicros(u.p99), fmtMicros(p.p99))
		if f := stats[[2]string{c, floor}]; f != nil && f.present {
			floors = append(floors, fmt.Sprintf("`%s`: %s req/s = %.2f× %s, %.2f× of it for %s; p50 %s (%s − %s: %s)", c,
				fmtRPS(f.rps), f.rps/p.rps, peer, u.rps/f.rps, under, fmtMicros(f.p50), floor, direct, fmtSignedMicros(over(floor))))
		}
	}
	if len(floors) > 0 {
		fmt.Fprintf(&b, "\n%s (bare httputil.ReverseProxy, the floor of a Go forwarder; not a peer): %s.\n", floor, strings.Join(floors, "; "))
	}
	if b.Len() > 0 {
		b.WriteString("\nThe throughput target is judged on `forward` (many connections), the p50 target on `forward-1` (one connection, one request at a time). The fake runs on the servers' CPU: every forwarded request also costs it one answer of the fake.\n")
	}
	return b.String()
}

func fmtSignedMicros(us float64) string {
	if us < 0 {
		return "−" + fmtMicros(-us)
	}
	return "+" + fmtMicros(us)
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
	contract := fs.Bool("contract", false, "send the sidecar's headers and use its server timeouts (gocontract)")
	unixPath := fs.String("unix", "", "also serve on a Unix socket at this path (removed first if it exists)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type entry struct {
		body, gz []byte
		etag     string
	}
	// The headers the sidecar sends besides gobaseline's, made as a careful
	// Go handler would: values made once where they can be, canonical keys,
	// no table of Age values.
	started := time.Now()
	lastModified := []string{started.UTC().Format(http.TimeFormat)}
	hitL1 := []string{"HIT-L1"}
	// The sidecar's spot upstream in the harness (fakebinance) reports its
	// used weight, which the sidecar repeats on spot answers in the minute
	// after an upstream request (the forwarding cases make them): always
	// here, so gocontract does at least the sidecar's header work.
	weight := []string{"2"}
	isSpot := func(path string) bool {
		return strings.HasPrefix(path, "/api/v3/") || strings.HasPrefix(path, "/v1/symbols/spot/") || strings.HasPrefix(path, "/q/spot-")
	}
	const ttl = 2 * time.Hour
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
		if *contract {
			age := time.Since(started)
			hdr["X-Cache"] = hitL1
			hdr["Age"] = []string{strconv.FormatInt(int64(age/time.Second), 10)}
			hdr["Cache-Control"] = []string{"max-age=" + strconv.FormatInt(int64((ttl-age)/time.Second), 10)}
			hdr["Last-Modified"] = lastModified
			if isSpot(r.URL.Path) {
				hdr["X-Mbx-Used-Weight"], hdr["X-Mbx-Used-Weight-1m"] = weight, weight
			}
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
	srv := &http.Server{Addr: *addr, Handler: h}
	if *contract {
		// The sidecar's timeouts; its per-answer write deadline is a
		// WriteTimeout here, as a plain Go server would bound its writes.
		srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout = 5*time.Second, 10*time.Second, 2*time.Minute
		srv.WriteTimeout, srv.MaxHeaderBytes = 70*time.Second, 64<<10
	}
	if *unixPath != "" {
		os.Remove(*unixPath)
		ln, err := net.Listen("unix", *unixPath)
		if err != nil {
			return err
		}
		go srv.Serve(ln)
	}
	return srv.ListenAndServe()
}

// fakeBinance serves the forwarding cases' small answers and the recorded
// exchangeInfo answers of -dir. cmd/replay is not used: it answers only
// exchangeInfo, logs every request, and its fetchtest.Handler keeps a record
// of each one, which under load would measure the fake rather than the
// proxies in front (and this helper imports no project package).
func fakeBinance(args []string) error {
	fs := flag.NewFlagSet("fakebinance", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	dir := fs.String("dir", "testdata/binance", "folder of recorded exchangeInfo answers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	recorded, err := loadRecordings(*dir)
	if err != nil {
		return err
	}
	// Binance's answer to GET /api/v3/ticker/price?symbol=BTCUSDT, and the
	// headers it sends with every answer (the weights are those of one
	// request). The slices are shared by all answers and never modified.
	price := []byte(`{"symbol":"BTCUSDT","price":"97123.45000000"}`)
	badSymbol := []byte(`{"code":-1121,"msg":"Invalid symbol."}`)
	contentType := []string{"application/json;charset=UTF-8"}
	weight := []string{"2"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		status := http.StatusOK
		switch r.URL.Path {
		case "/api/v3/time":
			body = strconv.AppendInt([]byte(`{"serverTime":`), time.Now().UnixMilli(), 10)
			body = append(body, '}')
		case "/api/v3/ticker/price":
			body = price
			if r.URL.RawQuery != "symbol=BTCUSDT" {
				body, status = badSymbol, http.StatusBadRequest
			}
		default:
			rec := recorded[r.URL.Path]
			if rec == nil {
				body, status = []byte(`{"code":-1000,"msg":"fakebinance: no answer for this path"}`), http.StatusNotFound
				break
			}
			w.Header().Set("Vary", "Accept-Encoding")
			body = rec.body
			if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				body = rec.gz
				w.Header().Set("Content-Encoding", "gzip")
			}
		}
		hdr := w.Header()
		hdr["Content-Type"] = contentType
		hdr["X-Mbx-Used-Weight"] = weight
		hdr["X-Mbx-Used-Weight-1m"] = weight
		hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.WriteHeader(status)
		w.Write(body)
	})
	return http.ListenAndServe(*addr, h)
}

// recording is one recorded exchangeInfo answer, plain and gzipped.
type recording struct{ body, gz []byte }

// loadRecordings reads dir's {spot,usdm,coinm}_exchangeinfo.json (those
// present, at least one) by Binance path.
func loadRecordings(dir string) (map[string]*recording, error) {
	recs := map[string]*recording{}
	for path, name := range map[string]string{
		"/api/v3/exchangeInfo":  "spot_exchangeinfo.json",
		"/fapi/v1/exchangeInfo": "usdm_exchangeinfo.json",
		"/dapi/v1/exchangeInfo": "coinm_exchangeinfo.json",
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(b) // writes to a bytes.Buffer do not fail
		zw.Close()
		recs[path] = &recording{body: b, gz: gz.Bytes()}
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("fakebinance: no recorded exchangeInfo answer in %s", dir)
	}
	return recs, nil
}

// goProxy forwards every request to -upstream with a bare
// httputil.ReverseProxy: the floor of a Go forwarder on this machine.
func goProxy(args []string) error {
	fs := flag.NewFlagSet("goproxy", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	upstream := fs.String("upstream", "", "base URL to forward to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("goproxy: -upstream %q is not a base URL", *upstream)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport:  &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		BufferPool: &bufferPool{},
	}
	return http.ListenAndServe(*addr, rp)
}

// bufferPool reuses the ReverseProxy's 32 KB copy buffers.
type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) Get() []byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }
