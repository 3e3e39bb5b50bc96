package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// load rate: latency at a steady rate, as a trading system asks, rather
// than wrk's closed loop (which slows its requests down when the server
// does, and so hides the latency a steady client would see).
//
//	load rate -url http://127.0.0.1:8080/api/v3/exchangeInfo?symbol=BTCUSDT -rate 1000 -duration 10s
//	load rate -unix /run/symcache.sock -url http://sidecar/... -rate 10000
//
// Requests are scheduled at fixed intervals (an open loop) and sent on a
// pool of kept-alive connections; each latency is measured from the time
// the request was due, not from when a connection was free, so that a
// server that falls behind shows it (no coordinated omission). It prints
// one JSON line: the rate asked and achieved, the errors, and p50, p90,
// p99, p99.9 and the maximum in microseconds.

// rateResult is the line rate prints.
type rateResult struct {
	URL      string  `json:"url"`
	Rate     float64 `json:"rate"`     // asked, requests a second
	Achieved float64 `json:"achieved"` // answered, requests a second
	Requests int     `json:"requests"` // sent
	Errors   int     `json:"errors"`   // no answer, or not the status wanted
	Late     int     `json:"late"`     // measured ones sent more than a millisecond after they were due
	// Latencies in µs from when each request was due: what a client at
	// this rate waits, the time its request waited for a connection (or
	// for this generator, when late) included.
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
	Max  float64 `json:"max_us"`
	// The same from when each was sent: the server's and the network's
	// part alone.
	SentP50   float64 `json:"sent_p50_us"`
	SentP99   float64 `json:"sent_p99_us"`
	SentP999  float64 `json:"sent_p99_9_us"`
	FirstErr  string  `json:"first_error,omitempty"`
	Duration  string  `json:"duration"`
	Conns     int     `json:"conns"`
	UnixPath  string  `json:"unix,omitempty"`
	Warmup    string  `json:"warmup"`
	Status    int     `json:"status"`
	BodyBytes int64   `json:"body_bytes"` // of the last answer
}

func rateCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("load rate", flag.ContinueOnError)
	target := fs.String("url", "", "URL to GET (required)")
	unixPath := fs.String("unix", "", "dial this Unix socket instead of the URL's host")
	rate := fs.Float64("rate", 1000, "requests a second")
	duration := fs.Duration("duration", 10*time.Second, "how long to send, after the warm-up")
	warmup := fs.Duration("warmup", 2*time.Second, "how long to send at the rate before measuring")
	conns := fs.Int("conns", 64, "the most connections (and requests in flight) at once")
	status := fs.Int("status", http.StatusOK, "the status an answer must have")
	var headers headerFlags
	fs.Var(&headers, "H", "a request header, Name: value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *target == "" || *rate <= 0 || *duration <= 0 || *conns < 1 {
		return errors.New("rate: -url, a positive -rate and -duration, and -conns >= 1 are required")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true}
	if *unixPath != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *unixPath)
		}
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, err := http.NewRequest(http.MethodGet, *target, nil)
	if err != nil {
		return err
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	res := runRate(client, req, *rate, *warmup, *duration, *conns, *status)
	res.URL, res.UnixPath, res.Conns = *target, *unixPath, *conns
	res.Duration, res.Warmup = duration.String(), warmup.String()
	return json.NewEncoder(out).Encode(res)
}

