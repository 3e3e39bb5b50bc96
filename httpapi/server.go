package httpapi

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/symcache/symcache/exchangeinfo"
)

// Server is the HTTP API, an http.Handler. Echo routes every request but
// the ones clients send most, GET and HEAD of a market's exchangeInfo path
// and of /v1/symbols/{market}/{symbol}: ServeHTTP matches those itself and
// runs their handlers with a context from echo's pool, skipping the router
// and the middleware chain it would build per request. The answers,
// headers, errors and counts are the same either way.
type Server struct {
	*echo.Echo
	h     *handler
	paths map[string]route // a market's exchangeInfo path: its route
	sym   route            // /v1/symbols/:market/:symbol
}

// route is a handler and the path echo knows it by (for metrics and logs).
type route struct {
	path string
	hf   pathHandler
}

func newServer(e *echo.Echo, h *handler) *Server {
	s := &Server{Echo: e, h: h, paths: map[string]route{}, sym: route{"/v1/symbols/:market/:symbol", h.symbolAt}}
	for _, m := range exchangeinfo.Markets() {
		hf := h.exchangeInfo(m)
		s.paths[m.Path()] = route{m.Path(), func(c echo.Context, _ pathParams) error { return hf(c) }}
	}
	return s
}

// ServeHTTP answers r.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead || r.URL.RawPath != "" {
		s.Echo.ServeHTTP(w, r) // escaped paths too: echo routes them on RawPath
		return
	}
	if rt, pp, ok := s.route(r.URL.Path); ok {
		s.serve(w, r, rt, pp)
		return
	}
	s.Echo.ServeHTTP(w, r)
}

// route returns the route of an unescaped path that ServeHTTP answers
// without echo's router, and its parameters.
func (s *Server) route(path string) (route, pathParams, bool) {
	if rt, ok := s.paths[path]; ok {
		return rt, pathParams{}, true
	}
	if rest, ok := strings.CutPrefix(path, "/v1/symbols/"); ok {
		// Echo's :market and :symbol: each one non-empty segment.
		market, symbol, ok := strings.Cut(rest, "/")
		if ok && market != "" && symbol != "" && strings.IndexByte(symbol, '/') < 0 {
			return s.sym, pathParams{market, symbol}, true
		}
	}
	return route{}, pathParams{}, false
}

// serve runs rt's handler as echo would after routing r to it, with the
// path's parameters given directly: echo's context has none.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt route, pp pathParams) {
	c := s.Echo.AcquireContext()
	defer s.Echo.ReleaseContext(c)
	c.Reset(r, w)
	c.SetPath(rt.path)
	s.h.counted(c, rt.hf, pp)
}
