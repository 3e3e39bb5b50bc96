// Package changes compares two exchangeInfo snapshots of one market, symbol
// by symbol, and reports each difference as a Change:
//
//	kind         when                                                   carries
//	listed       a symbol is in the new snapshot only                   Symbol, Status
//	delisted     a symbol is in the old snapshot only                   Symbol, Status (its last)
//	status       status or contractStatus differs                       Field, Old, New
//	permissions  the set of strings in permissions differs              Added, Removed, Old, New
//	filter       one field of one filter differs, or a filter appears   Filter, Field, Old, New
//	             or disappears (Field empty, Old or New the object)
//	field        any other member of the symbol object differs          Field, Old, New
//	rate_limits  the top-level rateLimits differ                        Old, New
//
// Old and New are Binance's bytes for the value, with the whitespace between
// tokens removed: "0.01000000" with its quotes, an array, an object. A side
// that has no value (a filter that appears has no Old) has none.
//
// What counts as a difference:
//   - Whitespace between tokens never does: Binance's formatting may change.
//   - Members of a symbol object and of a filter are matched by name, so
//     their order does not count. Names are decoded (an escaped name is the
//     same name) and case counts: a member "Status" is a field, not the
//     status. A name repeated within one object counts once, with its last
//     value, as encoding/json decodes it into a map.
//   - Filters are matched by filterType, so their order does not count
//     either. A type that appears twice in one symbol is matched in order:
//     the first with the first, the second with the second, and an extra one
//     appears or disappears. A filter whose filterType is missing or not a
//     string has the type "", and an entry of filters that is not an object
//     is a filter of type "" without fields: it changes whole (Field empty,
//     Old and New both set). A missing filters is an empty one.
//   - permissions is a set: its order and repeats do not count, nor does an
//     absent array against an empty one. permissionSets (spot's array of
//     arrays, USD-M's flat array) is a field like any other, compared whole.
//   - Every other value, rateLimits included, is compared as its compacted
//     bytes: a reordered object inside it, or "1.0" for "1", counts.
//   - A member the package does not know is a field like any other: nothing
//     is dropped. A filters value that is not an array, or a permissions
//     value that is not an array of strings, is compared as a field.
//   - The top-level members other than rateLimits and symbols (timezone,
//     serverTime, exchangeFilters, assets, futuresType, sors) are not
//     compared.
//
// Diff returns the changes in one order: rate_limits first, then by symbol
// name, then by kind (listed, delisted, status, permissions, filter, field),
// then by filter type and field name; the changes of a filter type that a
// symbol repeats keep the order of its filters.
package changes

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/symcache/symcache/exchangeinfo"
)

// Change is one difference between two snapshots of a market. Diff fills
// every field but ID; a field that does not apply to the kind is zero, and
// omitted from its JSON.
type Change struct {
	// ID is the change's cursor, ordered within its market; a consumer
	// resumes after the last one it saw. Diff leaves it empty: the store
	// that records the change assigns it.
	ID     string              `json:"id,omitempty"`
	Market exchangeinfo.Market `json:"market"`
	Kind   Kind                `json:"kind"`
	// Symbol is the symbol's name; empty for rate_limits.
	Symbol string `json:"symbol,omitempty"`
	// Filter is the filterType of the filter that changed (kind filter).
	Filter string `json:"filter,omitempty"`
	// Field names the member that changed: the filter's field (kind filter;
	// empty when the whole filter appears or disappears), the symbol's
	// member (kind field), or "status" or "contractStatus" (kind status).
	Field string `json:"field,omitempty"`
	// Old and New are the value before and after, as Binance wrote it with
	// the whitespace between tokens removed: `"0.01000000"`, `["SPOT"]`, an
	// object. Absent on a side that has no value. For permissions, the whole
	// arrays; unset for listed and delisted.
	Old json.RawMessage `json:"old,omitempty"`
	New json.RawMessage `json:"new,omitempty"`
	// Added and Removed are the permissions gained and lost (kind
	// permissions), each in the order of its array.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Status is the symbol's status (contractStatus on COIN-M) in the
	// snapshot that has it (kinds listed and delisted).
	Status string `json:"status,omitempty"`
	// From and To are the snapshots compared: the old one and the new one.
	From Ref `json:"from"`
	To   Ref `json:"to"`
}

// Ref names one snapshot of the market.
type Ref struct {
	FetchedAt  time.Time `json:"fetched_at"`  // when it was received from Binance
	ETag       string    `json:"etag"`        // its strong ETag, quoted, as served
	ServerTime int64     `json:"server_time"` // Binance's serverTime, ms since the epoch
}

// Kind is what a Change is about. Its values are the strings of the JSON
// "kind" field and of the consumers' kind= filter.
type Kind string

// The kinds, in the order Diff sorts a symbol's changes (rate limits, which
// belong to no symbol, come before every symbol).
const (
	RateLimits  Kind = "rate_limits" // the top-level rateLimits differ
	Listed      Kind = "listed"      // a symbol is in the new snapshot only
	Delisted    Kind = "delisted"    // a symbol is in the old snapshot only
	Status      Kind = "status"      // status, or contractStatus, differs
	Permissions Kind = "permissions" // the permissions set differs
	Filter      Kind = "filter"      // a filter's field differs, or a filter appears or disappears
	Field       Kind = "field"       // any other member of the symbol differs
)

// Kinds lists every kind, in Diff's order.
func Kinds() []Kind {
	return []Kind{RateLimits, Listed, Delisted, Status, Permissions, Filter, Field}
}

// ParseKind returns the kind named s (case-insensitive, surrounding spaces
// ignored), or an error naming the accepted values.
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(Kinds(), k) {
		return k, nil
	}
	return "", fmt.Errorf("unknown change kind %q (want listed, delisted, status, permissions, filter, field or rate_limits)", s)
}

// rank is k's place in Kinds.
func (k Kind) rank() int {
	switch k {
	case RateLimits:
		return 0
	case Listed:
		return 1
	case Delisted:
		return 2
	case Status:
		return 3
	case Permissions:
		return 4
	case Filter:
		return 5
	}
	return 6
}

func (k Kind) String() string { return string(k) }
