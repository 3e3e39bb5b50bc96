package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/demo"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/internal/fixtures"
)

// TestRecordings_MatchTestdata keeps the recordings built in equal to
// testdata/binance: each decompresses to exactly its file's bytes, and its
// size is that file's. After a recording there changes, run go generate
// ./demo.
func TestRecordings_MatchTestdata(t *testing.T) {
	recs, err := demo.Recordings()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(exchangeinfo.Markets()) {
		t.Fatalf("Recordings() = %d recordings, want one per market", len(recs))
	}
	for i, r := range recs {
		if m := exchangeinfo.Markets()[i]; r.Market != m || r.Name != string(m)+"_exchangeinfo.json" {
			t.Errorf("recording %d = %s %s, want %s and its file", i, r.Market, r.Name, m)
		}
		want := fixtures.Read(t, "binance/"+r.Name)
		rc, err := r.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Errorf("%s: decompressing: %v", r.Name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s built in = %d bytes, not testdata/binance/%s (%d bytes): run go generate ./demo", r.Name, len(got), r.Name, len(want))
		}
		if r.Size != int64(len(want)) {
			t.Errorf("%s: Size = %d, want %d", r.Name, r.Size, len(want))
		}
	}
}

// TestRecordings_NothingElse: the folder of recordings holds the three
// gzip files and nothing else, so that the binary carries no stray file.
func TestRecordings_NothingElse(t *testing.T) {
	var got []string
	err := filepath.WalkDir("recordings", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, d.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"coinm_exchangeinfo.json.gz", "spot_exchangeinfo.json.gz", "usdm_exchangeinfo.json.gz"}
	if slices.Sort(got); !slices.Equal(got, want) {
		t.Errorf("recordings/ = %v, want %v", got, want)
	}
}

// TestRecordings_ServerTime: each recording's date is its answer's
// serverTime, as a full decode of the file reads it.
func TestRecordings_ServerTime(t *testing.T) {
	recs, err := demo.Recordings(exchangeinfo.COINM, exchangeinfo.Spot)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Market != exchangeinfo.COINM || recs[1].Market != exchangeinfo.Spot {
		t.Fatalf("Recordings(coinm, spot) = %+v, want those two in that order", recs)
	}
	for _, r := range recs {
		var body struct{ ServerTime int64 }
		if err := json.Unmarshal(fixtures.Read(t, "binance/"+r.Name), &body); err != nil {
			t.Fatal(err)
		}
		if want := time.UnixMilli(body.ServerTime).UTC(); !r.ServerTime.Equal(want) || r.ServerTime.Location() != time.UTC {
			t.Errorf("%s: ServerTime = %v, want %v in UTC", r.Name, r.ServerTime, want)
		}
	}
	// The dates testdata/binance/SOURCES.md gives.
	if got := recs[1].ServerTime.Format(time.DateTime); got != "2023-09-08 15:06:01" {
		t.Errorf("spot ServerTime = %s, want 2023-09-08 15:06:01 (SOURCES.md)", got)
	}
	if _, err := demo.Recordings("options"); err == nil {
		t.Error("Recordings(options) = nil error, want one")
	}
}

func TestNotice(t *testing.T) {
	recs, err := demo.Recordings()
	if err != nil {
		t.Fatal(err)
	}
	const want = "demo data: Binance answers recorded 2023-09-08 (spot), 2025-12-24 (usdm), 2024-02-12 (coinm), not live"
	if got := demo.Notice(recs); got != want {
		t.Errorf("Notice = %q, want %q", got, want)
	}
	recs, _ = demo.Recordings(exchangeinfo.USDM)
	if got, want := demo.Notice(recs), "demo data: Binance answers recorded 2025-12-24 (usdm), not live"; got != want {
		t.Errorf("Notice(usdm) = %q, want %q", got, want)
	}
}

func TestTransport(t *testing.T) {
	client := &http.Client{Transport: demo.Transport()}
	for _, m := range exchangeinfo.Markets() {
		resp, err := client.Get(demo.BaseURL + m.Path())
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fixtures.Read(t, "binance/"+string(m)+"_exchangeinfo.json")
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) || resp.ContentLength != int64(len(want)) {
			t.Errorf("GET %s = %d, %d bytes (Content-Length %d), %v; want 200 and the recording's %d bytes", m.Path(), resp.StatusCode, len(body), resp.ContentLength, err, len(want))
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("GET %s: Content-Type %q, want JSON", m.Path(), ct)
		}
	}

	resp, err := client.Head(demo.BaseURL + exchangeinfo.USDM.Path())
	if err != nil || resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(fixtures.Read(t, "binance/usdm_exchangeinfo.json"))) {
		t.Errorf("HEAD %s = %v, %v; want 200 with the recording's length", exchangeinfo.USDM.Path(), resp, err)
	}

	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/api/v3/ping", http.StatusNotFound},
		{http.MethodPost, "/api/v3/order", http.StatusNotFound},
		{http.MethodPost, exchangeinfo.Spot.Path(), http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tt.method, demo.BaseURL+tt.path, strings.NewReader("symbol=BTCUSDT"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Code int
			Msg  string
		}
		if resp.StatusCode != tt.status || json.Unmarshal(body, &e) != nil || e.Code != -1000 || e.Msg == "" {
			t.Errorf("%s %s = %d %s, want %d and Binance's error shape", tt.method, tt.path, resp.StatusCode, body, tt.status)
		}
	}

	// Anything but the replay's own host is refused, never sent.
	for _, u := range []string{"https://api.binance.com" + exchangeinfo.Spot.Path(), "http://127.0.0.1:1/api/v3/exchangeInfo", "https://replay.demo.invalid" + exchangeinfo.Spot.Path()} {
		if resp, err := client.Get(u); err == nil || !strings.Contains(err.Error(), "nothing was sent") {
			t.Errorf("GET %s = %v, %v; want an error saying nothing was sent", u, resp, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, demo.BaseURL+exchangeinfo.Spot.Path(), nil)
	if _, err := client.Do(req); err == nil {
		t.Error("GET with a canceled context = nil error, want one")
	}
}

// TestGenerate: go generate's program writes the same recordings, so that
// the one in the repository is the one that made them.
func TestGenerate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go run")
	}
	dir := t.TempDir()
	// gen.go reads ../testdata/binance and writes recordings/: give it both.
	work := filepath.Join(dir, "demo")
	if err := os.MkdirAll(filepath.Join(work, "recordings"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(fixtures.Path(t, "binance")), filepath.Join(dir, "testdata")); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "gen.go"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "gen.go")
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen.go: %v\n%s", err, out)
	}
	for _, m := range exchangeinfo.Markets() {
		n := string(m) + "_exchangeinfo.json.gz"
		got, err := os.ReadFile(filepath.Join(work, "recordings", n))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join("recordings", n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, committed) {
			// Another Go release may compress differently: what matters,
			// the decompressed bytes, TestRecordings_MatchTestdata checks.
			t.Logf("%s: go generate writes %d bytes, the repository holds %d (a different compressor?)", n, len(got), len(committed))
		}
	}
}
