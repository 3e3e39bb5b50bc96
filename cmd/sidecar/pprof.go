package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// SYMCACHE_PPROF_ADDR serves Go's profiles (net/http/pprof) on a listener
// of their own, for finding where a request's time goes under load. Off by
// default; a profile shows the process's internals, so the address must be
// loopback: anything else is a bad setting.

// checkPprofAddr returns an error when addr is set and is not a loopback
// host:port.
func checkPprofAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q is not a loopback address: profiles show the process's internals", addr)
	}
	return nil
}

// servePprof serves the profiles on addr until the process ends; a failure
// to listen is logged, and the sidecar goes on without them.
func servePprof(addr string, log *slog.Logger) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("pprof listener failed; profiles are off", "addr", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("profiles on /debug/pprof/", "addr", ln.Addr().String())
	go srv.Serve(ln)
}
