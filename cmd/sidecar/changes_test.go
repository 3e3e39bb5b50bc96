package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/internal/testutil"
	"github.com/symcache/symcache/l2/l2test"
)

// event is one Server-Sent Event: its fields, as a client reads them.
type event struct {
	id, name, data string
}

// stream is an open GET .../stream, read an event at a time.
type stream struct {
	resp   *http.Response
	lines  *bufio.Scanner
	events chan event
}

// openStream opens GET path with the headers given, and fails the test
// unless it answers 200 text/event-stream.
func openStream(t *testing.T, ctx context.Context, url string, header http.Header) *stream {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s = %d %s, want 200 text/event-stream", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{resp: resp, lines: bufio.NewScanner(resp.Body), events: make(chan event, 1024)}
	s.lines.Buffer(nil, 1<<20)
	go func() {
		defer close(s.events)
		var e event
		for s.lines.Scan() {
			line := s.lines.Text()
			switch {
			case line == "":
				s.events <- e
				e = event{}
			case strings.HasPrefix(line, ":"): // a comment
			default:
				k, v, _ := strings.Cut(line, ":")
				v = strings.TrimPrefix(v, " ")
				switch k {
				case "id":
					e.id = v
				case "event":
					e.name = v
				case "data":
					e.data += v
				}
			}
		}
	}()
	return s
}

// next returns the next event, failing the test after 30 s.
func (s *stream) next(t *testing.T) event {
	t.Helper()
	select {
	case e, ok := <-s.events:
		if !ok {
			t.Fatalf("the stream ended")
		}
		return e
	case <-time.After(30 * time.Second):
		t.Fatalf("no event within 30s")
	}
	return event{}
}

