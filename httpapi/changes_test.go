package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/changes"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
)

const usdmChanges = "/v1/changes/usdm"

// changePage is the body of GET /v1/changes/{market}.
type changePage struct {
	Market  string            `json:"market"`
	Changes []json.RawMessage `json:"changes"`
	Next    string            `json:"next"`
}

// changedWorld returns a Cache serving USD-M whose log holds the changes
// between the recording and an edit of it: one symbol's status (to a
// string with characters JSON could escape), one tick size, one symbol
// gone. It returns the end of the log before them.
func changedWorld(t testing.TB) (*world, *symcache.Cache, changes.Cursor) {
	t.Helper()
	w := newWorld(t, false)
	c := w.cache(exchangeinfo.USDM)
	body := string(fixtures.Read(t, "binance/usdm_exchangeinfo.json"))
	w.upstream.Set(exchangeinfo.USDM.Path(), fetchtest.Response{Body: []byte(body)})
	if _, err := c.Refresh(context.Background(), exchangeinfo.USDM); err != nil {
		t.Fatal(err)
	}
	start, err := c.Changes(context.Background(), exchangeinfo.USDM, symcache.ChangeQuery{FromEnd: true})
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(body, `"status": "TRADING"`, `"status": "BREAK&<x>"`, 1)         // BTCUSDT
	edited = strings.Replace(edited, `"tickSize": "0.01"`, `"tickSize": "0.001"`, 1)           // ETHUSDT's
	edited = strings.Replace(edited, `"symbol": "BCHUSDT"`, `"symbol": "BCHUSDT_GONE_NOW"`, 1) // delisted, and one listed
	w.upstream.Set(exchangeinfo.USDM.Path(), fetchtest.Response{Body: []byte(edited)})
	w.clock.Advance(time.Second)
	if _, err := c.Refresh(context.Background(), exchangeinfo.USDM); err != nil {
		t.Fatal(err)
	}
	return w, c, start.Next
}

func getChanges(t *testing.T, srv *server, target string) changePage {
	t.Helper()
	resp, body := srv.get(target, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", target, resp.StatusCode, body)
	}
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		t.Errorf("GET %s: Content-Type %q, Cache-Control %q; want application/json, no-store", target, ct, cc)
	}
	var p changePage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET %s: %v in %s", target, err, body)
	}
	return p
}

func TestChanges_List(t *testing.T) {
	w, c, start := changedWorld(t)
	srv := w.server(c, nil)

	end := getChanges(t, srv, usdmChanges)
	if end.Market != "usdm" || len(end.Changes) != 0 || end.Next == start.String() {
		t.Fatalf("GET %s = %+v, want no changes and the end of the log", usdmChanges, end)
	}
	all := getChanges(t, srv, usdmChanges+"?since="+start.String())
	var kinds []string
	for _, raw := range all.Changes {
		var ch changes.Change
		if err := json.Unmarshal(raw, &ch); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, string(ch.Kind)+" "+ch.Symbol+" "+ch.Field)
	}
	if got := strings.Join(kinds, ", "); got != "delisted BCHUSDT , listed BCHUSDT_GONE_NOW , status BTCUSDT status, filter ETHUSDT tickSize" {
		t.Fatalf("changes = %s", got)
	}
	if all.Next != end.Next {
		t.Errorf("next after every change = %s, want the end %s", all.Next, end.Next)
	}
	if !strings.Contains(string(all.Changes[2]), `"new":"BREAK&<x>"`) {
		t.Errorf("the status change = %s, want Binance's bytes unescaped", all.Changes[2])
	}

	// Page by page: the same changes.
	var paged []json.RawMessage
	for next := start.String(); ; {
		p := getChanges(t, srv, usdmChanges+"?limit=1&since="+next)
		paged = append(paged, p.Changes...)
		if len(p.Changes) < 1 {
			break
		}
		next = p.Next
	}
	if len(paged) != len(all.Changes) {
		t.Errorf("pages of 1 gave %d changes, want %d", len(paged), len(all.Changes))
	}
	// Filters, case-insensitive, as lists.
	if p := getChanges(t, srv, usdmChanges+"?since=0&kind=Delisted,LISTED"); len(p.Changes) != 2 {
		t.Errorf("kind=Delisted,LISTED: %d changes, want 2", len(p.Changes))
	}
	if p := getChanges(t, srv, usdmChanges+"?since=0&symbol=ethusdt,%20btcusdt&kind=filter"); len(p.Changes) != 1 || p.Next != end.Next {
		t.Errorf("symbol=ethusdt,btcusdt&kind=filter: %+v, want 1 change and next the end", p)
	}
	if resp, body := srv.do(http.MethodHead, usdmChanges+"?since=0", nil); resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD = %d with %d bytes, want 200 and none", resp.StatusCode, len(body))
	}
}

