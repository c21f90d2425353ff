package dagflow

import (
	"encoding/json"
	"math/big"
)

// CanonicalContext exposes canonicalContext to the fuzz targets of package
// dagflow_test.
var CanonicalContext = canonicalContext

// SameValue reports whether two values decoded with json.Decoder.UseNumber
// are the same JSON value, numbers compared exactly.
func SameValue(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if !SameValue(v, b[k]) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !SameValue(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		ra, oka := new(big.Rat).SetString(string(a))
		rb, okb := new(big.Rat).SetString(string(b))
		if !oka || !okb {
			return a == b
		}
		return ra.Cmp(rb) == 0
	}
	return a == b
}
