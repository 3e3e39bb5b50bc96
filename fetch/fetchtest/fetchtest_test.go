package fetchtest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/fixtures"
)

// get sends a GET for path to srv with the given Accept-Encoding (none if
// empty) and no transparent decompression.
func get(t *testing.T, srv *httptest.Server, path, acceptEncoding string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func TestUpstream(t *testing.T) {
	u := NewUpstream(t)
	for _, tt := range []struct {
		path, fixture string
	}{
		{SpotPath, "binance/spot_exchangeinfo.json"},
		{USDMPath, "binance/usdm_exchangeinfo.json"},
		{COINMPath, "binance/coinm_exchangeinfo.json"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			want := fixtures.Read(t, tt.fixture)
			resp, body, err := get(t, u.Server, tt.path, "")
			if err != nil {
				t.Fatalf("GET %s: %v", tt.path, err)
			}
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
				t.Errorf("GET %s = %d, %d bytes, want 200, the fixture's %d bytes", tt.path, resp.StatusCode, len(body), len(want))
			}
			if got := u.Requests(tt.path); got != 1 {
				t.Errorf("Requests(%q) = %d, want 1", tt.path, got)
			}
		})
	}
}

func TestHandler_ServeHTTP(t *testing.T) {
	body := []byte(`{"serverTime":1,"symbols":[{"symbol":"A"}]}`)
	for _, tt := range []struct {
		name           string
		r              Response
		acceptEncoding string
		wantStatus     int
		wantGzip       bool
		wantBody       []byte
		wantErr        bool // reading the body fails
	}{
		{name: "plain", r: Response{Body: body}, wantStatus: 200, wantBody: body},
		{name: "status", r: Response{Status: 503, Body: body}, wantStatus: 503, wantBody: body},
		{name: "gzip accepted", r: Response{Body: body, Gzip: true}, acceptEncoding: "gzip", wantStatus: 200, wantGzip: true, wantBody: body},
		{name: "gzip with quality", r: Response{Body: body, Gzip: true}, acceptEncoding: "br;q=1.0, gzip;q=0.5", wantStatus: 200, wantGzip: true, wantBody: body},
		{name: "gzip refused", r: Response{Body: body, Gzip: true}, acceptEncoding: "gzip;q=0", wantStatus: 200, wantBody: body},
		{name: "gzip not asked", r: Response{Body: body, Gzip: true}, wantStatus: 200, wantBody: body},
		{name: "truncated", r: Response{Body: body, Truncate: 10}, wantStatus: 200, wantErr: true},
		{name: "truncated gzip", r: Response{Body: body, Gzip: true, Truncate: 10}, acceptEncoding: "gzip", wantStatus: 200, wantGzip: true, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHandler()
			h.Set(SpotPath, tt.r)
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, got, err := get(t, srv, SpotPath, tt.acceptEncoding)
			if resp == nil {
				t.Fatalf("GET: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if gz := resp.Header.Get("Content-Encoding") == "gzip"; gz != tt.wantGzip {
				t.Errorf("gzipped = %v, want %v", gz, tt.wantGzip)
			}
			if tt.wantErr {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("reading body: err = %v, want %v", err, io.ErrUnexpectedEOF)
				}
				return
			}
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if tt.wantGzip {
				zr, err := gzip.NewReader(bytes.NewReader(got))
				if err != nil {
					t.Fatal(err)
				}
				if got, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, tt.wantBody) {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
		})
	}
}

func TestHandler_notFound(t *testing.T) {
	h := NewHandler()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, body, err := get(t, srv, "/nope", "")
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Code *int    `json:"code"`
		Msg  *string `json:"msg"`
	}
	if resp.StatusCode != http.StatusNotFound || json.Unmarshal(body, &e) != nil || e.Code == nil || e.Msg == nil {
		t.Errorf("GET /nope = %d %s, want 404 with {code, msg}", resp.StatusCode, body)
	}
	if got := h.Requests("/nope"); got != 1 {
		t.Errorf("Requests(/nope) = %d, want 1", got)
	}
}

func TestHandler_delay(t *testing.T) {
	h := NewHandler()
	h.Set(SpotPath, Response{Body: []byte("{}"), Delay: time.Minute})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+SpotPath, nil)
	start := time.Now()
	resp, err := srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("GET = %v, want %v", err, context.DeadlineExceeded)
	}
	// srv.Close (deferred) waits for the handler, which must see the
	// request's context end rather than sleep for its minute.
	srv.Close()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("handler returned after %v, want soon after the client gave up", d)
	}
}

func TestHandler_setWhileServing(t *testing.T) {
	h := NewHandler()
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				if i%2 == 0 {
					h.Set(SpotPath, Response{Body: []byte{'0' + byte(j%10)}, Gzip: j%2 == 0})
					continue
				}
				resp, err := srv.Client().Get(srv.URL + SpotPath)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if got := h.Requests(SpotPath); got != 80 {
		t.Errorf("Requests() = %d, want 80", got)
	}
}

func TestLoadDir(t *testing.T) {
	only := t.TempDir()
	if err := os.WriteFile(filepath.Join(only, "coinm_exchangeinfo.json"), []byte(`{"x":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := LoadDir(only)
	if err != nil {
		t.Fatalf("LoadDir(one file) = %v, want nil", err)
	}
	if got := h.Paths(); len(got) != 1 || got[0] != COINMPath {
		t.Errorf("Paths() = %q, want [%s]", got, COINMPath)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for path, want := range map[string]int{COINMPath: 200, SpotPath: 404, USDMPath: 404} {
		resp, _, err := get(t, srv, path, "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}

	file := filepath.Join(only, "coinm_exchangeinfo.json")
	for _, tt := range []struct{ name, dir, want string }{
		{"empty dir", t.TempDir(), "none of"},
		{"missing dir", filepath.Join(only, "nope"), "no such file"},
		{"a file", file, "not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadDir(tt.dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadDir(%q) = %v, want an error containing %q", tt.dir, err, tt.want)
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"deflate, gzip", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"gzip;q=0.001", true},
		{"x-gzip", false},
		{"identity", false},
	} {
		h := http.Header{}
		if tt.v != "" {
			h.Set("Accept-Encoding", tt.v)
		}
		if got := acceptsGzip(h); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
