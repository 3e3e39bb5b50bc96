package httpapi_test

// The tests in this file hold api/openapi.yaml to the real handlers: the
// document must be valid OpenAPI, every route echo serves must be described
// and every described route served, and a broad set of real exchanges (every
// path, every status the handlers can give) must agree with it, requests and
// responses, headers and bodies.
//
// They use github.com/getkin/kin-openapi, the one module here that is not
// the standard library: reading and validating OpenAPI 3 documents, routing
// requests to their operations and checking parameters, headers and bodies
// against JSON schemas is a library's worth of work the standard library has
// no part of. It is a test-only dependency; the sidecar does not link it.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	"github.com/symcache/symcache"
	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
	"github.com/symcache/symcache/fetch/fetchtest"
	"github.com/symcache/symcache/httpapi"
	"github.com/symcache/symcache/internal/fixtures"
	"github.com/symcache/symcache/l1"
	"github.com/symcache/symcache/l2"
)

// oaSpecFile is the OpenAPI document, relative to this package.
const oaSpecFile = "../api/openapi.yaml"

// Server-Sent Events (the change stream) and HTML (the status page) are
// text: kin-openapi validates them against their string schema as it does
// text/plain.
func init() {
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

// oaLoadSpec reads and validates the OpenAPI document (examples included:
// kin-openapi checks each against its schema).
func oaLoadSpec(tb testing.TB) *openapi3.T {
	tb.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(oaSpecFile)
	if err != nil {
		tb.Fatalf("load %s: %v", oaSpecFile, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		tb.Fatalf("validate %s: %v", oaSpecFile, err)
	}
	return doc
}

// oaUndescribedHeaders are response headers the document need not name: the
// transport's own, and Content-Type, which the response's content keys give.
var oaUndescribedHeaders = []string{"Content-Length", "Content-Type", "Date"}

// oaExchange is one request sent to the real handler and what it must get.
type oaExchange struct {
	method, target string
	header         http.Header
	// status is the status the handler must answer.
	status int
	// conforms says whether the request itself is one the document allows:
	// its parameters, their schemas, and (stricter than kin-openapi, as the
	// handlers are) no query parameter that is undeclared, repeated or not
	// %-decodable. The check must agree.
	conforms bool
}

func (ex oaExchange) String() string {
	s := ex.method + " " + ex.target
	for _, k := range slices.Sorted(maps.Keys(ex.header)) {
		s += fmt.Sprintf(" [%s: %s]", k, strings.Join(ex.header[k], ", "))
	}
	return s
}

// oaCheck sends exchanges to a server and checks them against a document.
type oaCheck struct {
	router routers.Router
	srv    *server
	// seen records "operationId status" for every exchange checked, for the
	// coverage check; n counts them.
	seen map[string]bool
	n    int
}

func newOACheck(tb testing.TB, doc *openapi3.T, srv *server) *oaCheck {
	tb.Helper()
	local := *doc // route on the test server's address, not the documented one
	local.Servers = openapi3.Servers{{URL: srv.url}}
	router, err := gorillamux.NewRouter(&local)
	if err != nil {
		tb.Fatalf("gorillamux.NewRouter = %v", err)
	}
	return &oaCheck{router: router, srv: srv, seen: map[string]bool{}}
}

// oaResult is an exchange done: the answer, its body (gunzipped if it was
// sent gzipped), and every way it disagrees with the document.
type oaResult struct {
	resp     *http.Response
	body     []byte
	problems []string
}

func (r *oaResult) problemf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// do sends ex to the real handler and checks the exchange against the
// document: the route exists, the request conforms as ex says, the status is
// ex's and is documented for the operation (no default), every header sent
// is documented for that status and valid, the body is the documented media
// type and valid against its schema (after gunzip), and HEAD and 304 answers
// carry no body.
func (sc *oaCheck) do(ex oaExchange) oaResult {
	sc.n++
	resp, raw := sc.srv.do(ex.method, ex.target, ex.header)
	r := oaResult{resp: resp, body: raw}
	if resp.StatusCode != ex.status {
		r.problemf("status %d, want %d (body %.200s)", resp.StatusCode, ex.status, raw)
	}

	req, err := http.NewRequest(ex.method, sc.srv.url+ex.target, nil)
	if err != nil {
		r.problemf("%v", err)
		return r
	}
	for k, vs := range ex.header {
		req.Header[k] = vs
	}
	route, pathParams, err := sc.router.FindRoute(req)
	if err != nil {
		r.problemf("no operation in the document: %v", err)
		return r
	}
	sc.seen[route.Operation.OperationID+" "+fmt.Sprint(resp.StatusCode)] = true

	reqInput := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: pathParams,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:  oaBearerSent,
			SkipSettingDefaults: true, // never rewrite the request's query
		},
	}
	reqErr := errors.Join(oaStrictQuery(route, req.URL.RawQuery), openapi3filter.ValidateRequest(context.Background(), reqInput))
	switch {
	case ex.conforms && reqErr != nil:
		r.problemf("the request should conform to the document: %v", reqErr)
	case !ex.conforms && reqErr == nil:
		r.problemf("the request conforms to the document, want it not to (the handler answers %d)", resp.StatusCode)
	}

	spec := route.Operation.Responses.Status(resp.StatusCode)
	if spec == nil || spec.Value == nil {
		r.problemf("status %d is not documented for %s %s", resp.StatusCode, route.Method, route.Path)
		return r
	}
	for k := range resp.Header {
		if !slices.Contains(oaUndescribedHeaders, k) && !oaDescribes(spec.Value.Headers, k) {
			r.problemf("header %s: %q is not documented for %d", k, resp.Header.Get(k), resp.StatusCode)
		}
	}
	if xc := resp.Header.Get("X-Cache"); xc != "" && (xc == "STALE") != (resp.Header.Get("Warning") != "") {
		r.problemf("X-Cache %s with Warning %q: want a Warning on STALE answers only", xc, resp.Header.Get("Warning"))
	}

	body := raw
	if resp.Header.Get("Content-Encoding") == "gzip" && len(raw) > 0 {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			r.problemf("Content-Encoding gzip, but the body does not gunzip: %v", err)
			return r
		}
	}
	r.body = body

	// kin-openapi skips HEAD answers and 304s altogether; check their headers
	// as the documented response of a GET answered 200 would be, against the
	// operation's own documented response for their status.
	status, valInput := resp.StatusCode, reqInput
	if ex.method == http.MethodHead || resp.StatusCode == http.StatusNotModified {
		if len(raw) != 0 {
			r.problemf("%d to %s with a %d-byte body, want none", resp.StatusCode, ex.method, len(raw))
		}
		op := *route.Operation
		op.Responses = openapi3.NewResponses()
		op.Responses.Set("200", spec)
		asGet := *route
		asGet.Operation = &op
		getReq := req.Clone(context.Background())
		getReq.Method = http.MethodGet
		status, valInput = http.StatusOK, &openapi3filter.RequestValidationInput{Request: getReq, PathParams: pathParams, Route: &asGet}
	}
	// A HEAD answer has the Content-Type its GET would have; any other
	// answer documented without content has neither body nor type.
	if len(spec.Value.Content) == 0 && ex.method != http.MethodHead && (len(body) != 0 || resp.Header.Get("Content-Type") != "") {
		r.problemf("%d documented without content, got %q and %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: valInput,
		Status:                 status,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}); err != nil {
		r.problemf("response: %v", err)
	}
	return r
}

// oaBearerSent is the document's security as a request can show it: an
// operation that needs the admin token must be sent one ("Authorization:
// Bearer <token>"); whether it is the right one is the handler's to say.
func oaBearerSent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if s := in.SecurityScheme; s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("security scheme %s: not an http bearer scheme", in.SecuritySchemeName)
	}
	scheme, token, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return errors.New("no bearer token")
	}
	return nil
}

// oaDescribes reports whether headers documents name (case-insensitively).
func oaDescribes(headers openapi3.Headers, name string) bool {
	for k := range headers {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// oaStrictQuery holds a raw query to what the handlers accept on top of the
// parameters' schemas: every name and value %-decodes, every name is a
// declared query parameter, and none comes twice.
func oaStrictQuery(route *routers.Route, rawQuery string) error {
	declared := map[string]bool{}
	for _, params := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range params {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				declared[p.Value.Name] = true
			}
		}
	}
	seen := map[string]bool{}
	var errs []error
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("query parameter name %q does not decode", k))
			continue
		}
		if _, err := url.QueryUnescape(v); err != nil {
			errs = append(errs, fmt.Errorf("query parameter %s: value %q does not decode", name, v))
		}
		if !declared[name] {
			errs = append(errs, fmt.Errorf("query parameter %s is not declared", name))
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("query parameter %s sent twice", name))
		}
		seen[name] = true
	}
	return errors.Join(errs...)
}

