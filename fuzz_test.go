package dagflow_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
)

// sameJSON compares JSON texts by what they mean, as json.Marshal may write
// a context differently (it escapes <, > and &, for one).
var sameJSON = cmp.Comparer(func(a, b json.RawMessage) bool {
	decode := func(m json.RawMessage) (any, error) {
		if len(m) == 0 {
			return nil, nil
		}
		d := json.NewDecoder(bytes.NewReader(m))
		d.UseNumber()
		var v any
		err := d.Decode(&v)
		return v, err
	}
	va, erra := decode(a)
	vb, errb := decode(b)
	return erra == nil && errb == nil && cmp.Equal(va, vb)
})

// FuzzParseWorkflow feeds ParseWorkflow arbitrary bytes. It must not panic;
// what it accepts must validate, and must read back the same after
// json.Marshal; what it rejects must come as a *ValidationError.
func FuzzParseWorkflow(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"id": "w", "steps": [{"id": "a", "handler": "h"}],}`,
		`{"id": "w", "steps": [{"id": "a", "handler": "h", "timeout": "300"}]}`,
		`{"id": "w", "steps": [{"id": "a", "handler": "h", "dependOn": ["b"]}]}`,
		`{"id": "w", "id": "v", "steps": [{"id": "a\u0000", "handler": "h\ud800"}]}`,
		`{"id": "w", "context": {"<&>": "\u2028", "n": 1e400}, "steps": [{"id": "a", "url": "/j"}]}`,
		`{"id": "w", "steps": [{"id": "a", "handler": "h", "retries": {"maxAttempts": 2.0}}]}`,
		"\ufeff{\"id\": \"w\", \"steps\": [{\"id\": \"\xff\", \"handler\": \"h\"}]}",
		`{"id": "w", "steps": [{"id": "a", "handler": "h", "dependsOn": []}], "context": {"": {"": [[]]}}}`,
		`{"id": "w", "steps": [{"id": "a", "handler": "h"}], "context": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6,
		  "g": 7, "h": 8, "i": 9, "j": 10, "k": 11, "l": 12, "m": 13, "n": 14, "o": 15, "p": 16, "q": 17, "r": 18, "a": 0}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := dagflow.ParseWorkflow(data)
		if err != nil {
			var ve *dagflow.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("ParseWorkflow error %v (%T) is not a *ValidationError with problems", err, err)
			}
			for _, p := range ve.Problems {
				if p.Message == "" {
					t.Fatalf("problem with no message at %q", p.Path)
				}
			}
			return
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("ParseWorkflow accepted what Validate rejects: %v", err)
		}
		out, err := json.Marshal(&w)
		if err != nil {
			t.Fatalf("json.Marshal of a parsed workflow: %v", err)
		}
		again, err := dagflow.ParseWorkflow(out)
		if err != nil {
			t.Fatalf("ParseWorkflow(json.Marshal(w)) = %v\ninput: %q\nmarshalled: %s", err, data, out)
		}
		if d := cmp.Diff(w, again, sameJSON); d != "" {
			t.Fatalf("round trip changed the workflow (-parsed +reparsed):\n%s", d)
		}
	})
}

// fuzzGraph builds a workflow from fuzz bytes: data[0] sets the number of
// steps, the next byte of each step its id (the high bit makes it empty,
// and ids repeat), and each further pair of bytes one dependency, of which
// some name no step or the empty string.
func fuzzGraph(data []byte) dagflow.Workflow {
	if len(data) == 0 {
		return dagflow.Workflow{ID: "fuzz"}
	}
	n := 1 + int(data[0])%24
	data = data[1:]
	steps := make([]dagflow.Step, n)
	for i := range steps {
		id := "s" + strconv.Itoa(i)
		if i < len(data) {
			switch b := data[i]; {
			case b&0x80 != 0:
				id = ""
			case b&0x40 != 0:
				id = "s" + strconv.Itoa(int(b)%n) // maybe a repeat
			}
		}
		steps[i] = dagflow.Step{ID: id, Handler: "h"}
	}
	data = data[min(n, len(data)):]
	for ; len(data) >= 2; data = data[2:] {
		from, to := int(data[0])%n, int(data[1])%(n+2)
		dep := "missing"
		switch {
		case to < n:
			dep = steps[to].ID
		case to == n+1:
			dep = ""
		}
		steps[from].DependsOn = append(steps[from].DependsOn, dep)
	}
	return dagflow.Workflow{ID: "fuzz", Steps: steps}
}