// TestRun_ChangeFeed follows the change feed end to end: two sidecars on
// one real Redis, the fake Binance switching from the USD-M recording of
// 2024-02-12 to the one of 2025-12-24; both sidecars' streams deliver the
// same changes, once each, in order, as Diff computes them from the two
// recordings; a client that reconnects with Last-Event-ID gets exactly the
// rest; a cursor from before the log started gets 410.
func TestRun_ChangeFeed(t *testing.T) {
	upstream := fetchtest.NewUpstream(t)
	redisSrv := l2test.Start(t)
	oldBody := fixtures.Read(t, "binance/usdm_exchangeinfo_2024-02-12.json")
	newBody := fixtures.Read(t, "binance/usdm_exchangeinfo.json")
	upstream.Set(exchangeinfo.USDM.Path(), fetchtest.Response{Body: oldBody})
	const token = "feed-admin-token"
	env := func() map[string]string {
		return map[string]string{
			"REDIS_URL":                 redisSrv.URL(),
			"SYMCACHE_L2_TIMEOUT":       "1s",
			"SYMCACHE_MARKETS":          "usdm",
			"BINANCE_USDM_URL":          upstream.URL,
			"SYMCACHE_REFRESH_INTERVAL": "1h", // the test refreshes
			"SYMCACHE_TTL":              "2h",
			"SYMCACHE_MAX_GROWTH":       "0", // 22 months: 5.3 times the bytes
			"SYMCACHE_MAX_SYMBOL_LOSS":  "1", // and back: 58 % of the symbols lost
			"SYMCACHE_ADMIN_TOKEN":      token,
			"SYMCACHE_DRAIN_TIMEOUT":    "1m",
		}
	}
	a := startSidecar(t, env())
	b := startSidecar(t, env())
	for _, s := range []*sidecar{a, b} {
		testutil.WaitFor(t, 10*time.Second, "the sidecar ready", func() bool {
			resp, _ := s.get(t, "/readyz")
			return resp.StatusCode == http.StatusOK
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Both follow from the end of the log: the first snapshot recorded no change.
	var streams []*stream
	for _, s := range []*sidecar{a, b} {
		st := openStream(t, ctx, "http://"+s.addr+"/v1/changes/usdm/stream", nil)
		if e := st.next(t); e.id == "" || e.data != "" {
			t.Fatalf("the stream's first block = %+v, want the cursor in force and no data", e)
		}
		streams = append(streams, st)
	}

	// Binance's answer changes; sidecar A fetches it.
	upstream.Set(exchangeinfo.USDM.Path(), fetchtest.Response{Body: newBody})
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.addr+"/admin/refresh/usdm", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /admin/refresh/usdm = %v, %v", resp, err)
	}
	resp.Body.Close()

	// What the two recordings differ by, computed here from the files.
	oldSnap, err := exchangeinfo.Parse(exchangeinfo.USDM, oldBody, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	newSnap, err := exchangeinfo.Parse(exchangeinfo.USDM, newBody, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := changes.Diff(oldSnap, newSnap)
	got := make([][]event, len(streams))
	for i, st := range streams {
		for range want {
			got[i] = append(got[i], st.next(t))
		}
	}
	var last changes.Cursor
	for k, w := range want {
		ea, eb := got[0][k], got[1][k]
		if ea != eb {
			t.Fatalf("event %d: sidecar A sent %+v, B %+v; want the same", k, ea, eb)
		}
		id, err := changes.ParseCursor(ea.id)
		if err != nil || id.Compare(last) <= 0 {
			t.Fatalf("event %d has id %q after %v: want growing ids", k, ea.id, last)
		}
		last = id
		var ch changes.Change
		if err := json.Unmarshal([]byte(ea.data), &ch); err != nil {
			t.Fatalf("event %d: %v in %s", k, err, ea.data)
		}
		if ch.ID != ea.id || ch.Kind != w.Kind || ch.Symbol != w.Symbol || ch.Filter != w.Filter || ch.Field != w.Field ||
			string(ch.Old) != string(w.Old) || string(ch.New) != string(w.New) || ch.Status != w.Status ||
			fmt.Sprint(ch.Added, ch.Removed) != fmt.Sprint(w.Added, w.Removed) || ch.To.ServerTime != newSnap.ServerTime().UnixMilli() {
			t.Fatalf("event %d = %s, want %+v", k, ea.data, w)
		}
	}
	// And nothing more: the log ends there.
	if resp, body := b.get(t, "/v1/changes/usdm?since="+last.String()); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"changes":[]`) {
		t.Errorf("GET after the last change = %d %s, want no more", resp.StatusCode, body)
	}

	// A client that reconnects with the id of the 100th change gets exactly the rest.
	k := 100
	again := openStream(t, ctx, "http://"+b.addr+"/v1/changes/usdm/stream", http.Header{"Last-Event-ID": {got[1][k-1].id}})
	if e := again.next(t); e.id != got[1][k-1].id {
		t.Fatalf("the reconnected stream's cursor = %+v, want %s", e, got[1][k-1].id)
	}
	for ; k < len(want); k++ {
		if e := again.next(t); e != got[1][k] {
			t.Fatalf("after reconnecting, event %d = %+v, want %+v", k, e, got[1][k])
		}
	}

	// A cursor from before the log started: 410, in Binance's error shape.
	for _, path := range []string{"/v1/changes/usdm?since=1-0", "/v1/changes/usdm/stream?since=1-0"} {
		resp, body := a.get(t, path)
		var e struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		}
		if resp.StatusCode != http.StatusGone || json.Unmarshal(body, &e) != nil || e.Code != -1130 || !strings.Contains(e.Msg, "Reload") {
			t.Errorf("GET %s = %d %s, want 410 telling to reload", path, resp.StatusCode, body)
		}
	}
	if n := upstream.Requests(exchangeinfo.USDM.Path()); n != 2 {
		t.Errorf("Binance was asked %d times, want 2: one warm-up, one refresh", n)
	}

	// A sidecar that stops ends its streams at once, rather than wait for
	// them until its drain timeout; their clients reconnect elsewhere.
	b.stop(t)
	if _, open := <-again.events; open {
		t.Errorf("the stream of a stopped sidecar sent more")
	}
	if strings.Contains(b.out.String(), "drain timeout reached") {
		t.Errorf("the stop waited for the drain timeout:\n%s", b.out.String())
	}

	// Across a restart: a new sidecar on the same Redis resumes the same
	// log, and records the next changes itself from the stored snapshot,
	// with no reset: A's stream, open all along, gets them in order.
	c := startSidecar(t, env())
	testutil.WaitFor(t, 10*time.Second, "the new sidecar ready", func() bool {
		resp, _ := c.get(t, "/readyz")
		return resp.StatusCode == http.StatusOK
	})
	resumed := openStream(t, ctx, "http://"+c.addr+"/v1/changes/usdm/stream", http.Header{"Last-Event-ID": {got[1][len(want)-2].id}})
	resumed.next(t) // the cursor
	if e := resumed.next(t); e != got[1][len(want)-1] {
		t.Fatalf("the restarted sidecar resumed with %+v, want %+v", e, got[1][len(want)-1])
	}
	upstream.Set(exchangeinfo.USDM.Path(), fetchtest.Response{Body: oldBody})
	req, _ = http.NewRequest(http.MethodPost, "http://"+c.addr+"/admin/refresh/usdm", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /admin/refresh/usdm on the new sidecar = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	back := changes.Diff(newSnap, oldSnap)
	for k, w := range back {
		ea, ec := streams[0].next(t), resumed.next(t)
		if ea != ec || ea.name != "" {
			t.Fatalf("after the restart, change %d: A sent %+v, the new sidecar %+v", k, ea, ec)
		}
		var ch changes.Change
		if err := json.Unmarshal([]byte(ea.data), &ch); err != nil || ch.Kind != w.Kind || ch.Symbol != w.Symbol || ch.Field != w.Field || string(ch.New) != string(w.New) {
			t.Fatalf("after the restart, change %d = %s, want %+v", k, ea.data, w)
		}
	}
}