func TestChanges_BadInput(t *testing.T) {
	w, c, _ := changedWorld(t)
	srv := w.server(c, nil)
	end := getChanges(t, srv, usdmChanges).Next
	past, _ := changes.ParseCursor(end)
	past.Seq++
	for _, tt := range []struct {
		target string
		hdr    http.Header
		status int
		code   int
		names  string // what the message must name
	}{
		{"/v1/changes/nowhere", nil, 400, -1130, "'market'"},
		{"/v1/changes/coinm", nil, 404, -1000, "not served"},
		{usdmChanges + "?since=abc", nil, 400, -1130, "'since'"},
		{usdmChanges + "?since=1-2-3", nil, 400, -1130, "'since'"},
		{usdmChanges + "?since=", nil, 400, -1130, "'since'"},
		{usdmChanges + "?kind=bogus", nil, 400, -1130, "'kind'"},
		{usdmChanges + "?kind=listed,", nil, 400, -1130, "'kind'"},
		{usdmChanges + "?symbol=,", nil, 400, -1130, "'symbol'"},
		{usdmChanges + "?limit=0", nil, 400, -1130, "'limit'"},
		{usdmChanges + "?limit=5001", nil, 400, -1130, "'limit'"},
		{usdmChanges + "?limit=ten", nil, 400, -1130, "'limit'"},
		{usdmChanges + "?cursor=1", nil, 400, -1104, "'cursor'"},
		{usdmChanges + "?since=0&since=1", nil, 400, -1101, "'since'"},
		{usdmChanges + "?since=1-0", nil, 410, -1130, "Reload"},
		{usdmChanges + "?since=" + past.String(), nil, 410, -1130, "Reload"},
		{usdmChanges + "/stream?limit=5", nil, 400, -1104, "'limit'"},
		{usdmChanges + "/stream", http.Header{"Last-Event-ID": {"x"}}, 400, -1130, "'Last-Event-ID'"},
		{usdmChanges + "/stream", http.Header{"Last-Event-ID": {"1-0"}}, 410, -1130, "'Last-Event-ID'"},
		{usdmChanges + "/stream?since=1-0", nil, 410, -1130, "'since'"},
		{"/v1/changes/nowhere/stream", nil, 400, -1130, "'market'"},
	} {
		resp, body := srv.get(tt.target, tt.hdr)
		code, msg := binanceError(t, tt.target, resp, body)
		if resp.StatusCode != tt.status || code != tt.code || !strings.Contains(msg, tt.names) {
			t.Errorf("GET %s %v = %d %s, want %d %d naming %s", tt.target, tt.hdr, resp.StatusCode, body, tt.status, tt.code, tt.names)
		}
	}
}

// readSSE reads a stream's lines into blocks, each the lines before a
// blank one joined by "\n".
func readSSE(body *bufio.Scanner, blocks chan<- string) {
	defer close(blocks)
	var cur []string
	for body.Scan() {
		if line := body.Text(); line != "" {
			cur = append(cur, line)
			continue
		}
		blocks <- strings.Join(cur, "\n")
		cur = nil
	}
}

func nextBlock(t *testing.T, blocks <-chan string) string {
	t.Helper()
	select {
	case b, ok := <-blocks:
		if !ok {
			t.Fatal("the stream ended")
		}
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return ""
}

func TestChanges_Stream(t *testing.T) {
	w, c, start := changedWorld(t)
	h, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Heartbeat: 50 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(target string, hdr http.Header) <-chan string {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+target, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("GET %s = %d %v", target, resp.StatusCode, resp.Header)
		}
		blocks := make(chan string, 100)
		go readSSE(bufio.NewScanner(resp.Body), blocks)
		return blocks
	}

	// From a cursor: the cursor, then each change with its id.
	s := open(usdmChanges+"/stream?since="+start.String()+"&kind=status,delisted", nil)
	if b := nextBlock(t, s); b != "retry: 2000\nid: "+start.String() {
		t.Fatalf("first block = %q", b)
	}
	var ids []string
	for _, want := range []string{`"kind":"delisted","symbol":"BCHUSDT"`, `"kind":"status","symbol":"BTCUSDT"`} {
		b := nextBlock(t, s)
		id, data, ok := strings.Cut(b, "\ndata: ")
		if !ok || !strings.HasPrefix(id, "id: ") || !strings.Contains(data, want) || !strings.Contains(data, `"id":"`+id[4:]+`"`) {
			t.Fatalf("event = %q, want id: and data: with %s", b, want)
		}
		ids = append(ids, id[4:])
	}
	// Then heartbeats while nothing happens.
	if b := nextBlock(t, s); b != ": heartbeat" {
		t.Errorf("block on an idle stream = %q, want a heartbeat", b)
	}

	// Resuming with Last-Event-ID (it wins over since) gets the rest.
	r := open(usdmChanges+"/stream?since=0&kind=status,delisted", http.Header{"Last-Event-ID": {ids[0]}})
	if b := nextBlock(t, r); b != "retry: 2000\nid: "+ids[0] {
		t.Fatalf("first block after resuming = %q", b)
	}
	if b := nextBlock(t, r); !strings.HasPrefix(b, "id: "+ids[1]+"\n") {
		t.Fatalf("after resuming = %q, want the event %s", b, ids[1])
	}

	// HEAD: the headers, no body.
	req, _ := http.NewRequest(http.MethodHead, srv.URL+usdmChanges+"/stream", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD stream = %v, %v", resp, err)
	}
}

