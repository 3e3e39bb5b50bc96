package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-dir", fixtures.Path(t, "binance"), "-log", "json"}, pw)
		pw.Close()
	}()

	// The first log line says where it listens; the rest are drained.
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("no log line; run() = %d", <-done)
	}
	var first struct {
		Msg   string
		Addr  string
		Paths []string
	}
	if err := json.Unmarshal(lines.Bytes(), &first); err != nil || first.Addr == "" {
		t.Fatalf("first log line %q: want JSON with addr (%v)", lines.Bytes(), err)
	}
	if len(first.Paths) != 3 {
		t.Errorf("paths = %q, want the three exchangeInfo paths", first.Paths)
	}
	logged := make(chan []string, 1)
	go func() {
		var rest []string
		for lines.Scan() {
			rest = append(rest, lines.Text())
		}
		logged <- rest
	}()

	for _, tt := range []struct{ path, fixture string }{
		{fetchtest.COINMPath, "binance/coinm_exchangeinfo.json"},
		{fetchtest.SpotPath, "binance/spot_exchangeinfo.json"},
	} {
		resp, err := http.Get("http://" + first.Addr + tt.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		if want := fixtures.Read(t, tt.fixture); resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Errorf("GET %s = %d, %d bytes, want 200, the fixture's %d bytes", tt.path, resp.StatusCode, len(body), len(want))
		}
	}
	resp, err := http.Get("http://" + first.Addr + "/api/v3/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/v3/ping = %d, want 404", resp.StatusCode)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("run() = %d after cancel, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run() did not return after cancel")
	}
	if rest := <-logged; len(rest) != 4 || !strings.Contains(rest[0], `"status":200`) || !strings.Contains(rest[2], `"status":404`) {
		t.Errorf("logged %q, want 3 requests then stopping", rest)
	}
}

func TestRun_bad(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string // in the line written
	}{
		{"unknown flag", []string{"-nope"}, "-nope"},
		{"missing dir", []string{"-dir", "/nonexistent/binance"}, "/nonexistent/binance"},
		{"dir without recordings", []string{"-dir", "."}, "none of"},
		{"log format", []string{"-log", "xml"}, "xml"},
		{"addr", []string{"-addr", "localhost"}, "localhost"},
		{"argument", []string{"-dir", fixtures.Path(t, "binance"), "extra"}, "extra"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stderr)
			if code != 2 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("run(%q) = %d, %q, want 2 and one line containing %q", tt.args, code, stderr.String(), tt.want)
			}
		})
	}
}

func TestRun_help(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"-h"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "-dir") {
		t.Errorf("run(-h) = %d, %q, want 0 and the usage", code, stderr.String())
	}
}
