package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/symcache/symcache/version"
)

// dispatch runs the subcommand named by the first argument (version,
// healthcheck) or, without one, the sidecar itself (run); it returns the exit
// status.
func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			return runVersion(args[1:], stdout, stderr)
		case "healthcheck":
			return runHealthcheck(ctx, args[1:], getenv, stderr)
		}
	}
	return run(ctx, args, getenv, stderr)
}

// runVersion prints the build, one "key: value" line each.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "sidecar version: unexpected argument %q\n", args[0])
		return 2
	}
	b := version.Info()
	fmt.Fprintf(stdout, "version: %s\ncommit: %s\ndate: %s\ngo: %s %s\n",
		b.Version, cmp.Or(b.Commit, "unknown"), cmp.Or(b.Date, "unknown"), b.GoVersion, b.Platform)
	return 0
}

// runHealthcheck GETs the sidecar's /readyz (or -url) and returns 0 on a 200
// answer and 1 otherwise, with one line on stderr saying why. It is for
// container health checks in images without a shell or curl (Docker's
// HEALTHCHECK, Kubernetes exec probes). Every failure, a bad flag included,
// is status 1: Docker reserves 2 for health checks.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	base, socket, addrErr := localBaseURL(cmp.Or(getenv("SYMCACHE_ADDR"), "127.0.0.1:8080"))
	defaultURL := "/readyz"
	if addrErr == nil {
		defaultURL = base + "/readyz"
	}
	fs := flag.NewFlagSet("sidecar healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line below
	rawURL := fs.String("url", defaultURL, "URL to GET; a path alone, such as /healthz, is taken on the sidecar's own address (SYMCACHE_ADDR, with 0.0.0.0 or [::] probed on 127.0.0.1)")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: sidecar healthcheck [-url URL] [-timeout 2s]\n\nExits 0 when the URL answers 200, else 1 with one line saying why.\n\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "healthcheck: unexpected argument %q\n", fs.Arg(0))
		return 1
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "healthcheck: invalid -timeout: %s is not a positive duration\n", *timeout)
		return 1
	}
	target := *rawURL
	if strings.HasPrefix(target, "/") {
		if addrErr != nil {
			fmt.Fprintf(stderr, "healthcheck: invalid SYMCACHE_ADDR: %v\n", addrErr)
			return 1
		}
		target = base + target
	}
	if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "healthcheck: invalid -url %q: want http://host:port/path or a path such as /healthz\n", *rawURL)
		return 1
	}
	if err := probe(ctx, target, socket, *timeout); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	return 0
}

// socketHost is the host of the base URL of a sidecar on a Unix socket:
// a request to it goes to the socket.
const socketHost = "symcache.socket"

// localBaseURL is the URL of a sidecar listening on addr, as seen from the
// same host or pod: a wildcard address is reached on 127.0.0.1; a Unix
// socket (unix:/path) through socketHost, with its path in socket.
func localBaseURL(addr string) (base, socket string, err error) {
	la, err := parseListenAddr(addr) // as the sidecar reads it
	if err != nil {
		return "", "", err
	}
	if la.network == "unix" {
		return "http://" + socketHost, la.address, nil
	}
	host, port, _ := net.SplitHostPort(la.address)
	if port == "" {
		return "", "", fmt.Errorf("%q has no port", addr)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), "", nil
}

// probe GETs target once, without proxies or redirects, and says why the
// answer is not a 200. A target on socketHost is asked on the socket.
func probe(ctx context.Context, target, socket string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	req.Header.Set("User-Agent", "symcache-healthcheck/"+version.Version)
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if socket != "" {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			if addr == socketHost+":80" {
				return d.DialContext(ctx, "unix", socket)
			}
			return d.DialContext(ctx, network, addr)
		}
	}
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("GET %s: no answer within %s", target, timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, below
		}
		return fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	// /readyz says which market is not ready: the start of the body goes in
	// the line, on one line.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	snippet := strings.Join(strings.FieldsFunc(string(body), unicode.IsSpace), " ")
	if snippet == "" {
		return fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	return fmt.Errorf("GET %s: %s: %s", target, resp.Status, snippet)
}