// FuzzValidate checks Validate on random graph shapes: it must not panic,
// must report a cycle exactly when the graph has no topological order, one
// for each strongly connected component, each a real cycle in run order
// that starts at its first step.
func FuzzValidate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 0, 1, 1, 0})                   // a <- b
	f.Add([]byte{2, 0, 1, 1, 0, 0, 1})             // a <-> b
	f.Add([]byte{3, 0, 1, 2, 0, 2, 1, 0, 2, 1})    // a cycle of three
	f.Add([]byte{4, 0x80, 0x41, 2, 3, 0, 0, 1, 5}) // empty, repeated and unknown ids
	f.Add([]byte{5, 0, 1, 2, 3, 4, 1, 0, 2, 1, 3, 2, 4, 3, 0, 4, 0, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		w := fuzzGraph(data)
		problems := problemsOf(t, w.Validate())

		// The graph as validation should see it: edges from each step to
		// the first step with the id it names, except for self-references.
		pos := map[string]int{}
		for i, s := range w.Steps {
			if _, dup := pos[s.ID]; !dup && s.ID != "" {
				pos[s.ID] = i
			}
		}
		n := len(w.Steps)
		dependsOn := make([][]bool, n) // dependsOn[i][k]: step i depends on step k
		for i, s := range w.Steps {
			dependsOn[i] = make([]bool, n)
			for _, d := range s.DependsOn {
				if k, ok := pos[d]; ok && d != s.ID {
					dependsOn[i][k] = true
				}
			}
		}

		// Kahn's algorithm.
		indeg := make([]int, n)
		for i := range n {
			for k := range n {
				if dependsOn[i][k] {
					indeg[i]++
				}
			}
		}
		var ready []int
		for i := range n {
			if indeg[i] == 0 {
				ready = append(ready, i)
			}
		}
		sorted := 0
		for len(ready) > 0 {
			k := ready[len(ready)-1]
			ready = ready[:len(ready)-1]
			sorted++
			for i := range n {
				if dependsOn[i][k] {
					if indeg[i]--; indeg[i] == 0 {
						ready = append(ready, i)
					}
				}
			}
		}
		acyclic := sorted == n

		// Strongly connected components, by transitive closure.
		reach := make([][]bool, n)
		for i := range n {
			reach[i] = slices.Clone(dependsOn[i])
		}
		for m := range n {
			for i := range n {
				if reach[i][m] {
					for k := range n {
						reach[i][k] = reach[i][k] || reach[m][k]
					}
				}
			}
		}
		components := map[int]bool{} // by their first step
		for i := range n {
			if !reach[i][i] {
				continue
			}
			first := i
			for k := range n {
				if reach[i][k] && reach[k][i] && k < first {
					first = k
				}
			}
			components[first] = true
		}

		var cycles [][]string
		for _, p := range problems {
			if name, ok := strings.CutPrefix(p.Message, "cycle: "); ok {
				cycles = append(cycles, strings.Split(name, " -> "))
			}
		}
		if acyclic != (len(cycles) == 0) {
			t.Fatalf("topological sort acyclic=%v, but Validate reports %d cycles: %v", acyclic, len(cycles), problems)
		}
		if len(cycles) != len(components) {
			t.Fatalf("%d strongly connected components with cycles, %d cycles reported: %v", len(components), len(cycles), cycles)
		}
		seen := map[int]bool{}
		for _, c := range cycles {
			if len(c) < 3 || c[0] != c[len(c)-1] {
				t.Fatalf("cycle %v is not a closed path", c)
			}
			idx := make([]int, len(c))
			for j, name := range c {
				k, ok := pos[name]
				if !ok {
					t.Fatalf("cycle %v names unknown step %q", c, name)
				}
				idx[j] = k
			}
			for j := 0; j+1 < len(idx); j++ {
				if !dependsOn[idx[j+1]][idx[j]] {
					t.Fatalf("cycle %v: %s does not depend on %s", c, c[j+1], c[j])
				}
			}
			inner := slices.Clone(idx[:len(idx)-1])
			if idx[0] != slices.Min(inner) {
				t.Fatalf("cycle %v does not start at its first step", c)
			}
			slices.Sort(inner)
			if len(slices.Compact(inner)) != len(idx)-1 {
				t.Fatalf("cycle %v repeats a step", c)
			}
			first := idx[0]
			for k := range n {
				if reach[idx[0]][k] && reach[k][idx[0]] && k < first {
					first = k
				}
			}
			if !components[first] || seen[first] {
				t.Fatalf("cycle %v is not one of its own component", c)
			}
			seen[first] = true
		}
	})
}

// FuzzCanonicalContext: the canonical form of a context, in which Create
// compares specs, is valid JSON, decodes to the same value as the context,
// and is its own canonical form.
func FuzzCanonicalContext(f *testing.F) {
	f.Add([]byte(`{"b":1.0,"a":[1e2,-0.5e-1,"x"],"c":{"z":null,"y":true}}`))
	f.Add([]byte(`{"n":12345678901234567890,"m":1E+400,"o":0.000001}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, ctx []byte) {
		if !json.Valid(ctx) || len(bytes.TrimSpace(ctx)) == 0 || bytes.TrimSpace(ctx)[0] != '{' {
			return
		}
		got := dagflow.CanonicalContext(ctx)
		if !json.Valid(got) {
			t.Fatalf("canonical form of %s is not JSON: %s", ctx, got)
		}
		if again := dagflow.CanonicalContext(got); !bytes.Equal(again, got) {
			t.Fatalf("canonical form of %s is %s, whose own is %s", ctx, got, again)
		}
		var a, b any
		da, db := json.NewDecoder(bytes.NewReader(ctx)), json.NewDecoder(bytes.NewReader(got))
		da.UseNumber()
		db.UseNumber()
		if da.Decode(&a) != nil || db.Decode(&b) != nil {
			t.Fatalf("decoding %s or %s", ctx, got)
		}
		if !dagflow.SameValue(a, b) {
			t.Fatalf("canonical form of %s is %s: not the same value", ctx, got)
		}
	})
}
