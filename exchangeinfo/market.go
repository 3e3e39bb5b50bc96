package exchangeinfo

import (
	"fmt"
	"strings"
)

// Market names one of Binance's exchangeInfo endpoints. Its string form
// ("spot", "usdm", "coinm") is what configuration, URLs and Redis keys use.
type Market string

// The markets symcache knows.
const (
	Spot  Market = "spot"  // GET https://api.binance.com/api/v3/exchangeInfo
	USDM  Market = "usdm"  // GET https://fapi.binance.com/fapi/v1/exchangeInfo
	COINM Market = "coinm" // GET https://dapi.binance.com/dapi/v1/exchangeInfo
)

// Markets lists every known market in a fixed order.
func Markets() []Market { return []Market{Spot, USDM, COINM} }

// ParseMarket returns the market named s (case-insensitive, surrounding
// spaces ignored), or an error naming the accepted values.
func ParseMarket(s string) (Market, error) {
	m := Market(strings.ToLower(strings.TrimSpace(s)))
	if m.Valid() {
		return m, nil
	}
	return "", fmt.Errorf("unknown market %q (want spot, usdm or coinm)", s)
}

// Valid reports whether m is one of the known markets.
func (m Market) Valid() bool {
	switch m {
	case Spot, USDM, COINM:
		return true
	}
	return false
}

// Path is the market's exchangeInfo path on Binance, e.g. "/api/v3/exchangeInfo".
// It is empty for an unknown market.
func (m Market) Path() string {
	switch m {
	case Spot:
		return "/api/v3/exchangeInfo"
	case USDM:
		return "/fapi/v1/exchangeInfo"
	case COINM:
		return "/dapi/v1/exchangeInfo"
	}
	return ""
}

// DefaultBaseURL is Binance's production base URL for the market, e.g.
// "https://api.binance.com". It is empty for an unknown market.
func (m Market) DefaultBaseURL() string {
	switch m {
	case Spot:
		return "https://api.binance.com"
	case USDM:
		return "https://fapi.binance.com"
	case COINM:
		return "https://dapi.binance.com"
	}
	return ""
}

func (m Market) String() string { return string(m) }