// run does ex and fails t with every disagreement.
func (sc *oaCheck) run(t *testing.T, ex oaExchange) oaResult {
	t.Helper()
	r := sc.do(ex)
	for _, p := range r.problems {
		t.Errorf("%v: %s", ex, p)
	}
	return r
}

func oaHeader(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestOpenAPI_Document(t *testing.T) {
	doc := oaLoadSpec(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	// HEAD works wherever GET does (README, HTTP): every GET has a HEAD twin
	// with the same parameters and statuses.
	for path, item := range doc.Paths.Map() {
		if item.Get == nil {
			continue
		}
		if item.Head == nil {
			t.Errorf("%s: GET without HEAD", path)
			continue
		}
		names := func(op *openapi3.Operation) []string {
			var out []string
			for _, p := range op.Parameters {
				out = append(out, p.Value.In+":"+p.Value.Name)
			}
			return out
		}
		if g, h := names(item.Get), names(item.Head); !slices.Equal(g, h) {
			t.Errorf("%s: HEAD parameters %v, GET's %v", path, h, g)
		}
		if g, h := item.Get.Responses.Keys(), item.Head.Responses.Keys(); !slices.Equal(g, h) {
			t.Errorf("%s: HEAD statuses %v, GET's %v", path, h, g)
		}
		for status, ref := range item.Head.Responses.Map() {
			if len(ref.Value.Content) != 0 {
				t.Errorf("%s: HEAD %s documents a body", path, status)
			}
		}
	}
	// No operation answers an undocumented status through a default.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Responses.Default() != nil {
				t.Errorf("%s %s has a default response; list the statuses", method, path)
			}
		}
	}
}

var oaEchoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPI_Routes: every route echo serves is in the document, and every
// operation of the document is served.
func TestOpenAPI_Routes(t *testing.T) {
	doc := oaLoadSpec(t)
	w := newWorld(t, false)
	e, err := httpapi.New(w.withTiers(httpapi.Config{Cache: w.cache(exchangeinfo.Spot, exchangeinfo.USDM, exchangeinfo.COINM), Logger: discard()}))
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			// echo's catch-all of a group with middleware (/admin, /admin/*):
			// not an operation; the document says what it answers.
			continue
		}
		path := oaEchoParam.ReplaceAllString(r.Path, "{$1}")
		served[r.Method+" "+path] = true
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for _, route := range slices.Sorted(maps.Keys(served)) {
		if !documented[route] {
			t.Errorf("echo serves %s, which api/openapi.yaml does not document", route)
		}
	}
	for _, route := range slices.Sorted(maps.Keys(documented)) {
		if !served[route] {
			t.Errorf("api/openapi.yaml documents %s, which echo does not serve", route)
		}
	}
}

// TestOpenAPI_Undocumented: what the document does not describe, the
// handlers do not serve: an unknown path is a 404, a method the path lacks a
// 405, both with Binance's error body.
func TestOpenAPI_Undocumented(t *testing.T) {
	doc := oaLoadSpec(t)
	w := newWorld(t, false)
	c := w.cache()
	const token = "oa-Admin-Token_42"
	e, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), AdminToken: token}))
	if err != nil {
		t.Fatal(err)
	}
	enabled, disabled := oaServe(t, e), w.server(c, nil)
	router := newOACheck(t, doc, enabled).router
	auth := oaHeader("Authorization", "Bearer "+token)
	errSchema := doc.Components.Schemas["BinanceError"].Value
	for _, tt := range []struct {
		srv            *server
		method, target string
		header         http.Header
		status         int
		routeErr       error
	}{
		{disabled, http.MethodGet, "/nope", nil, http.StatusNotFound, routers.ErrPathNotFound},
		{disabled, http.MethodGet, "/api/v3/exchangeinfo", nil, http.StatusNotFound, routers.ErrPathNotFound},
		{disabled, http.MethodGet, "/api/v3/ticker/price", nil, http.StatusNotFound, routers.ErrPathNotFound},
		{disabled, http.MethodGet, "/v1/symbols", nil, http.StatusNotFound, routers.ErrPathNotFound},
		{disabled, http.MethodGet, "/v1/symbols/spot/BTCUSDT/rules/x", nil, http.StatusNotFound, routers.ErrPathNotFound},
		{disabled, http.MethodPost, spotPath, nil, http.StatusMethodNotAllowed, routers.ErrMethodNotAllowed},
		{disabled, http.MethodDelete, "/v1/symbols/spot", nil, http.StatusMethodNotAllowed, routers.ErrMethodNotAllowed},
		{disabled, http.MethodPut, "/healthz", nil, http.StatusMethodNotAllowed, routers.ErrMethodNotAllowed},
		// Under /admin/, whatever the path, the same 401 without the token,
		// admin enabled or not (the document says so in Unauthorized).
		{disabled, http.MethodGet, "/admin/nope", auth, http.StatusUnauthorized, routers.ErrPathNotFound},
		{enabled, http.MethodGet, "/admin/nope", nil, http.StatusUnauthorized, routers.ErrPathNotFound},
		{enabled, http.MethodGet, "/admin/refresh/spot", nil, http.StatusUnauthorized, routers.ErrMethodNotAllowed},
		{enabled, http.MethodPost, "/admin/status", nil, http.StatusUnauthorized, routers.ErrMethodNotAllowed},
		{enabled, http.MethodGet, "/admin/nope", auth, http.StatusNotFound, routers.ErrPathNotFound},
		// With it, a method a path lacks is a 405, as elsewhere.
		{enabled, http.MethodGet, "/admin/refresh/spot", auth, http.StatusMethodNotAllowed, routers.ErrMethodNotAllowed},
		{enabled, http.MethodPost, "/admin/status", auth, http.StatusMethodNotAllowed, routers.ErrMethodNotAllowed},
		{enabled, http.MethodDelete, "/admin/invalidate/spot", auth, http.StatusMethodNotAllowed, routers.ErrMethodNotAllowed},
	} {
		what := fmt.Sprintf("%s %s %v", tt.method, tt.target, tt.header)
		resp, body := tt.srv.do(tt.method, tt.target, tt.header)
		if resp.StatusCode != tt.status {
			t.Errorf("%s = %d, want %d", what, resp.StatusCode, tt.status)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil || errSchema.VisitJSON(v) != nil {
			t.Errorf("%s body = %s, want BinanceError", what, body)
		}
		req, _ := http.NewRequest(tt.method, enabled.url+tt.target, nil) // the router's server
		if _, _, err := router.FindRoute(req); !errors.Is(err, tt.routeErr) {
			t.Errorf("%s: router says %v, want %v", what, err, tt.routeErr)
		}
	}
}

