package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

// TestRunRate: every request due is counted once; a latency is never less
// than the server's own delay; a wrong status is an error; a Unix socket
// is dialled when asked.
func TestRunRate(t *testing.T) {
	const delay = 3 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ok"))
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	res := runRate(client, req, 200, 100*time.Millisecond, 500*time.Millisecond, 8, http.StatusOK)
	if res.Requests != 100 || res.Errors != 0 || res.BodyBytes != 2 {
		t.Errorf("runRate = %+v; want 100 requests measured, no error, 2-byte answers", res)
	}
	if res.P50 < float64(delay.Microseconds()) || res.SentP50 < float64(delay.Microseconds()) || res.P50 < res.SentP50 {
		t.Errorf("p50 %v µs, sent p50 %v µs; want both at least the server's %v, from due no less than from sending", res.P50, res.SentP50, delay)
	}

	bad, _ := http.NewRequest(http.MethodGet, srv.URL+"/missing", nil)
	if res := runRate(client, bad, 200, 0, 100*time.Millisecond, 8, http.StatusOK); res.Errors != res.Requests || res.FirstErr != "status 404" {
		t.Errorf("runRate of a 404 = %+v; want every request an error", res)
	}

	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	us := &http.Server{Handler: h}
	go us.Serve(ln)
	defer us.Shutdown(context.Background())
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	ureq, _ := http.NewRequest(http.MethodGet, "http://socket/", nil)
	if res := runRate(uc, ureq, 200, 0, 100*time.Millisecond, 4, http.StatusOK); res.Requests != 20 || res.Errors != 0 {
		t.Errorf("runRate over a socket = %+v; want 20 answered", res)
	}
}
