package fetchtest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// TestExchangeInfo checks that the typed baseline covers every field of the
// recorded answers: decoding with unknown fields refused succeeds, and what
// it encodes decodes to the same generic value as the recording (so no field
// is dropped or mistyped on the way).
func TestExchangeInfo(t *testing.T) {
	for _, name := range []string{"spot_exchangeinfo.json", "usdm_exchangeinfo.json", "coinm_exchangeinfo.json"} {
		t.Run(name, func(t *testing.T) {
			body := Fixture(t, "binance/"+name)
			var info ExchangeInfo
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&info); err != nil {
				t.Fatalf("decode with unknown fields refused: %v", err)
			}
			out, err := json.Marshal(info)
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			if err := json.Unmarshal(body, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(dropZero(got), dropZero(want)) {
				t.Errorf("encoding the typed answer lost or changed fields")
			}
		})
	}
}

// dropZero removes the members whose values omitempty drops (false, 0, "",
// empty arrays) from every object in v, so a round trip through the typed
// structs compares equal to the recording.
func dropZero(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			switch e := e.(type) {
			case bool:
				if !e {
					delete(x, k)
					continue
				}
			case float64:
				if e == 0 {
					delete(x, k)
					continue
				}
			case string:
				if e == "" {
					delete(x, k)
					continue
				}
			case []any:
				if len(e) == 0 && k != "exchangeFilters" && k != "filters" {
					delete(x, k)
					continue
				}
			}
			x[k] = dropZero(e)
		}
	case []any:
		for i, e := range x {
			x[i] = dropZero(e)
		}
	}
	return v
}