// oaSmallWorld serves small recordings (spot testnet, an older USD-M, COIN-M)
// so that each answer validates quickly, with Redis for HIT-L2.
func oaSmallWorld(t *testing.T) *world {
	w := newWorld(t, true)
	w.upstream.Set(spotPath, fetchtest.Response{Body: fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json"), Gzip: true})
	w.upstream.Set(usdmPath, fetchtest.Response{Body: fixtures.Read(t, "binance/usdm_exchangeinfo_2024-02-12.json"), Gzip: true})
	return w
}

var oaMarkets = []exchangeinfo.Market{exchangeinfo.Spot, exchangeinfo.USDM, exchangeinfo.COINM}

// TestOpenAPI_Exchanges sends real requests for every path and every status
// the handlers can answer, and checks each against the document.
func TestOpenAPI_Exchanges(t *testing.T) {
	doc := oaLoadSpec(t)
	var checks []*oaCheck

	t.Run("served", func(t *testing.T) {
		w := oaSmallWorld(t)
		sc := newOACheck(t, doc, w.server(w.cache(oaMarkets...), nil))
		checks = append(checks, sc)
		ok := func(method, target string, h http.Header) oaResult {
			t.Helper()
			return sc.run(t, oaExchange{method, target, h, http.StatusOK, true})
		}
		bad := func(method, target string, status int, conforms bool) {
			t.Helper()
			sc.run(t, oaExchange{method, target, nil, status, conforms})
		}
		notModified := func(target, etag string) {
			t.Helper()
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				sc.run(t, oaExchange{m, target, oaHeader("If-None-Match", etag), http.StatusNotModified, true})
			}
		}

		// The Binance paths, unfiltered: MISS, HIT-L1, gzip, HEAD, 304.
		for _, path := range []string{spotPath, usdmPath, coinmPath} {
			if got := ok(http.MethodGet, path, nil).resp.Header.Get("X-Cache"); got != "MISS" {
				t.Errorf("GET %s X-Cache = %q, want MISS first", path, got)
			}
			r := ok(http.MethodGet, path, nil)
			gz := ok(http.MethodGet, path, oaHeader("Accept-Encoding", "gzip"))
			if gz.resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(gz.body, r.body) {
				t.Errorf("GET %s with gzip: Content-Encoding %q, %d bytes after gunzip; want gzip of the %d-byte body",
					path, gz.resp.Header.Get("Content-Encoding"), len(gz.body), len(r.body))
			}
			ok(http.MethodHead, path, nil)
			ok(http.MethodHead, path, oaHeader("Accept-Encoding", "gzip"))
			etag := r.resp.Header.Get("ETag")
			notModified(path, etag)
			notModified(path, `"other", W/`+etag)
			notModified(path, "*")
			ok(http.MethodGet, path, oaHeader("If-None-Match", `"other"`))
		}
		// USD-M and COIN-M ignore parameters, as Binance does; the document
		// declares none.
		sc.run(t, oaExchange{http.MethodGet, usdmPath + "?symbol=BTCUSDT", nil, http.StatusOK, false})
		sc.run(t, oaExchange{http.MethodGet, coinmPath + "?foo=1", nil, http.StatusOK, false})

		// Spot's parameters.
		for _, q := range []string{
			"symbol=BTCUSDT",
			"symbols=%5B%22BTCUSDT%22,%22BNBBTC%22%5D",
			`symbols=["ETHBTC"]`,
			"permissions=SPOT",
			"permissions=%5B%22MARGIN%22,%22LEVERAGED%22%5D",
			"showPermissionSets=false",
			"showPermissionSets=true&symbolStatus=TRADING",
			"symbolStatus=BREAK",
			"permissions=SPOT&symbolStatus=HALT&showPermissionSets=false",
		} {
			r := ok(http.MethodGet, spotPath+"?"+q, nil)
			ok(http.MethodHead, spotPath+"?"+q, nil)
			if r.resp.Header.Get("Vary") != "" || r.resp.Header.Get("Content-Encoding") != "" {
				t.Errorf("GET %s?%s: Vary %q, Content-Encoding %q; want a plain answer", spotPath, q, r.resp.Header.Get("Vary"), r.resp.Header.Get("Content-Encoding"))
			}
		}
		filtered := ok(http.MethodGet, spotPath+"?symbol=BNBBTC", oaHeader("Accept-Encoding", "gzip"))
		notModified(spotPath+"?symbol=BNBBTC", filtered.resp.Header.Get("ETag"))
		for _, tt := range []struct {
			query    string
			conforms bool
		}{
			{"symbol=NOSUCHPAIR", true},                         // -1121
			{"symbols=%5B%22BTCUSDT%22,%22NOPE%22%5D", true},    // -1121
			{"symbols=%5B%22BTCUSDT%22,%22BTCUSDT%22%5D", true}, // -1151
			{"symbol=BTCUSDT&symbols=%5B%22ETHBTC%22%5D", true}, // -1128
			{"permissions=SPOT&symbol=BTCUSDT", true},           // -1128
			{"symbolStatus=TRADING&symbols=%5B%22ETHBTC%22%5D", true},
			{"symbol=btcusdt", false},                   // -1100
			{"symbol=BTC%20USDT", false},                // -1100
			{"symbols=BTCUSDT", false},                  // -1100
			{"symbols=%5B%22A%22,%20%22B%22%5D", false}, // -1100: a space
			{"symbol=%ZZ", false},                       // -1100
			{"showPermissionSets=no", false},            // -1100
			{"symbol=", false},                          // -1105
			{"symbol=A&symbol=B", false},                // -1101
			{"foo=1", false},                            // -1104
			{"permissions=x%20y", false},                // -1130
			{"permissions=%5B%5D", false},               // -1130
			{"symbolStatus=OPEN", false},                // -1122
		} {
			bad(http.MethodGet, spotPath+"?"+tt.query, http.StatusBadRequest, tt.conforms)
			bad(http.MethodHead, spotPath+"?"+tt.query, http.StatusBadRequest, tt.conforms)
		}

		// GET /v1/symbols/{market}: filters, pagination, errors.
		for _, m := range oaMarkets {
			ok(http.MethodGet, "/v1/symbols/"+string(m), nil)
		}
		for _, q := range []string{
			"status=TRADING&quote=USDT",
			"status=trading&base=btc&quote=busd",
			"symbols=BTCUSDT,ethbtc",
			"symbols=BTCUSDT&limit=1",
			"status=NOPE",
			"limit=5000",
			"limit=1&cursor=",
		} {
			ok(http.MethodGet, "/v1/symbols/spot?"+q, nil)
			ok(http.MethodHead, "/v1/symbols/spot?"+q, nil)
		}
		pages, cursor := 0, ""
		for {
			target := "/v1/symbols/spot?quote=BUSD&limit=2"
			if cursor != "" {
				target += "&cursor=" + url.QueryEscape(cursor)
			}
			r := ok(http.MethodGet, target, nil)
			var p page
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatalf("GET %s: %v", target, err)
			}
			pages++
			if cursor = p.NextCursor; cursor == "" || pages > 10 {
				break
			}
		}
		if pages != 3 {
			t.Errorf("quote=BUSD in pages of 2: %d pages, want 3 (6 symbols)", pages)
		}
		list := ok(http.MethodGet, "/v1/symbols/usdm?limit=3", nil)
		notModified("/v1/symbols/usdm?limit=3", list.resp.Header.Get("ETag"))
		for _, tt := range []struct {
			query    string
			conforms bool
		}{
			{"limit=0", false},
			{"limit=5001", false},
			{"limit=ten", false},
			{"cursor=zzz", true}, // not one it gave out: opaque to the document
			{"cursor=%21", false},
			{"symbols=,", true}, // no name in it: the schema cannot say
			{"x=1", false},
			{"status=A&status=B", false},
			{"%zz=1", false},
			{"status=%zz", false},
		} {
			bad(http.MethodGet, "/v1/symbols/spot?"+tt.query, http.StatusBadRequest, tt.conforms)
			bad(http.MethodHead, "/v1/symbols/spot?"+tt.query, http.StatusBadRequest, tt.conforms)
		}
		bad(http.MethodGet, "/v1/symbols/nope", http.StatusNotFound, false)
		bad(http.MethodHead, "/v1/symbols/nope", http.StatusNotFound, false)

		// One symbol, its rules, normalisation.
		for _, p := range []string{"/v1/symbols/spot/BTCUSDT", "/v1/symbols/spot/btcusdt", "/v1/symbols/usdm/BTCUSDT", "/v1/symbols/coinm/BTCUSD_PERP"} {
			for _, suffix := range []string{"", "/rules"} {
				r := ok(http.MethodGet, p+suffix, nil)
				ok(http.MethodHead, p+suffix, nil)
				notModified(p+suffix, r.resp.Header.Get("ETag"))
				bad(http.MethodGet, p+suffix+"?x=1", http.StatusBadRequest, false)
				bad(http.MethodHead, p+suffix+"?x=1", http.StatusBadRequest, false)
			}
		}
		for _, p := range []string{"/v1/symbols/spot/NOPE", "/v1/symbols/spot/NOPE/rules", "/v1/symbols/spot/NOPE/normalize?quantity=1"} {
			bad(http.MethodGet, p, http.StatusNotFound, true)
			bad(http.MethodHead, p, http.StatusNotFound, true)
		}
		for _, p := range []string{"/v1/symbols/nope/BTCUSDT", "/v1/symbols/nope/BTCUSDT/rules", "/v1/symbols/nope/BTCUSDT/normalize?quantity=1"} {
			bad(http.MethodGet, p, http.StatusNotFound, false)
			bad(http.MethodHead, p, http.StatusNotFound, false)
		}
		for _, target := range []string{
			"/v1/symbols/spot/BTCUSDT/normalize?price=27123.456789&quantity=0.123456789&side=BUY",
			"/v1/symbols/spot/BTCUSDT/normalize?price=27123.456&quantity=0.0001&side=sell",
			"/v1/symbols/spot/BTCUSDT/normalize?quantity=1&type=MARKET",
			"/v1/symbols/spot/BTCUSDT/normalize?quantity=1&type=market&price=30000&side=",
			"/v1/symbols/spot/BTCUSDT/normalize?price=0.001&quantity=100000",
			"/v1/symbols/usdm/BTCUSDT/normalize?price=27123.456&quantity=0.0011&type=LIMIT",
			"/v1/symbols/usdm/BTCUSDT/normalize?quantity=1&type=MARKET&price=27000",
			"/v1/symbols/coinm/BTCUSD_PERP/normalize?price=27123.456789&quantity=3",
		} {
			r := ok(http.MethodGet, target, nil)
			ok(http.MethodHead, target, nil)
			notModified(target, r.resp.Header.Get("ETag"))
		}
		for _, tt := range []struct {
			query    string
			conforms bool
		}{
			{"price=1e5&quantity=1", false},
			{"price=1", false}, // quantity is required
			{"quantity=", false},
			{"quantity=-1", false},
			{"quantity=0&price=1", true}, // not greater than zero
			{"quantity=1", true},         // a LIMIT order needs a price
			{"quantity=1&side=UP&price=1", false},
			{"quantity=1&type=STOP&price=1", false},
			{"quantity=1&foo=2", false},
			{"quantity=1&quantity=2", false},
			{"price=123456789012345678901&quantity=1", false},
		} {
			bad(http.MethodGet, "/v1/symbols/spot/BTCUSDT/normalize?"+tt.query, http.StatusBadRequest, tt.conforms)
			bad(http.MethodHead, "/v1/symbols/spot/BTCUSDT/normalize?"+tt.query, http.StatusBadRequest, tt.conforms)
		}

		// Operations.
		ok(http.MethodGet, "/", nil)
		ok(http.MethodHead, "/", nil)
		ok(http.MethodGet, "/?market=spot&symbol=btcusdt&side=BUY&price=27123.456&quantity=0.123456", nil)
		ok(http.MethodGet, "/?market=usdm&symbol=NOPE", nil)
		bad(http.MethodGet, "/?cursor=1", http.StatusBadRequest, false)
		bad(http.MethodHead, "/?symbol=a&symbol=b", http.StatusBadRequest, false)
		ok(http.MethodGet, "/healthz", nil)
		ok(http.MethodHead, "/healthz", nil)
		ok(http.MethodGet, "/readyz", nil)
		ok(http.MethodHead, "/readyz", nil)
		m := ok(http.MethodGet, "/metrics", nil)
		if ct := m.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("GET /metrics Content-Type = %q, want text/plain; version=0.0.4 as documented", ct)
		}
		gz := ok(http.MethodGet, "/metrics", oaHeader("Accept-Encoding", "gzip"))
		if gz.resp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("GET /metrics with gzip: Content-Encoding %q, want gzip", gz.resp.Header.Get("Content-Encoding"))
		}
		ok(http.MethodHead, "/metrics", nil)

		// Another sidecar over the same Redis answers from L2.
		second := newOACheck(t, doc, w.server(w.cache(oaMarkets...), nil))
		checks = append(checks, second)
		for _, target := range []string{spotPath, "/v1/symbols/coinm/BTCUSD_PERP/rules"} {
			if got := second.run(t, oaExchange{http.MethodGet, target, nil, http.StatusOK, true}).resp.Header.Get("X-Cache"); got != "HIT-L2" {
				t.Errorf("GET %s on a second sidecar: X-Cache %q, want HIT-L2", target, got)
			}
		}
	})

	t.Run("markets not configured", func(t *testing.T) {
		w := oaSmallWorld(t)
		coinmOnly := newOACheck(t, doc, w.server(w.cache(exchangeinfo.COINM), nil))
		spotOnly := newOACheck(t, doc, w.server(w.cache(exchangeinfo.Spot), nil))
		checks = append(checks, coinmOnly, spotOnly)
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			for _, target := range []string{spotPath, usdmPath, "/v1/symbols/spot", "/v1/symbols/usdm/BTCUSDT", "/v1/symbols/spot/BTCUSDT/rules", "/v1/symbols/spot/BTCUSDT/normalize?quantity=1&price=1", "/v1/changes/spot", "/v1/changes/usdm/stream?since=0"} {
				coinmOnly.run(t, oaExchange{m, target, nil, http.StatusNotFound, true})
			}
			spotOnly.run(t, oaExchange{m, coinmPath, nil, http.StatusNotFound, true})
		}
	})

	t.Run("nothing to serve", func(t *testing.T) {
		w := newWorld(t, false)
		down := fetchtest.Response{Status: http.StatusServiceUnavailable, Body: []byte("<html>down</html>")}
		for _, p := range []string{spotPath, usdmPath, coinmPath} {
			w.upstream.Set(p, down)
		}
		sc := newOACheck(t, doc, w.server(w.cache(oaMarkets...), nil))
		checks = append(checks, sc)
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			for _, target := range []string{
				spotPath, spotPath + "?symbol=BTCUSDT", usdmPath, coinmPath,
				"/v1/symbols/spot", "/v1/symbols/usdm/BTCUSDT", "/v1/symbols/coinm/BTCUSD_PERP/rules",
				"/v1/symbols/spot/BTCUSDT/normalize?quantity=1&price=1",
			} {
				sc.run(t, oaExchange{m, target, nil, http.StatusServiceUnavailable, true})
			}
			sc.run(t, oaExchange{m, "/readyz", nil, http.StatusServiceUnavailable, true})
		}
		ok := func(target string) {
			sc.run(t, oaExchange{http.MethodGet, target, nil, http.StatusOK, true})
		}
		ok("/healthz")
		ok("/metrics")
	})

	t.Run("stale", func(t *testing.T) {
		w := oaSmallWorld(t)
		sc := newOACheck(t, doc, w.server(w.cache(), nil)) // spot and usdm
		checks = append(checks, sc)
		for _, p := range []string{spotPath, usdmPath} {
			sc.run(t, oaExchange{http.MethodGet, p, nil, http.StatusOK, true})
		}
		w.clock.Advance(10 * time.Minute) // past the default 5m TTL
		w.upstream.Set(spotPath, fetchtest.Response{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"120"}}, Body: []byte(`{"code":-1003,"msg":"Too many requests."}`)})
		w.upstream.Set(usdmPath, fetchtest.Response{Status: http.StatusBadGateway, Body: []byte("<html>502</html>")})
		for _, ex := range []oaExchange{
			{http.MethodGet, spotPath, nil, http.StatusOK, true},
			{http.MethodGet, spotPath, oaHeader("Accept-Encoding", "gzip"), http.StatusOK, true},
			{http.MethodHead, spotPath, nil, http.StatusOK, true},
			{http.MethodGet, spotPath + "?symbol=BTCUSDT", nil, http.StatusOK, true},
			{http.MethodGet, spotPath + "?symbol=NOPE", nil, http.StatusBadRequest, true},
			{http.MethodGet, usdmPath, nil, http.StatusOK, true},
			{http.MethodGet, "/v1/symbols/spot?limit=2", nil, http.StatusOK, true},
			{http.MethodGet, "/v1/symbols/usdm/BTCUSDT/rules", nil, http.StatusOK, true},
			{http.MethodGet, "/v1/symbols/spot/BTCUSDT/normalize?quantity=1&price=20000", nil, http.StatusOK, true},
			{http.MethodGet, "/readyz", nil, http.StatusOK, true},
		} {
			r := sc.run(t, ex)
			if got := r.resp.Header.Get("X-Cache"); ex.target != "/readyz" && got != "STALE" {
				t.Errorf("%v: X-Cache %q, want STALE", ex, got)
			}
			if ex.target == spotPath && !strings.Contains(r.resp.Header.Get("Warning"), "upstream 429, retry after") {
				t.Errorf("%v: Warning %q, want the 429 and its Retry-After", ex, r.resp.Header.Get("Warning"))
			}
		}
		etag := sc.run(t, oaExchange{http.MethodGet, spotPath, nil, http.StatusOK, true}).resp.Header.Get("ETag")
		sc.run(t, oaExchange{http.MethodGet, spotPath, oaHeader("If-None-Match", etag), http.StatusNotModified, true})
	})

	t.Run("a sidecar failure", func(t *testing.T) {
		// A snapshot whose rules cannot be read (a tick size Binance would
		// never send) makes /rules and /normalize a 500 for that symbol.
		w := newWorld(t, false)
		body := fixtures.Read(t, "binance/spot_testnet_exchangeinfo_2021-07-11.json")
		at := bytes.Index(body, []byte(`"symbol":"BTCUSDT"`))
		tick := bytes.Index(body[at:], []byte(`"tickSize":"0.01000000"`))
		if at < 0 || tick < 0 {
			t.Fatal("no BTCUSDT tickSize in the spot testnet recording")
		}
		body = slices.Concat(body[:at+tick], []byte(`"tickSize":"1e-2"`), body[at+tick+len(`"tickSize":"0.01000000"`):])
		w.upstream.Set(spotPath, fetchtest.Response{Body: body})
		sc := newOACheck(t, doc, w.server(w.cache(exchangeinfo.Spot), nil))
		checks = append(checks, sc)
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			sc.run(t, oaExchange{m, "/v1/symbols/spot/BTCUSDT/rules", nil, http.StatusInternalServerError, true})
			sc.run(t, oaExchange{m, "/v1/symbols/spot/BTCUSDT/normalize?quantity=1&price=1", nil, http.StatusInternalServerError, true})
		}

		// A panic anywhere on the read path is a 500 on every data route.
		e, err := httpapi.New(httpapi.Config{Cache: panicking{}, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		p := newOACheck(t, doc, oaServe(t, e))
		checks = append(checks, p)
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			for _, target := range []string{spotPath, usdmPath, coinmPath, "/v1/symbols/spot", "/v1/symbols/spot/BTCUSDT", "/v1/symbols/spot/BTCUSDT/rules", "/v1/symbols/spot/BTCUSDT/normalize?quantity=1", "/v1/changes/spot", "/v1/changes/spot/stream"} {
				p.run(t, oaExchange{m, target, nil, http.StatusInternalServerError, true})
			}
		}
	})

	t.Run("admin", func(t *testing.T) {
		w := oaSmallWorld(t)
		c := w.cache() // spot and usdm
		const token = "oa-Admin-Token_42"
		admin := func(every time.Duration) *oaCheck {
			e, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Now: w.clock.Now, AdminToken: token, AdminRefreshEvery: every}))
			if err != nil {
				t.Fatal(err)
			}
			sc := newOACheck(t, doc, oaServe(t, e))
			checks = append(checks, sc)
			return sc
		}
		slow, fast := admin(0), admin(time.Nanosecond) // one admin refresh per market per 10s, or no limit
		off := newOACheck(t, doc, w.server(c, nil))    // no token: admin disabled
		checks = append(checks, off)
		auth := oaHeader("Authorization", "Bearer "+token)
		for _, ex := range []oaExchange{
			{http.MethodPost, "/admin/refresh/spot", auth, http.StatusUnauthorized, true},
			{http.MethodPost, "/admin/invalidate/spot", auth, http.StatusUnauthorized, true},
			{http.MethodGet, "/admin/status", auth, http.StatusUnauthorized, true},
			{http.MethodHead, "/admin/status", auth, http.StatusUnauthorized, true},
		} {
			off.run(t, ex)
		}
		for _, h := range []struct {
			header   http.Header
			conforms bool
		}{
			{nil, false},
			{oaHeader("Authorization", "Bearer wrong"), true}, // the right scheme; the token is the handler's to judge
			{oaHeader("Authorization", "Basic "+token), false},
		} {
			slow.run(t, oaExchange{http.MethodPost, "/admin/refresh/spot", h.header, http.StatusUnauthorized, h.conforms})
			slow.run(t, oaExchange{http.MethodPost, "/admin/invalidate/spot?l2=true", h.header, http.StatusUnauthorized, h.conforms})
			slow.run(t, oaExchange{http.MethodGet, "/admin/status", h.header, http.StatusUnauthorized, h.conforms})
			slow.run(t, oaExchange{http.MethodHead, "/admin/status", h.header, http.StatusUnauthorized, h.conforms})
		}
		if got := slow.run(t, oaExchange{http.MethodPost, "/admin/refresh/spot", auth, http.StatusOK, true}).body; !bytes.Contains(got, []byte(`"source":"MISS"`)) {
			t.Errorf("POST /admin/refresh/spot = %s, want source MISS", got)
		}
		slow.run(t, oaExchange{http.MethodPost, "/admin/refresh/spot", auth, http.StatusTooManyRequests, true})
		slow.run(t, oaExchange{http.MethodPost, "/admin/invalidate/spot?l2=true", auth, http.StatusTooManyRequests, true}) // one limit for both
		slow.run(t, oaExchange{http.MethodPost, "/admin/refresh/nope", auth, http.StatusNotFound, false})
		slow.run(t, oaExchange{http.MethodPost, "/admin/refresh/coinm", auth, http.StatusNotFound, true})
		slow.run(t, oaExchange{http.MethodGet, "/admin/status", auth, http.StatusOK, true})
		slow.run(t, oaExchange{http.MethodHead, "/admin/status", auth, http.StatusOK, true})

		w.upstream.Set(usdmPath, fetchtest.Response{Status: http.StatusInternalServerError, Body: []byte("<html>500</html>")})
		fast.run(t, oaExchange{http.MethodPost, "/admin/refresh/usdm", auth, http.StatusBadGateway, true})
		fast.run(t, oaExchange{http.MethodPost, "/admin/refresh/usdm", auth, http.StatusServiceUnavailable, true}) // the backoff after it
		fast.run(t, oaExchange{http.MethodGet, "/admin/status", auth, http.StatusOK, true})
		fast.run(t, oaExchange{http.MethodPost, "/admin/refresh/usdm?force=maybe", auth, http.StatusBadRequest, false})
		w.upstream.Set(usdmPath, fetchtest.Response{Body: fixtures.Read(t, "binance/usdm_exchangeinfo_2024-02-12.json"), Gzip: true})
		fast.run(t, oaExchange{http.MethodPost, "/admin/refresh/usdm?force=true", auth, http.StatusOK, true}) // the backoff ended

		for _, ex := range []oaExchange{
			{http.MethodPost, "/admin/invalidate/spot", auth, http.StatusOK, true},
			{http.MethodPost, "/admin/invalidate/spot?l2=true", auth, http.StatusOK, true},
			{http.MethodPost, "/admin/invalidate/usdm?l2=false", auth, http.StatusOK, true},
			{http.MethodPost, "/admin/invalidate/spot?l2=maybe", auth, http.StatusBadRequest, false},
			{http.MethodPost, "/admin/invalidate/nope", auth, http.StatusNotFound, false},
			{http.MethodPost, "/admin/invalidate/coinm", auth, http.StatusNotFound, true},
		} {
			fast.run(t, ex)
		}
		w.redis.Stop()
		fast.run(t, oaExchange{http.MethodPost, "/admin/invalidate/spot?l2=true", auth, http.StatusServiceUnavailable, true})
	})

	t.Run("change feed", func(t *testing.T) {
		// USD-M as Binance answered it in February 2024, then today: the
		// log of a real market's changes. The second answer is 5.3 times
		// the size of the first, so this Cache takes any growth.
		w := oaSmallWorld(t)
		c := oaFeedCache(w, nil, exchangeinfo.Spot, exchangeinfo.USDM)
		e, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Now: w.clock.Now, Heartbeat: 50 * time.Millisecond}))
		if err != nil {
			t.Fatal(err)
		}
		sc := newOACheck(t, doc, oaServe(t, oaStreamsEnd(e, 2*time.Second)))
		checks = append(checks, sc)
		ok := func(method, target string, h http.Header) oaResult {
			t.Helper()
			return sc.run(t, oaExchange{method, target, h, http.StatusOK, true})
		}
		bad := func(method, target string, h http.Header, status int, conforms bool) {
			t.Helper()
			sc.run(t, oaExchange{method, target, h, status, conforms})
		}
		page := func(target string) (p oaChangePage) {
			t.Helper()
			r := ok(http.MethodGet, target, nil)
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatalf("GET %s: %v", target, err)
			}
			if got := r.resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("GET %s Cache-Control = %q, want no-store", target, got)
			}
			return p
		}

		// Before any snapshot, the log has no end yet: 0-0.
		if p := page("/v1/changes/usdm"); p.Next != "0-0" || len(p.Changes) != 0 {
			t.Errorf("GET /v1/changes/usdm before any snapshot = %+v, want no changes and next 0-0", p)
		}
		ok(http.MethodGet, usdmPath, nil) // the 2024 snapshot: the log starts
		start := page("/v1/changes/usdm").Next
		ok(http.MethodHead, "/v1/changes/usdm", nil)
		w.upstream.Set(usdmPath, fetchtest.Response{Body: fixtures.Read(t, "binance/usdm_exchangeinfo.json"), Gzip: true})
		if _, err := c.Refresh(context.Background(), exchangeinfo.USDM); err != nil {
			t.Fatalf("Refresh(usdm) = %v", err)
		}
		end := page("/v1/changes/usdm").Next
		if start == "0-0" || end == start {
			t.Fatalf("the log's end before and after the refresh: %s, %s; want two ids", start, end)
		}

		// Follow from start, page after page, to the end.
		var all []oaChange
		for cursor, pages := start, 0; ; pages++ {
			p := page("/v1/changes/usdm?since=" + cursor + "&limit=5000")
			all = append(all, p.Changes...)
			if len(p.Changes) < 5000 || pages > 10 {
				if p.Next != end {
					t.Errorf("the last page's next = %s, want the log's end %s", p.Next, end)
				}
				break
			}
			cursor = p.Next
		}
		kinds := map[string]int{}
		for i, ch := range all {
			kinds[ch.Kind]++
			if i > 0 && !oaCursorBefore(all[i-1].ID, ch.ID) {
				t.Fatalf("change %d id %s after %s: want ids that grow", i, ch.ID, all[i-1].ID)
			}
		}
		t.Logf("%d changes from the 2024 USD-M answer to today's: %v", len(all), kinds)
		for _, k := range []string{"listed", "delisted", "filter", "field"} {
			if kinds[k] == 0 {
				t.Errorf("no %s change among %d, want some", k, len(all))
			}
		}
		// since=0 follows from the oldest change kept: the same changes.
		if p := page("/v1/changes/usdm?since=0&limit=5"); len(all) < 5 || len(p.Changes) != 5 || p.Changes[0].ID != all[0].ID || p.Next != all[4].ID {
			t.Errorf("GET /v1/changes/usdm?since=0&limit=5 = %d changes from %v, next %s; want the first 5 of %d", len(p.Changes), p.Changes, p.Next, len(all))
		}
		for _, q := range []string{
			"since=0-0&symbol=btcusdt,%20ETHUSDT&kind=FILTER,field",
			"since=" + start + "&kind=listed,delisted&limit=3",
			"since=" + start + "&symbol=NOSUCHSYMBOL",
			"since=" + end,
		} {
			p := page("/v1/changes/usdm?" + q)
			ok(http.MethodHead, "/v1/changes/usdm?"+q, nil)
			for _, ch := range p.Changes {
				if strings.Contains(q, "symbol=btcusdt") && ch.Symbol != "BTCUSDT" && ch.Symbol != "ETHUSDT" {
					t.Errorf("GET ?%s: a change of %s", q, ch.Symbol)
				}
			}
		}
		// Gone: before the log's start, or past its end (a cursor of a log
		// that was lost).
		for _, since := range []string{"1-0", "99999999999999-0"} {
			bad(http.MethodGet, "/v1/changes/usdm?since="+since, nil, http.StatusGone, true)
			bad(http.MethodHead, "/v1/changes/usdm?since="+since, nil, http.StatusGone, true)
		}
		for _, tt := range []struct {
			query    string
			conforms bool
		}{
			{"since=abc", false},
			{"since=", false},
			{"since=01-0", false},
			{"since=18446744073709551616-0", true},
			{"kind=nope", true},
			{"kind=filter,", false},
			{"limit=0", false},
			{"limit=5001", false},
			{"limit=ten", false},
			{"symbol=,", true}, // no name in it
			{"cursor=1", false},
			{"since=0&since=1", false},
			{"%zz=1", false},
		} {
			bad(http.MethodGet, "/v1/changes/usdm?"+tt.query, nil, http.StatusBadRequest, tt.conforms)
			bad(http.MethodHead, "/v1/changes/usdm?"+tt.query, nil, http.StatusBadRequest, tt.conforms)
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			bad(m, "/v1/changes/nope", nil, http.StatusBadRequest, false) // 400 here, unlike /v1/symbols
			bad(m, "/v1/changes/coinm", nil, http.StatusNotFound, true)
		}

		// The stream. Its answers end when the server's context does.
		stream := func(target string, h http.Header) string {
			t.Helper()
			r := sc.run(t, oaExchange{http.MethodGet, target, h, http.StatusOK, true})
			if got := r.resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("GET %s Cache-Control = %q, want no-store", target, got)
			}
			return string(r.body)
		}
		if got, want := stream("/v1/changes/usdm/stream", nil), "retry: 2000\nid: "+end+"\n\n: heartbeat\n\n"; !strings.HasPrefix(got, want) {
			t.Errorf("GET /v1/changes/usdm/stream = %.200q, want the end of the log as its id, then heartbeats: %q…", got, want)
		}
		// The changes of one symbol, as the pages gave them.
		var btc []oaChange
		for _, ch := range all {
			if ch.Symbol == "BTCUSDT" {
				btc = append(btc, ch)
			}
		}
		body := stream("/v1/changes/usdm/stream?since="+start+"&symbol=BTCUSDT", nil)
		if !strings.HasPrefix(body, "retry: 2000\nid: "+start+"\n\n") {
			t.Errorf("GET /v1/changes/usdm/stream?since=%s = %.200q, want the cursor in force first", start, body)
		}
		var sent []oaChange
		for _, ev := range oaEvents(t, body)[1:] {
			if ev.comment != "" {
				continue
			}
			var ch oaChange
			if err := json.Unmarshal([]byte(ev.data), &ch); err != nil || ev.event != "" || ev.id != ch.ID {
				t.Fatalf("event %+v: %v; want a message with the change's id and its JSON", ev, err)
			}
			sent = append(sent, ch)
		}
		if len(btc) == 0 || !reflect.DeepEqual(sent, btc) {
			t.Errorf("the stream of BTCUSDT's changes sent %d changes, want the %d the pages gave", len(sent), len(btc))
		}
		// Last-Event-ID, a reconnecting EventSource's, wins over since.
		if got := stream("/v1/changes/usdm/stream?since=0", oaHeader("Last-Event-ID", end)); !strings.HasPrefix(got, "retry: 2000\nid: "+end+"\n\n") {
			t.Errorf("GET /v1/changes/usdm/stream?since=0 with Last-Event-ID %s = %.200q, want to resume at %s", end, got, end)
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			if m == http.MethodHead {
				ok(m, "/v1/changes/usdm/stream", nil)
				ok(m, "/v1/changes/usdm/stream?since="+start+"&kind=filter", oaHeader("Last-Event-ID", end))
			}
			bad(m, "/v1/changes/usdm/stream?since=1-0", nil, http.StatusGone, true)
			bad(m, "/v1/changes/usdm/stream", oaHeader("Last-Event-ID", "1-0"), http.StatusGone, true)
			bad(m, "/v1/changes/usdm/stream", oaHeader("Last-Event-ID", "last"), http.StatusBadRequest, false)
			bad(m, "/v1/changes/usdm/stream?limit=1", nil, http.StatusBadRequest, false)
			bad(m, "/v1/changes/usdm/stream?kind=nope", nil, http.StatusBadRequest, true)
			bad(m, "/v1/changes/nope/stream", nil, http.StatusBadRequest, false)
			bad(m, "/v1/changes/coinm/stream", nil, http.StatusNotFound, true)
		}

		// Redis down: the log cannot be read.
		w.redis.Stop()
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			bad(m, "/v1/changes/usdm?since="+start, nil, http.StatusServiceUnavailable, true)
			bad(m, "/v1/changes/usdm/stream", nil, http.StatusServiceUnavailable, true)
		}
	})

	t.Run("change stream gone", func(t *testing.T) {
		// Without Redis, the log is this process's, and the world's clock
		// ages it: it keeps 1 entry and what is younger than a minute.
		w := newWorld(t, false)
		base := fixtures.Read(t, "binance/usdm_exchangeinfo_2024-02-12.json")
		withTick := func(tick string) []byte { // BTCUSDT's tick size, 0.10 in the recording
			t.Helper()
			at := bytes.Index(base, []byte(`"symbol":"BTCUSDT"`))
			i := bytes.Index(base[max(at, 0):], []byte(`"tickSize":"0.10"`))
			if at < 0 || i < 0 {
				t.Fatal("no BTCUSDT tickSize in the 2024 USD-M recording")
			}
			at += i
			return slices.Concat(base[:at], []byte(`"tickSize":"`+tick+`"`), base[at+len(`"tickSize":"0.10"`):])
		}
		w.upstream.Set(usdmPath, fetchtest.Response{Body: base})
		c := oaFeedCache(w, func(cfg *symcache.Config) { cfg.ChangesMax, cfg.ChangesAge = 1, time.Minute }, exchangeinfo.USDM)
		e, err := httpapi.New(w.withTiers(httpapi.Config{Cache: c, Logger: discard(), Now: w.clock.Now}))
		if err != nil {
			t.Fatal(err)
		}
		refresh := func(body []byte) {
			w.upstream.Set(usdmPath, fetchtest.Response{Body: body})
			if _, err := c.Refresh(context.Background(), exchangeinfo.USDM); err != nil {
				t.Errorf("Refresh(usdm) = %v", err)
			}
		}
		// Once the stream started, before it reads: a change, then another
		// two minutes later, which trims the first one from the log.
		behind := func() {
			refresh(withTick("0.20"))
			w.clock.Advance(2 * time.Minute)
			refresh(withTick("0.30"))
		}
		sc := newOACheck(t, doc, oaServe(t, oaStreamsEnd(oaOnFirstFlush(e, behind), 5*time.Second)))
		checks = append(checks, sc)
		sc.run(t, oaExchange{http.MethodGet, usdmPath, nil, http.StatusOK, true})
		var p oaChangePage
		if err := json.Unmarshal(sc.run(t, oaExchange{http.MethodGet, "/v1/changes/usdm", nil, http.StatusOK, true}).body, &p); err != nil {
			t.Fatal(err)
		}
		target := "/v1/changes/usdm/stream?since=" + p.Next
		evs := oaEvents(t, string(sc.run(t, oaExchange{http.MethodGet, target, nil, http.StatusOK, true}).body))
		var gone apiError
		if len(evs) != 2 || evs[0] != (oaEvent{id: p.Next, retry: "2000"}) || evs[1].event != "gone" || evs[1].id != "" ||
			json.Unmarshal([]byte(evs[1].data), &gone) != nil || gone.Code == nil || *gone.Code != -1130 || gone.Msg == nil {
			t.Errorf("GET %s = %+v, want the cursor, then the event gone with a -1130 error, then the end", target, evs)
		}
		// The stream's last id is gone too: reconnecting is a 410.
		sc.run(t, oaExchange{http.MethodGet, "/v1/changes/usdm/stream", oaHeader("Last-Event-ID", p.Next), http.StatusGone, true})
		sc.run(t, oaExchange{http.MethodGet, "/v1/changes/usdm?since=" + p.Next, nil, http.StatusGone, true})
	})

	// Every status the document gives an operation was answered by the
	// handlers.
	seen, n := map[string]bool{}, 0
	for _, sc := range checks {
		maps.Copy(seen, sc.seen)
		n += sc.n
	}
	t.Logf("%d exchanges checked, answering %d operation and status pairs", n, len(seen))
	for path, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, status := range op.Responses.Keys() {
				if !seen[op.OperationID+" "+status] {
					t.Errorf("%s (%s) %s: never answered in these exchanges", op.OperationID, path, status)
				}
			}
		}
	}
}

