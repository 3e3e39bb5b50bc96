package main

import (
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/forward"
)

// venues are the Binance venues BINANCE_VENUE names (parseConfig's error
// lists them too), each with the base URL of every market it has. A market a venue lacks has no entry: serving it
// needs a URL of its own, and its paths are not forwarded.
var venues = map[string]map[exchangeinfo.Market]string{
	// Binance itself, what a base URL defaults to.
	"binance": {
		exchangeinfo.Spot:  exchangeinfo.Spot.DefaultBaseURL(),  // https://api.binance.com
		exchangeinfo.USDM:  exchangeinfo.USDM.DefaultBaseURL(),  // https://fapi.binance.com
		exchangeinfo.COINM: exchangeinfo.COINM.DefaultBaseURL(), // https://dapi.binance.com
	},
	// Binance's test networks: the spot testnet, and the futures testnet,
	// which serves /fapi/ and /dapi/ from one host. Both are reset from time
	// to time, and list other symbols, with other limits, than Binance.
	"testnet": {
		exchangeinfo.Spot:  "https://testnet.binance.vision",
		exchangeinfo.USDM:  "https://testnet.binancefuture.com",
		exchangeinfo.COINM: "https://testnet.binancefuture.com",
	},
	// Binance.US: spot only, no futures.
	"binance-us": {
		exchangeinfo.Spot: "https://api.binance.us",
	},
}

// boolValue is a boolean flag (-demo alone sets it) whose text is checked
// after parsing, as the other settings' are, so that a bad value is one
// line naming the flag or its variable.
type boolValue string

func (b *boolValue) String() string {
	if b == nil {
		return ""
	}
	return string(*b)
}

func (b *boolValue) Set(s string) error { *b = boolValue(s); return nil }

func (b *boolValue) IsBoolFlag() bool { return true }

// unforwarded answers a 404 in Binance's error shape for the paths of the
// markets a venue lacks, and hands the rest to next: without it, the
// Forwarder would send them to its default, Binance's own hosts.
type unforwarded struct {
	next     http.Handler
	prefixes []string // forward.Prefixes of the markets without a base URL
	venue    string
}

// forwardWithout wraps fwd so that the paths of the markets with no base URL
// in baseURLs are not forwarded; with none, it returns fwd.
func forwardWithout(fwd http.Handler, baseURLs map[exchangeinfo.Market][]string, venue string) http.Handler {
	u := unforwarded{next: fwd, venue: venue}
	for _, p := range forward.Prefixes {
		if m := prefixMarket(p); len(baseURLs[m]) == 0 {
			u.prefixes = append(u.prefixes, p)
		}
	}
	if len(u.prefixes) == 0 {
		return fwd
	}
	return u
}

// prefixMarket is the market forward sends a prefix's paths to.
func prefixMarket(prefix string) exchangeinfo.Market {
	switch prefix {
	case "/fapi/":
		return exchangeinfo.USDM
	case "/dapi/":
		return exchangeinfo.COINM
	}
	return exchangeinfo.Spot
}

func (u unforwarded) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The path as decoded, as escaped, and as sent: whichever the
	// Forwarder would route by, it is not sent.
	sent, _, _ := strings.Cut(r.RequestURI, "?")
	if i := slices.IndexFunc(u.prefixes, func(p string) bool {
		return strings.HasPrefix(r.URL.Path, p) || strings.HasPrefix(r.URL.EscapedPath(), p) || strings.HasPrefix(sent, p)
	}); i >= 0 {
		p := u.prefixes[i]
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"code":-1000,"msg":"Not forwarded: the venue `+u.venue+` has no `+string(prefixMarket(p))+` market, and `+p+` has no base URL (BINANCE_VENUE)."}`)
		return
	}
	u.next.ServeHTTP(w, r)
}
