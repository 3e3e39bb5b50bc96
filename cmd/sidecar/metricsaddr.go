package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// SYMCACHE_METRICS_ADDR serves /metrics, /healthz and /readyz on a
// listener of their own: a pod's sidecar listens on 127.0.0.1 (or a Unix
// socket), where Prometheus and the kubelet cannot reach it, and the
// metrics address is what they can. Nothing else is served there: not the
// data, not the admin endpoints, not forwarding.

// opsPaths are the paths the metrics address serves.
var opsPaths = map[string]bool{"/metrics": true, "/healthz": true, "/readyz": true}

// checkMetricsAddr returns an error when addr is set and is not host:port.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	return nil
}

// serveMetrics serves h's operational paths on addr, until ctx ends.
func serveMetrics(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on the metrics address: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !opsPaths[r.URL.Path] {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				w.Write([]byte(`{"code":-1000,"msg":"Not Found: this address serves /metrics, /healthz and /readyz only."}` + "\n"))
				return
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Info("metrics and probes listening", "addr", ln.Addr().String())
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return nil
}