// oaFeedCache is world.cache without the growth guard (Config.MaxGrowth
// negative: the change feed's exchanges replace the 2024 USD-M recording
// with today's, 5.3 times its size), and with tweak's changes to its Config.
func oaFeedCache(w *world, tweak func(*symcache.Config), markets ...exchangeinfo.Market) *symcache.Cache {
	t := w.tb
	t.Helper()
	cfg := symcache.Config{
		Upstreams:       make(map[exchangeinfo.Market]symcache.Upstream),
		RefreshInterval: -1,
		MaxGrowth:       -1,
		Logger:          discard(),
		Now:             w.clock.Now,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	gate := fetch.NewGate()
	w.upstreams = make(map[exchangeinfo.Market]httpapi.UpstreamStats)
	for _, m := range markets {
		up, err := fetch.New(fetch.Config{Market: m, BaseURLs: []string{w.upstream.URL}, Gate: gate, Logger: discard(), Now: w.clock.Now})
		if err != nil {
			t.Fatalf("fetch.New(%s) = %v", m, err)
		}
		cfg.Upstreams[m], w.upstreams[m] = up, up
	}
	mem, err := l1.New(l1.Config{})
	if err != nil {
		t.Fatalf("l1.New = %v", err)
	}
	t.Cleanup(mem.Close)
	cfg.L1, w.l1, w.l2 = mem, mem, nil
	if w.redis != nil {
		store := l2.New(l2.Config{Client: w.redis.Client(t), Logger: discard(), Timeout: time.Second})
		cfg.L2, cfg.Coordinator, w.l2 = store, store, store
	}
	c, err := symcache.New(cfg)
	if err != nil {
		t.Fatalf("symcache.New = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// oaStreamsEnd serves h, ending each change stream once it has sent
// nothing but heartbeats for d (its request's context ends), so that its
// answer can be read whole however slow the machine is: a stream that
// caught up goes quiet, one still sending changes goes on.
func oaStreamsEnd(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/stream") {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			idle := time.AfterFunc(d, cancel)
			defer idle.Stop()
			w = oaWriteHook{w, func(b []byte) {
				if !bytes.HasPrefix(b, []byte(": heartbeat")) {
					idle.Reset(d)
				}
			}}
			r = r.WithContext(ctx)
		}
		h.ServeHTTP(w, r)
	})
}

// oaWriteHook calls wrote with each write, before writing it.
type oaWriteHook struct {
	http.ResponseWriter
	wrote func([]byte)
}

func (w oaWriteHook) Write(b []byte) (int, error) {
	w.wrote(b)
	return w.ResponseWriter.Write(b)
}

func (w oaWriteHook) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w oaWriteHook) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// oaOnFirstFlush serves h, and calls f once, before it returns from the
// first flush of a change stream: after the stream's cursor was checked
// and its first block sent, before it reads the log.
func oaOnFirstFlush(h http.Handler, f func()) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/stream") {
			w = oaFlushHook{w, func() { once.Do(f) }}
		}
		h.ServeHTTP(w, r)
	})
}