// goneFeed is a Backend whose log holds one change, after which its
// subscriptions fall behind what it keeps.
type goneFeed struct{ panicking }

func (goneFeed) Changes(context.Context, exchangeinfo.Market, symcache.ChangeQuery) (symcache.ChangePage, error) {
	return symcache.ChangePage{Market: exchangeinfo.USDM, Next: changes.Cursor{Ms: 5}}, nil
}

func (goneFeed) Subscribe(context.Context, exchangeinfo.Market, symcache.ChangeQuery) iter.Seq2[changes.Change, error] {
	return func(yield func(changes.Change, error) bool) {
		if yield(changes.Change{ID: "6-0", Market: exchangeinfo.USDM, Kind: changes.Listed, Symbol: "NEWUSDT"}, nil) {
			yield(changes.Change{}, errors.Join(errors.New("trimmed"), changes.ErrGone))
		}
	}
}

func TestChanges_StreamFallsBehind(t *testing.T) {
	h, err := httpapi.New(httpapi.Config{Cache: goneFeed{}, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + usdmChanges + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	blocks := make(chan string, 10)
	go readSSE(bufio.NewScanner(resp.Body), blocks)
	for _, want := range []string{"retry: 2000\nid: 5-0", "id: 6-0\ndata: {", "event: gone\ndata: {\"code\":-1130"} {
		if b := nextBlock(t, blocks); !strings.HasPrefix(b, want) {
			t.Fatalf("block = %q, want %q...", b, want)
		}
	}
	if _, ok := <-blocks; ok {
		t.Errorf("the stream goes on after gone")
	}
}

// FuzzChangeQuery: whatever the query and Last-Event-ID, a change feed
// answers no 5xx; a 400 or 410 is a Binance error; a 200 page is JSON with
// a next that is a cursor, holding at most limit changes.
func FuzzChangeQuery(f *testing.F) {
	w, c, start := changedWorld(f)
	h := w.handler(c, nil)
	for _, seed := range []struct {
		stream      bool
		query, last string
	}{
		{false, "", ""},
		{false, "since=" + start.String(), ""},
		{false, "since=0&kind=listed,delisted&symbol=btcusdt&limit=2", ""},
		{false, "since=18446744073709551615-18446744073709551615", ""},
		{false, "limit=-1&kind=%zz", ""},
		{true, "", "1-0"},
		{true, "since=0", "0"},
	} {
		f.Add(seed.stream, seed.query, seed.last)
	}
	f.Fuzz(func(t *testing.T, stream bool, query, lastEventID string) {
		target, method := usdmChanges, http.MethodGet
		if stream {
			target, method = usdmChanges+"/stream", http.MethodHead // HEAD: checked, not followed
		}
		req := httptest.NewRequest(method, target, nil)
		req.URL.RawQuery = query
		if lastEventID != "" {
			req.Header["Last-Event-Id"] = []string{lastEventID}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if stream {
				return
			}
			var p changePage
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Market != "usdm" {
				t.Fatalf("GET ?%s = 200 %s: not a page", query, rec.Body)
			}
			if _, err := changes.ParseCursor(p.Next); err != nil {
				t.Fatalf("GET ?%s: next %q is no cursor", query, p.Next)
			}
			if len(p.Changes) > symcache.DefaultChangesLimit {
				t.Fatalf("GET ?%s: %d changes", query, len(p.Changes))
			}
		case http.StatusBadRequest, http.StatusGone:
			if stream {
				return
			}
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == nil || *e.Code >= 0 || e.Msg == nil || *e.Msg == "" {
				t.Fatalf("GET ?%s = %d %s, want a Binance error", query, rec.Code, rec.Body)
			}
		default:
			t.Fatalf("%s %s?%s [Last-Event-ID %q] = %d %s", method, target, query, lastEventID, rec.Code, rec.Body)
		}
	})
}
