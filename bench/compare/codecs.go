package compare

import (
	stdjson "encoding/json"

	"github.com/bytedance/sonic"
	goccy "github.com/goccy/go-json"
	segjson "github.com/segmentio/encoding/json"
	"github.com/symcache/symcache/internal/fixtures"
)

// Codec is one JSON library's way of decoding, encoding and validating an
// exchangeInfo answer.
type Codec struct {
	Name      string
	Unmarshal func(data []byte, v *fixtures.ExchangeInfo) error
	Marshal   func(v *fixtures.ExchangeInfo) ([]byte, error)
	Valid     func(data []byte) bool // nil when the library offers no validity-only pass
}

// Codecs lists the libraries compared, encoding/json first: it is the
// reference the others are checked against. encoding/json/v2 joins the list
// only in a build with GOEXPERIMENT=jsonv2 (json_v2.go).
var Codecs = []Codec{
	{
		Name:      "std",
		Unmarshal: func(d []byte, v *fixtures.ExchangeInfo) error { return stdjson.Unmarshal(d, v) },
		Marshal:   func(v *fixtures.ExchangeInfo) ([]byte, error) { return stdjson.Marshal(v) },
		Valid:     stdjson.Valid,
	},
	{
		Name:      "goccy",
		Unmarshal: func(d []byte, v *fixtures.ExchangeInfo) error { return goccy.Unmarshal(d, v) },
		Marshal:   func(v *fixtures.ExchangeInfo) ([]byte, error) { return goccy.Marshal(v) },
		Valid:     goccy.Valid,
	},
	{
		Name:      "segmentio",
		Unmarshal: func(d []byte, v *fixtures.ExchangeInfo) error { return segjson.Unmarshal(d, v) },
		Marshal:   func(v *fixtures.ExchangeInfo) ([]byte, error) { return segjson.Marshal(v) },
		Valid:     segjson.Valid,
	},
	{
		// sonic's default configuration: no HTML escaping, no UTF-8
		// validation of strings, and decoded strings that point into the
		// input instead of copies of it.
		Name:      "sonic",
		Unmarshal: func(d []byte, v *fixtures.ExchangeInfo) error { return sonic.ConfigDefault.Unmarshal(d, v) },
		Marshal:   func(v *fixtures.ExchangeInfo) ([]byte, error) { return sonic.ConfigDefault.Marshal(v) },
		Valid:     sonic.ConfigDefault.Valid,
	},
	{
		// sonic configured to behave as encoding/json does (ConfigStd):
		// strings copied and validated, HTML escaped.
		Name:      "sonic-std",
		Unmarshal: func(d []byte, v *fixtures.ExchangeInfo) error { return sonic.ConfigStd.Unmarshal(d, v) },
		Marshal:   func(v *fixtures.ExchangeInfo) ([]byte, error) { return sonic.ConfigStd.Marshal(v) },
		Valid:     sonic.ConfigStd.Valid,
	},
}