type oaFlushHook struct {
	http.ResponseWriter
	after func()
}

func (w oaFlushHook) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
	w.after()
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w oaFlushHook) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// oaChangePage and oaChange are a page of the change feed and a change, as
// the document describes them.
type oaChangePage struct {
	Market  string     `json:"market"`
	Changes []oaChange `json:"changes"`
	Next    string     `json:"next"`
}

type oaChange struct {
	ID      string          `json:"id"`
	Market  string          `json:"market"`
	Kind    string          `json:"kind"`
	Symbol  string          `json:"symbol"`
	Filter  string          `json:"filter"`
	Field   string          `json:"field"`
	Old     json.RawMessage `json:"old"`
	New     json.RawMessage `json:"new"`
	Added   []string        `json:"added"`
	Removed []string        `json:"removed"`
	Status  string          `json:"status"`
	From    map[string]any  `json:"from"`
	To      map[string]any  `json:"to"`
}

// oaCursorBefore reports whether the cursor a ("<ms>-<seq>") is before b.
func oaCursorBefore(a, b string) bool {
	num := func(c string) (ms, seq uint64) {
		m, s, _ := strings.Cut(c, "-")
		ms, _ = strconv.ParseUint(m, 10, 64)
		seq, _ = strconv.ParseUint(s, 10, 64)
		return ms, seq
	}
	am, as := num(a)
	bm, bs := num(b)
	return am < bm || am == bm && as < bs
}

