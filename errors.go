package symcache

import (
	"errors"
	"fmt"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
	"github.com/symcache/symcache/fetch"
)

// ErrUnavailable means no tier has a snapshot to serve: nothing valid was
// ever seen, or the newest is older than Config.StaleMax. The error is an
// *UnavailableError.
var ErrUnavailable = errors.New("symcache: unavailable")

// ErrUnknownMarket means the Cache was asked for a market it does not serve.
var ErrUnknownMarket = errors.New("symcache: market not served")

// UnavailableError is returned when there is nothing to serve.
type UnavailableError struct {
	Market     exchangeinfo.Market
	Cause      error         // why the upstream failed; may be nil
	RetryAfter time.Duration // when a retry may succeed (the upstream backoff), at least a second
}

func (e *UnavailableError) Error() string {
	if e.Cause == nil {
		return fmt.Sprintf("symcache %s: unavailable", e.Market)
	}
	return fmt.Sprintf("symcache %s: unavailable: %v", e.Market, e.Cause)
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

func (e *UnavailableError) Unwrap() error { return e.Cause }

// ShrinkError rejects an upstream answer that lost more symbols than
// Config.MaxSymbolLoss allows, compared with the last good snapshot.
type ShrinkError struct {
	Market   exchangeinfo.Market
	Had, Got int // symbols in the last good snapshot and in the answer
}

func (e *ShrinkError) Error() string {
	return fmt.Sprintf("symcache %s: upstream answer lost %d of %d symbols", e.Market, e.Had-e.Got, e.Had)
}

// GrowthError holds back an upstream answer far larger than the last good
// snapshot (Config.MaxGrowth), or with a symbol object larger than
// Config.MaxSymbolBytes.
type GrowthError struct {
	Market exchangeinfo.Market
	Reason string // what is too large, e.g. "800000 symbols, more than 4 times the last good 2292"
}

func (e *GrowthError) Error() string {
	return fmt.Sprintf("symcache %s: upstream answer far larger: %s", e.Market, e.Reason)
}

// BackoffError is what Refresh returns instead of asking Binance while the
// market is in a backoff: after a failed fetch (for at least Binance's
// Retry-After after a 429 or 418), while a host is blocked, or while another
// process of the deployment holds the refresh lock as a backoff. Until says
// when Binance may be asked; Cause, why not before. It is the type package
// fetch returns for a blocked host: one type for every backoff.
type BackoffError = fetch.BackoffError

func unknownMarket(m exchangeinfo.Market) error {
	return fmt.Errorf("%w: %q", ErrUnknownMarket, string(m))
}
