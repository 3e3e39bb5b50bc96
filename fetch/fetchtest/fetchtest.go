// Package fetchtest is test support for code that talks to Binance, like
// net/http/httptest: a Handler that answers any path and method from canned
// Responses set per path (status, headers, gzip, delay, a body cut short),
// counts and records the requests it receives, and can check Binance's
// HMAC-SHA256 signatures; and an Upstream that serves the repository's
// recorded exchangeInfo answers in testdata/binance/ on 127.0.0.1. The
// recordings themselves are read through internal/fixtures.
//
// It imports only the standard library and internal/fixtures, so any
// package's tests can use it.
package fetchtest

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/symcache/symcache/internal/fixtures"
)

// Binance's exchangeInfo paths, the same as exchangeinfo.Market.Path (which
// this package cannot import).
const (
	SpotPath  = "/api/v3/exchangeInfo"
	USDMPath  = "/fapi/v1/exchangeInfo"
	COINMPath = "/dapi/v1/exchangeInfo"
)

// files lists each exchangeInfo path and the file LoadDir reads it from.
var files = []struct{ path, name string }{
	{SpotPath, "spot_exchangeinfo.json"},
	{USDMPath, "usdm_exchangeinfo.json"},
	{COINMPath, "coinm_exchangeinfo.json"},
}

// Response is one canned upstream answer.
type Response struct {
	Status int         // if zero, 200
	Header http.Header // extra headers (e.g. Retry-After, X-MBX-USED-WEIGHT-1M); not modified after Set
	Body   []byte      // sent as is; not modified after Set
	// Gzip compresses the body (Content-Encoding: gzip) when the request
	// accepts gzip; otherwise the body is sent plain.
	Gzip bool
	// Delay is how long to wait before answering. If the request's context
	// ends first (the client gave up), nothing is sent.
	Delay time.Duration
	// Truncate, if positive, sends only the first Truncate bytes of the body
	// (compressed, with Gzip) while declaring the full Content-Length, then
	// closes the connection: a body cut short.
	Truncate int
	// Stall, if positive, sends the headers and the first half of the body,
	// then waits this long (or until the client gives up) before the rest:
	// a body that is slow to read.
	Stall time.Duration
	// Signed makes the path a SIGNED endpoint: a request without a
	// signature parameter is answered 400 (-1102) instead of this
	// Response. Whether Signed or not, a request that carries a signature
	// is checked when the Handler has a secret (SetSecret).
	Signed bool
}

// Request is one request as the Handler received it.
type Request struct {
	Method     string
	RequestURI string      // the request line's target, byte for byte
	Path       string      // the decoded path (URL.Path)
	RawQuery   string      // the query as sent: not decoded, not re-encoded
	Host       string      // the Host header
	Header     http.Header // as received (names canonicalized by net/http)
	Body       []byte      // the first MaxRecordedBody bytes of the body
	BodySize   int64       // the length of the whole body
}

// MaxRecordedBody is the most of a request body a Request keeps; the rest is
// read and counted (BodySize), not kept.
const MaxRecordedBody = 1 << 20

// entry is a Response and, computed on first use, its gzipped body.
type entry struct {
	Response
	gzOnce sync.Once
	gz     []byte
}

func (e *entry) gzipped() []byte {
	e.gzOnce.Do(func() {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(e.Body) // writes to a bytes.Buffer do not fail
		zw.Close()
		e.gz = buf.Bytes()
	})
	return e.gz
}

// Handler answers requests from canned Responses by path and counts the
// requests it receives per path. A path with no Response gets a 404 with a
// Binance-shaped body ({"code":…,"msg":…}). The zero Handler is not usable;
// call NewHandler. A Handler is safe for concurrent use, and Set may be called
// while it serves.
type Handler struct {
	mu       sync.Mutex
	answers  map[string]*entry
	requests map[string]int
	received []Request
	secret   []byte // nil: signatures are not checked
}

// NewHandler returns a Handler with no Responses: every path is a 404.
func NewHandler() *Handler {
	return &Handler{answers: make(map[string]*entry), requests: make(map[string]int)}
}

// Set makes r the answer for path (e.g. SpotPath), replacing any earlier one.
func (h *Handler) Set(path string, r Response) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers[path] = &entry{Response: r}
}

// Requests is the number of requests received for path, whatever the answer.
func (h *Handler) Requests(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests[path]
}

// Received returns every request received so far, in the order they
// arrived (of concurrent ones, the order their bodies ended).
func (h *Handler) Received() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.received)
}

// SetSecret makes h check signatures as Binance does, with secret as the
// API key's secret: a request carrying a signature parameter, in its query
// or its body, must carry the hex HMAC-SHA256, keyed with secret, of its
// total params (the query string without the signature parameter,
// concatenated with the body without it), or it is answered 400 (-1022).
// An empty secret turns the check off.
func (h *Handler) SetSecret(secret string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secret = nil
	if secret != "" {
		h.secret = []byte(secret)
	}
}

// Sign returns query with Binance's signature parameter appended: the hex
// HMAC-SHA256, keyed with secret, of query concatenated with body (the body
// sent as is; empty when the parameters are all in the query). For
// parameters that all go in the body, pass them as query: the result is the
// body to send.
func Sign(secret, query, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(query))
	mac.Write([]byte(body))
	sig := hex.EncodeToString(mac.Sum(nil))
	if query == "" {
		return "signature=" + sig
	}
	return query + "&signature=" + sig
}