// oaEvent is one block of a Server-Sent Events stream.
type oaEvent struct {
	id, event, data, retry, comment string
}

// oaEvents reads an event stream as the document describes it: blocks
// ended by a blank line, each of "name: value" lines or one comment line.
func oaEvents(t *testing.T, body string) []oaEvent {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("event stream %.200q…: want blocks ended by a blank line", body)
	}
	var out []oaEvent
	for block := range strings.SplitSeq(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		var ev oaEvent
		for line := range strings.SplitSeq(block, "\n") {
			name, value, found := strings.Cut(line, ": ")
			switch {
			case name == "" && found:
				ev.comment = value
			case name == "id":
				ev.id = value
			case name == "event":
				ev.event = value
			case name == "data":
				ev.data = value
			case name == "retry":
				ev.retry = value
			default:
				t.Fatalf("event stream: line %q in block %q", line, block)
			}
		}
		out = append(out, ev)
	}
	return out
}

// oaServe serves h on a real listener, like world.server.
func oaServe(t *testing.T, h http.Handler) *server {
	t.Helper()
	srv := httptest.NewServer(h)
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(func() { tr.CloseIdleConnections(); srv.Close() })
	return &server{tb: t, url: srv.URL, client: &http.Client{Transport: tr}}
}

// TestOpenAPI_FullAnswers validates the full recorded answers (3.7 MB spot,
// 1.7 MB USD-M, COIN-M) once each, and the answers the document gives as
// examples ("GET <target>" in their summary), which must be real: the
// handlers answer them with that status and that body (fetched_at aside).
func TestOpenAPI_FullAnswers(t *testing.T) {
	doc := oaLoadSpec(t)
	w := newWorld(t, false)
	sc := newOACheck(t, doc, w.server(w.cache(oaMarkets...), nil))
	for _, p := range []string{spotPath, usdmPath, coinmPath} {
		start := time.Now()
		r := sc.run(t, oaExchange{http.MethodGet, p, nil, http.StatusOK, true})
		t.Logf("GET %s: %d bytes validated in %v", p, len(r.body), time.Since(start).Round(time.Millisecond))
	}
	start := time.Now()
	r := sc.run(t, oaExchange{http.MethodGet, spotPath, oaHeader("Accept-Encoding", "gzip"), http.StatusOK, true})
	t.Logf("GET %s gzipped: %d bytes after gunzip validated in %v", spotPath, len(r.body), time.Since(start).Round(time.Millisecond))

	n := 0
	for path, item := range doc.Paths.Map() {
		if item.Get == nil {
			continue
		}
		for status, resp := range item.Get.Responses.Map() {
			for _, mt := range resp.Value.Content {
				for name, ex := range mt.Examples {
					target, found := strings.CutPrefix(ex.Value.Summary, "GET ")
					if !found {
						continue
					}
					target, _, _ = strings.Cut(target, " ")
					n++
					want, err := strconv.Atoi(status)
					if err != nil {
						t.Fatalf("%s: status %q", path, status)
					}
					r := sc.run(t, oaExchange{http.MethodGet, target, nil, want, sc.conforms(target)})
					var got any
					if err := json.Unmarshal(r.body, &got); err != nil {
						t.Errorf("example %s of %s %s: GET %s body: %v", name, path, status, target, err)
						continue
					}
					if !reflect.DeepEqual(oaWithoutFetchedAt(got), oaWithoutFetchedAt(ex.Value.Value)) {
						g, _ := json.Marshal(got)
						e, _ := json.Marshal(ex.Value.Value)
						t.Errorf("example %s of %s %s differs from the real answer to GET %s:\n got %.600s\nwant %.600s", name, path, status, target, g, e)
					}
				}
			}
		}
	}
	if n < 20 {
		t.Errorf("%d examples replayed, want at least 20", n)
	}
	t.Logf("%d examples replayed", n)
}