// runRate sends req at rate for warmup plus d, on at most conns requests
// in flight, and measures those due after the warm-up.
func runRate(client *http.Client, req *http.Request, rate float64, warmup, d time.Duration, conns, status int) rateResult {
	interval := time.Duration(float64(time.Second) / rate)
	total := int((warmup + d).Seconds() * rate)
	measured := int(d.Seconds() * rate)
	lat := make([]time.Duration, total)
	svc := make([]time.Duration, total)
	ok := make([]bool, total)
	var late, errs atomic.Int64
	var firstErr atomic.Value
	var lastLen atomic.Int64
	slots := make(chan struct{}, conns)
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		pace(due)
		slots <- struct{}{} // a request in flight waits here when all are busy: its latency counts it
		if i >= total-measured && time.Since(due) > time.Millisecond {
			late.Add(1)
		}
		wg.Go(func() {
			defer func() { <-slots }()
			r := req.Clone(context.Background())
			sent := time.Now()
			resp, err := client.Do(r)
			if err == nil {
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lastLen.Store(n)
				if resp.StatusCode != status {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			lat[i], svc[i] = time.Since(due), time.Since(sent)
			if err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			ok[i] = true
		})
	}
	wg.Wait()
	end := time.Now()
	var got, gotSent []time.Duration
	for i := total - measured; i < total; i++ {
		if ok[i] {
			got, gotSent = append(got, lat[i]), append(gotSent, svc[i])
		}
	}
	slices.Sort(got)
	slices.Sort(gotSent)
	res := rateResult{Rate: rate, Requests: measured, Late: int(late.Load()), Errors: measured - len(got), Status: status, BodyBytes: lastLen.Load()}
	if s, _ := firstErr.Load().(string); s != "" {
		res.FirstErr = s
	}
	measuredFrom := start.Add(time.Duration(total-measured) * interval)
	res.Achieved = float64(len(got)) / end.Sub(measuredFrom).Seconds()
	us := func(ds []time.Duration, q float64) float64 {
		if len(ds) == 0 {
			return -1 // nothing answered
		}
		return float64(ds[min(int(q*float64(len(ds))), len(ds)-1)].Microseconds())
	}
	res.P50, res.P90, res.P99, res.P999 = us(got, 0.50), us(got, 0.90), us(got, 0.99), us(got, 0.999)
	res.SentP50, res.SentP99, res.SentP999 = us(gotSent, 0.50), us(gotSent, 0.99), us(gotSent, 0.999)
	if len(got) > 0 {
		res.Max = float64(got[len(got)-1].Microseconds())
	}
	return res
}

// pace returns at due, or at once when due has passed. It sleeps: a
// timer here is late by up to a millisecond, and that lateness is in the
// latencies from due (not in those from sending). Spinning instead keeps
// the Go scheduler from polling the network often enough on a client
// pinned to one CPU: answers then wait for milliseconds (measured).
func pace(due time.Time) {
	if wait := time.Until(due); wait > 0 {
		time.Sleep(wait)
	}
}

// headerFlags collects repeated -H flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// rateReport turns the steady-rate runs of the harness (one line per run:
// case, server, rate, repeat and rate's JSON line, separated by tabs) into
// a markdown section: per case and rate, each server's medians over the
// repeats, and symcache's p99 against the better peer's (target <= 1.2),
// from sending. It appends the section to -out, and prints it.
func rateReport(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ratereport", flag.ContinueOnError)
	runsPath := fs.String("runs", "", "runs file: case<TAB>server<TAB>rate<TAB>repeat<TAB>json")
	peers := fs.String("peers", "nginx,varnish", "the servers symcache is compared with")
	outPath := fs.String("out", "", "markdown file to append to (besides stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lines, err := readLines(*runsPath)
	if err != nil {
		return err
	}
	type key struct{ c, s, rate string }
	runs := map[key][]rateResult{}
	var keys []key
	for _, l := range lines {
		f := strings.SplitN(l, "\t", 5)
		if len(f) != 5 {
			return fmt.Errorf("ratereport: bad line %q", l)
		}
		var r rateResult
		if err := json.Unmarshal([]byte(f[4]), &r); err != nil {
			return fmt.Errorf("ratereport: %q: %w", l, err)
		}
		k := key{f[0], f[1], f[2]}
		if _, seen := runs[k]; !seen {
			keys = append(keys, k)
		}
		runs[k] = append(runs[k], r)
	}
	med := func(rs []rateResult, f func(rateResult) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	var b strings.Builder
	b.WriteString("\n## Latency at a steady rate\n\n")
	b.WriteString("`load rate`: requests at a fixed rate on at most 64 connections; µs, medians over the repeats. " +
		"\"sent\": from when each request was sent (the server's part); \"due\": from when it was due (what a client at that rate waits, the generator's own lateness of up to a millisecond included). " +
		"`-unix`: over a Unix socket. Target: symcache's p99 (sent) ≤ 1.2× the better peer's.\n\n")
	b.WriteString("| case | rate/s | server | achieved/s | errors | p50 sent | p99 sent | p99.9 sent | p99 due | p99 vs best peer |\n|---|---|---|---|---|---|---|---|---|---|\n")
	peerSet := map[string]bool{}
	for _, p := range strings.Split(*peers, ",") {
		peerSet[p] = true
	}
	for _, k := range keys {
		rs := runs[k]
		p99 := med(rs, func(r rateResult) float64 { return r.SentP99 })
		vs := ""
		if strings.HasPrefix(k.s, "symcache") {
			best := math.Inf(1)
			for _, k2 := range keys {
				if k2.c == k.c && k2.rate == k.rate && peerSet[strings.TrimSuffix(k2.s, "-unix")] && strings.HasSuffix(k2.s, "-unix") == strings.HasSuffix(k.s, "-unix") {
					best = math.Min(best, med(runs[k2], func(r rateResult) float64 { return r.SentP99 }))
				}
			}
			if !math.IsInf(best, 1) && best > 0 {
				vs = fmt.Sprintf("%.2f×", p99/best)
			}
		}
		errs := 0
		for _, r := range rs {
			errs += r.Errors
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %d | %.0f | %.0f | %.0f | %.0f | %s |\n", k.c, k.rate, k.s,
			med(rs, func(r rateResult) float64 { return r.Achieved }), errs,
			med(rs, func(r rateResult) float64 { return r.SentP50 }), p99,
			med(rs, func(r rateResult) float64 { return r.SentP999 }),
			med(rs, func(r rateResult) float64 { return r.P99 }), vs)
	}
	fmt.Fprint(out, b.String())
	if *outPath == "" {
		return nil
	}
	f, err := os.OpenFile(*outPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
