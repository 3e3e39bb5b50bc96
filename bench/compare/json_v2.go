//go:build goexperiment.jsonv2

package compare

import (
	stdjson "encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"github.com/symcache/symcache/internal/fixtures"
)

// With GOEXPERIMENT=jsonv2, encoding/json/v2 is compared too. Note that the
// experiment also re-implements encoding/json (v1) on top of v2, so "std"
// then measures that implementation rather than the classic one.
var v2MarshalOptions = jsonv2.JoinOptions(
	stdjson.OmitEmptyWithLegacySemantics(true),
	jsonv2.FormatNilSliceAsNull(true),
)

func init() {
	Codecs = append(Codecs, Codec{
		Name:      "v2",
		Unmarshal: func(d []byte, v *fixtures.ExchangeInfo) error { return jsonv2.Unmarshal(d, v) },
		// Two of v2's defaults differ from v1's and would change the
		// output: omitempty omits only what encodes as null, "", {} or []
		// (not false and 0), and a nil slice is written as [] (which
		// decodes back as an empty, non-nil slice: the round trip test
		// catches it). The options restore v1's behaviour, so v2 writes
		// the same bytes as the others.
		Marshal: func(v *fixtures.ExchangeInfo) ([]byte, error) { return jsonv2.Marshal(v, v2MarshalOptions) },
		Valid:   func(d []byte) bool { return jsontext.Value(d).IsValid() },
	})
}