// conforms is whether target's request conforms to the document, for the
// examples' requests, whose conformance is not the point.
func (sc *oaCheck) conforms(target string) bool {
	req, err := http.NewRequest(http.MethodGet, sc.srv.url+target, nil)
	if err != nil {
		return false
	}
	route, params, err := sc.router.FindRoute(req)
	if err != nil {
		return false
	}
	return oaStrictQuery(route, req.URL.RawQuery) == nil && openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: oaBearerSent, SkipSettingDefaults: true},
	}) == nil
}

// oaWithoutFetchedAt drops a top-level fetched_at, which differs per run.
func oaWithoutFetchedAt(v any) any {
	if m, ok := v.(map[string]any); ok {
		m = maps.Clone(m)
		delete(m, "fetched_at")
		return m
	}
	return v
}

// TestOpenAPI_CatchesDisagreement proves the checks can fail: each change
// to the document makes an exchange that agrees with the real one disagree.
func TestOpenAPI_CatchesDisagreement(t *testing.T) {
	w := oaSmallWorld(t)
	srv := w.server(w.cache(oaMarkets...), nil)
	for _, tt := range []struct {
		name   string
		change func(doc *openapi3.T)
		ex     oaExchange
	}{
		{"X-Cache without HIT-L1", func(doc *openapi3.T) {
			doc.Components.Headers["X-Cache"].Value.Schema.Value.Enum = []any{"HIT-L2", "MISS", "STALE"}
		}, oaExchange{http.MethodGet, "/v1/symbols/spot/ETHBTC", nil, http.StatusOK, true}},
		{"no 304", func(doc *openapi3.T) {
			doc.Paths.Value("/api/v3/exchangeInfo").Get.Responses.Delete("304")
		}, oaExchange{http.MethodGet, spotPath, oaHeader("If-None-Match", "*"), http.StatusNotModified, true}},
		{"no Vary on 200", func(doc *openapi3.T) {
			delete(doc.Paths.Value("/api/v3/exchangeInfo").Get.Responses.Status(200).Value.Headers, "Vary")
		}, oaExchange{http.MethodGet, spotPath, nil, http.StatusOK, true}},
		{"Cache-Control as s-maxage", func(doc *openapi3.T) {
			doc.Components.Headers["Cache-Control"].Value.Schema.Value.Pattern = "^s-maxage=[0-9]+$"
		}, oaExchange{http.MethodHead, "/v1/symbols/usdm/BTCUSDT/rules", nil, http.StatusOK, true}},
		{"count as a string", func(doc *openapi3.T) {
			doc.Components.Schemas["SymbolPage"].Value.Properties["count"].Value.Type = &openapi3.Types{"string"}
		}, oaExchange{http.MethodGet, "/v1/symbols/spot?limit=1", nil, http.StatusOK, true}},
		{"a rules field less", func(doc *openapi3.T) {
			delete(doc.Components.Schemas["Rules"].Value.Properties, "contract_size")
		}, oaExchange{http.MethodGet, "/v1/symbols/coinm/BTCUSD_PERP/rules", nil, http.StatusOK, true}},
		{"ETag not documented on HEAD", func(doc *openapi3.T) {
			delete(doc.Components.Responses["DataHead"].Value.Headers, "ETag")
		}, oaExchange{http.MethodHead, "/v1/symbols/spot/BTCUSDT", nil, http.StatusOK, true}},
		{"limit up to 100", func(doc *openapi3.T) {
			doc.Components.Parameters["ListLimit"].Value.Schema.Value.Max = openapi3.Ptr(100.0)
		}, oaExchange{http.MethodGet, "/v1/symbols/spot?limit=5000", nil, http.StatusOK, true}},
		{"symbolStatus without BREAK", func(doc *openapi3.T) {
			doc.Components.Parameters["SpotSymbolStatus"].Value.Schema.Value.Enum = []any{"TRADING", "HALT"}
		}, oaExchange{http.MethodGet, spotPath + "?symbolStatus=BREAK", nil, http.StatusOK, true}},
		{"error codes without -1121", func(doc *openapi3.T) {
			doc.Components.Schemas["ExchangeInfoError"].Value.AllOf[1].Value.Properties["code"].Value.Enum = []any{-1100.0}
		}, oaExchange{http.MethodGet, spotPath + "?symbol=NOPE", nil, http.StatusBadRequest, true}},
		{"next as an integer", func(doc *openapi3.T) {
			doc.Components.Schemas["ChangePage"].Value.Properties["next"] = openapi3.NewSchemaRef("", openapi3.NewIntegerSchema())
		}, oaExchange{http.MethodGet, "/v1/changes/spot", nil, http.StatusOK, true}},
		{"no X-Accel-Buffering on the stream", func(doc *openapi3.T) {
			delete(doc.Components.Responses["ChangesStreamHead"].Value.Headers, "X-Accel-Buffering")
		}, oaExchange{http.MethodHead, "/v1/changes/usdm/stream", nil, http.StatusOK, true}},
		{"healthz as JSON", func(doc *openapi3.T) {
			r := doc.Paths.Value("/healthz").Get.Responses.Status(200).Value
			r.Content = openapi3.NewContentWithJSONSchema(openapi3.NewStringSchema())
		}, oaExchange{http.MethodGet, "/healthz", nil, http.StatusOK, true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := oaLoadSpec(t)
			sc := newOACheck(t, doc, srv)
			if r := sc.do(tt.ex); len(r.problems) != 0 {
				t.Fatalf("%v before the change: %q", tt.ex, r.problems)
			}
			tt.change(doc)
			if r := sc.do(tt.ex); len(r.problems) == 0 {
				t.Errorf("%v after %s: no disagreement found", tt.ex, tt.name)
			}
		})
	}
}
