// Command replay is a fake Binance for local runs: it serves a folder of
// recorded exchangeInfo answers (spot_exchangeinfo.json,
// usdm_exchangeinfo.json, coinm_exchangeinfo.json; those present) at
// Binance's paths /api/v3/exchangeInfo, /fapi/v1/exchangeInfo and
// /dapi/v1/exchangeInfo, gzipped when the client accepts it. Any other path
// is a 404 with a Binance-shaped body.
//
//	replay -addr 127.0.0.1:9090 -dir testdata/binance
//
// Point symcache at it with BINANCE_SPOT_URL=http://127.0.0.1:9090 (and
// likewise for usdm and coinm). It stops gracefully on SIGINT or SIGTERM.
// A bad flag or folder exits with status 2 and one line on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/symcache/symcache/fetch/fetchtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run serves until ctx ends and returns the exit status: 0 after a graceful
// stop, 1 if serving failed, 2 for a bad flag or folder.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line below
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	dir := fs.String("dir", "testdata/binance", "folder of recorded answers: {spot,usdm,coinm}_exchangeinfo.json")
	logFormat := fs.String("log", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: replay [-addr host:port] [-dir folder] [-log text|json]")
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "replay: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "replay: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var log *slog.Logger
	switch *logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, nil))
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, nil))
	default:
		fmt.Fprintf(stderr, "replay: -log %q: want text or json\n", *logFormat)
		return 2
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		fmt.Fprintf(stderr, "replay: -addr %q: %v\n", *addr, err)
		return 2
	}
	h, err := fetchtest.LoadDir(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "replay: -dir: %v\n", err)
		return 2
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	srv := &http.Server{
		Handler:           logRequests(h, log),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving recorded Binance answers", "addr", ln.Addr().String(), "dir", *dir, "paths", h.Paths())

	select {
	case err := <-served:
		log.Error("serve", "err", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}

// logRequests logs each request once answered.
func logRequests(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "gzip", sw.Header().Get("Content-Encoding") == "gzip", "dur", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
