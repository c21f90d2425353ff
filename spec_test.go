package dagflow

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testdataWorkflows returns the valid workflows of testdata (some files
// are invalid on purpose), by file name.
func testdataWorkflows(t *testing.T) map[string]Workflow {
	t.Helper()
	wfs := map[string]Workflow{}
	files, _ := filepath.Glob("testdata/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if w, err := ParseWorkflow(data); err == nil {
			wfs[f] = w
		}
	}
	return wfs
}

// TestSpecEncoding holds appendSpec to json.Marshal's output, byte for byte,
// on the test workflows and on random ones.
func TestSpecEncoding(t *testing.T) {
	var wfs []Workflow
	for f, w := range testdataWorkflows(t) {
		wfs = append(wfs, w, w.normalized())
		// Plain ids and names: specSize covers the spec without being
		// much larger.
		n := w.normalized()
		for _, canon := range []bool{false, true} {
			if size, got := specSize(&n, canon), len(appendSpec(nil, &n, canon)); size < got || size > 2*got+256 {
				t.Errorf("%s: specSize %d for a spec of %d bytes (canon %v)", f, size, got, canon)
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
		// appendSpec normalizes steps as it writes them: compare with
		// the steps normalized beforehand.
		if w.Steps != nil {
			steps := make([]Step, len(w.Steps))
			for k := range w.Steps {
				steps[k] = normalizedStep(w.Steps[k], &defaultRetries)
			}
			w.Steps = steps
		}
		want, err := json.Marshal(&w)
		if err != nil {
			t.Fatal(err)
		}
		got := appendSpec(nil, &w, false)
		if !bytes.Equal(want, got) {
			t.Fatalf("workflow %d (seed %d):\njson.Marshal: %s\nappendSpec:   %s", i, seed, want, got)
		}
		// The canonical form: what json.Marshal writes of canonical(w).
		c := canonical(&w)
		if want, err = json.Marshal(&c); err != nil {
			t.Fatal(err)
		}
		if got := appendSpec(nil, &w, true); !bytes.Equal(want, got) {
			t.Fatalf("workflow %d (seed %d), canonical:\njson.Marshal: %s\nappendSpec:   %s", i, seed, want, got)
		}
	}
}

// TestCanonicalSpecRoundTrip: the stored (canonical) spec of a workflow
// reads back as the same normalized workflow, whether its defaults were
// written out or not, and a spec written in full by earlier versions is
// the same spec.
func TestCanonicalSpecRoundTrip(t *testing.T) {
	var wfs []Workflow
	for _, w := range testdataWorkflows(t) {
		wfs = append(wfs, w)
	}
	wfs = append(wfs, Workflow{ID: "custom", Timeout: 60, OnStepFailure: ContinueOnFailure, Context: json.RawMessage(`{"k": [1, 2]}`),
		Steps: []Step{
			{ID: "a", Handler: "h", Timeout: 5, Retries: &RetryConfig{MaxAttempts: 3, Backoff: Linear}},
			{ID: "b", Handler: "h", DependsOn: []string{"a"}, Retries: &RetryConfig{InitialInterval: 120}},
			{ID: "c", URL: "https://jobs.example/c", DependsOn: []string{"a", "b"}, Retries: &RetryConfig{MaxInterval: 10, InitialInterval: 2}, AllowFailedDeps: true},
			{ID: "d", Handler: "h", Retries: &RetryConfig{MaxAttempts: 1, Backoff: Exponential, InitialInterval: 1, MaxInterval: 60}, Timeout: 300},
		}})
	for _, w := range wfs {
		n := w.normalized()
		canon := appendSpec(nil, &n, true)
		full := appendSpec(nil, &n, false)
		if len(canon) >= len(full) && len(n.Steps) > 0 {
			t.Errorf("%s: canonical spec %d bytes, full %d", w.ID, len(canon), len(full))
		}
		back, err := decodeSpec(canon)
		if err != nil {
			t.Fatalf("%s: %v", w.ID, err)
		}
		if diff := cmp.Diff(n, back); diff != "" {
			t.Errorf("%s: the canonical spec reads back otherwise (-stored +read):\n%s", w.ID, diff)
		}
		if again := appendSpec(nil, &back, true); !bytes.Equal(again, canon) {
			t.Errorf("%s: canonical spec not stable:\n%s\n%s", w.ID, canon, again)
		}
		if !sameSpec(full, canon) {
			t.Errorf("%s: a spec written in full is not the same as its canonical form", w.ID)
		}
		other := n
		other.Steps = append([]Step(nil), n.Steps...)
		other.Steps[0].Timeout++
		if o := appendSpec(nil, &other, true); sameSpec(o, canon) {
			t.Errorf("%s: a changed step timeout is the same spec", w.ID)
		}
	}
}

// specSize covers the spec of a large workflow of plain ids, so that
// encoding it never grows (and copies) its buffer.
func TestSpecSizeCoversLargeWorkflows(t *testing.T) {
	w := Workflow{ID: "big", Steps: []Step{{ID: "root", Handler: "noop"}}}
	join := Step{ID: "join", Handler: "noop", Parallel: true}
	for i := 0; i < 1000; i++ {
		id := "leaf-" + strconv.Itoa(i)
		w.Steps = append(w.Steps, Step{ID: id, Handler: "noop", DependsOn: []string{"root"}, Parallel: i%2 == 0, Timeout: float64(i % 3 * 300)})
		join.DependsOn = append(join.DependsOn, id)
	}
	w.Steps = append(w.Steps, join)
	n := w.normalized()
	for _, canon := range []bool{false, true} {
		size, got := specSize(&n, canon), len(appendSpec(nil, &n, canon))
		slack := got / 2 // the full form is written only by tests
		if canon {
			slack = got / 4 // the stored form: little room left unused
		}
		if size < got || size > got+slack+256 {
			t.Errorf("canon %v: specSize %d for a spec of %d bytes", canon, size, got)
		}
	}
}

// TestSpecContext: the context read from a stored spec by scanning it is
// encoding/json's, for specs the engine writes with ids and contexts full
// of quotes, backslashes, braces and non-ASCII text.
func TestSpecContext(t *testing.T) {
	// Keys reordered by a store (as PostgreSQL's jsonb would): encoding/json.
	for spec, want := range map[string]string{
		`{"id":"x","steps":[{"id":"a","handler":"h"}],"context":{"a":1}}`: `{"a":1}`,
		`{"steps":[],"context":{"b":[2]},"id":"x"}`:                       `{"b":[2]}`,
		` {"id":"x","steps":[]}`:                                          `{}`,
	} {
		got, err := specContext([]byte(spec))
		if err != nil || string(got) != want {
			t.Errorf("specContext(%s) = %s, %v; want %s", spec, got, err, want)
		}
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	strs := []string{"a", `q"uote`, `back\slash`, "{brace}", "[x]", "ünï", "\u2028", "end\\"}
	pick := func() string { return strs[r.IntN(len(strs))] }
	for i := 0; i < 2000; i++ {
		w := Workflow{ID: pick() + pick(), Saga: r.IntN(2) == 0, OnComplete: "https://x/" + pick(), Timeout: float64(r.IntN(3) * 100)}
		if r.IntN(2) == 0 {
			w.OnComplete = ""
		}
		if k := r.IntN(3); k > 0 {
			c, _ := json.Marshal(map[string]any{pick(): pick(), "n": []any{map[string]string{pick(): pick()}, k}})
			w.Context = c
		}
		w.Steps = []Step{{ID: pick(), Handler: "h"}}
		n := w.withDefaults()
		for _, canon := range []bool{false, true} {
			spec := appendSpec(nil, &n, canon)
			got, ok := scanSpecContext(spec)
			if !ok {
				t.Fatalf("spec %s: not scanned", spec)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(spec, &m); err != nil {
				t.Fatal(err)
			}
			want, has := m["context"]
			if !has {
				want = json.RawMessage(`{}`)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("spec %s: scanned %s, want %s", spec, got, want)
			}
			slow, err := specContext(append([]byte(" "), spec...)) // not the engine's layout: encoding/json
			if err != nil || !bytes.Equal(slow, want) {
				t.Fatalf("spec %s: decoded %s (%v), want %s", spec, slow, err, want)
			}
		}
	}
}