// cutSignature removes the signature parameter from params (a raw query or
// a form body) and returns what is left and the signature; found is false
// when there is none.
func cutSignature(params string) (rest, sig string, found bool) {
	parts := strings.Split(params, "&")
	kept := parts[:0]
	for _, p := range parts {
		if v, ok := strings.CutPrefix(p, "signature="); ok && !found {
			sig, found = v, true
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, "&"), sig, found
}

// checkSignature answers whether a request with this query and body is
// signed as the Handler requires: "" if so, else Binance's error body.
func checkSignature(secret []byte, signed bool, query string, body []byte) string {
	q, sig, found := cutSignature(query)
	b := string(body)
	if !found {
		b, sig, found = cutSignature(b)
	}
	switch {
	case !found && signed:
		return `{"code":-1102,"msg":"Mandatory parameter 'signature' was not sent, was empty/null, or malformed."}`
	case !found || secret == nil:
		return ""
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(q))
	mac.Write([]byte(b))
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return `{"code":-1022,"msg":"Signature for this request is not valid."}`
	}
	return ""
}

// Paths lists the paths that have a Response, sorted.
func (h *Handler) Paths() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.answers))
}

// ServeHTTP records r, body included, and answers it with the Response set
// for its path, whatever the method.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{
		Method:     r.Method,
		RequestURI: r.RequestURI,
		Path:       r.URL.Path,
		RawQuery:   r.URL.RawQuery,
		Host:       r.Host,
		Header:     r.Header.Clone(),
	}
	in := r.Body
	if in == nil { // a client's request handed to ServeHTTP as it is, with no body
		in = http.NoBody
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(in, MaxRecordedBody))
	if err == nil {
		var m int64
		m, err = io.Copy(io.Discard, in)
		n += m
	}
	rec.Body, rec.BodySize = buf.Bytes(), n
	if err != nil {
		return // the client went away while sending
	}

	h.mu.Lock()
	h.requests[r.URL.Path]++
	h.received = append(h.received, rec)
	e := h.answers[r.URL.Path]
	secret := h.secret
	h.mu.Unlock()

	if msg := checkSignature(secret, e != nil && e.Signed, rec.RawQuery, rec.Body); msg != "" {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, msg)
		return
	}
	if e == nil {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"code":-1000,"msg":%q}`, "fetchtest: no answer for "+r.Method+" "+r.URL.Path)
		return
	}
	if e.Delay > 0 {
		timer := time.NewTimer(e.Delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		}
	}

	body := e.Body
	for k, vs := range e.Header {
		w.Header()[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	}
	if e.Gzip {
		w.Header().Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header) {
			body = e.gzipped()
			w.Header().Set("Content-Encoding", "gzip")
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(cmp.Or(e.Status, http.StatusOK))
	if e.Truncate > 0 && e.Truncate < len(body) {
		w.Write(body[:e.Truncate])
		// Having written less than the declared Content-Length, the server
		// closes the connection when the handler returns; the client reads
		// an unexpected EOF.
		http.NewResponseController(w).Flush()
		return
	}
	if e.Stall > 0 {
		w.Write(body[:len(body)/2])
		http.NewResponseController(w).Flush()
		timer := time.NewTimer(e.Stall)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
		body = body[len(body)/2:]
	}
	w.Write(body)
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip with a
// non-zero quality.
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
			if !ok {
				return true
			}
			f, err := strconv.ParseFloat(q, 64)
			return err == nil && f > 0
		}
	}
	return false
}

// LoadDir reads the recorded answers spot_exchangeinfo.json,
// usdm_exchangeinfo.json and coinm_exchangeinfo.json from dir (those present;
// at least one is required) and returns a Handler serving them with status
// 200 at SpotPath, USDMPath and COINMPath, gzipped when the request accepts
// gzip.
func LoadDir(dir string) (*Handler, error) {
	h := NewHandler()
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", dir, err)
		}
		h.Set(f.path, Response{Body: b, Gzip: true})
		found++
	}
	if found == 0 {
		if fi, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("load %s: %w", dir, err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("load %s: not a directory", dir)
		}
		return nil, fmt.Errorf("load %s: none of %s, %s, %s", dir, files[0].name, files[1].name, files[2].name)
	}
	return h, nil
}

// Upstream is a fake Binance listening on 127.0.0.1: an httptest.Server
// around a Handler that replays the repository's recorded answers
// (testdata/binance/{spot,usdm,coinm}_exchangeinfo.json) at SpotPath,
// USDMPath and COINMPath. Use Set to change an answer and Requests to count
// what was asked; base URLs are Upstream.URL.
type Upstream struct {
	*httptest.Server
	*Handler
}

// NewUpstream starts an Upstream, closed by t.Cleanup.
func NewUpstream(t testing.TB) *Upstream {
	t.Helper()
	h, err := LoadDir(fixtures.Path(t, "binance"))
	if err != nil {
		t.Fatalf("fetchtest.NewUpstream: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Upstream{Server: srv, Handler: h}
}
