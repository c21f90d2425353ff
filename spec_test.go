package dagflow

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestSpecEncoding holds appendSpec to json.Marshal's output, byte for byte,
// on the test workflows and on random ones.
func TestSpecEncoding(t *testing.T) {
	var wfs []Workflow
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if w, err := ParseWorkflow(data); err == nil {
			wfs = append(wfs, w, w.normalized())
			// Plain ids and names: specSize covers the spec without
			// being much larger.
			n := w.normalized()
			if size, got := specSize(&n), len(appendSpec(nil, &n)); size < got || size > 2*got+256 {
				t.Errorf("%s: specSize %d for a spec of %d bytes", f, size, got)
			}
		}
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	strs := []string{"", "a", "step-1", "ünïcode", "<b>&", "quote\"back\\slash", "ctl\x01\n", "\u2028", "bad\xffutf8", "https://app/x?a=1&b=2"}
	nums := []float64{0, 1, 300, 0.5, 1e-7, 3e21, 86400, 1.25, 1e20, 123456789.125, -1}
	pick := func() string { return strs[r.IntN(len(strs))] }
	num := func() float64 { return nums[r.IntN(len(nums))] }
	for i := 0; i < 500; i++ {
		w := Workflow{ID: pick(), Saga: r.IntN(2) == 0, OnComplete: pick(), OnError: pick(), Timeout: num(),
			OnStepFailure: FailurePolicy(pick())}
		if r.IntN(2) == 0 {
			w.Context = json.RawMessage(`{"k":[1,2,{"x":null}]}`)
		}
		if r.IntN(8) > 0 {
			w.Steps = []Step{}
		}
		for k := r.IntN(4); k > 0; k-- {
			s := Step{ID: pick(), URL: pick(), Handler: pick(), Parallel: r.IntN(2) == 0, Timeout: num(),
				Compensation: pick(), AllowFailedDeps: r.IntN(2) == 0}
			for d := r.IntN(3); d > 0; d-- {
				s.DependsOn = append(s.DependsOn, pick())
			}
			if r.IntN(3) > 0 {
				s.Retries = &RetryConfig{MaxAttempts: r.IntN(3) * 7, Backoff: Backoff(pick()), InitialInterval: num(), MaxInterval: num()}
			}
			w.Steps = append(w.Steps, s)
		}
		wfs = append(wfs, w)
	}
	for i, w := range wfs {
		want, err := json.Marshal(&w)
		if err != nil {
			t.Fatal(err)
		}
		got := appendSpec(nil, &w)
		if !bytes.Equal(want, got) {
			t.Fatalf("workflow %d (seed %d):\njson.Marshal: %s\nappendSpec:   %s", i, seed, want, got)
		}
	}
}
