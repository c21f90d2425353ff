package graph

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func adj(edges map[int][]int32) func(int) []int32 { return func(i int) []int32 { return edges[i] } }

func TestGraphCycles(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		edges map[int][]int32
		want  [][]int
	}{
		{"none", 3, map[int][]int32{0: {1}, 1: {2}}, nil},
		{"triangle", 3, map[int][]int32{0: {1}, 1: {2}, 2: {0}}, [][]int{{0, 1, 2, 0}}},
		{"self loop ignored", 2, map[int][]int32{0: {0, 1}}, nil},
		{"two cycles", 5, map[int][]int32{0: {1}, 1: {0}, 2: {3}, 3: {4}, 4: {2}}, [][]int{{0, 1, 0}, {2, 3, 4, 2}}},
		{"tail into cycle", 4, map[int][]int32{0: {1}, 1: {2}, 2: {3}, 3: {1}}, [][]int{{1, 2, 3, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Cycles(tc.n, adj(tc.edges))
			// Normalize order of cycles by first node for comparison.
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Cycles (-want +got):\n%s", d)
			}
		})
	}
}

// TestGraphCyclesRandom checks on random graphs that every reported path is a real
// cycle and that a graph is reported acyclic exactly when a topological order
// exists.
func TestGraphCyclesRandom(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for iter := 0; iter < 500; iter++ {
		n := 1 + r.IntN(30)
		edges := map[int][]int32{}
		for i := 0; i < n; i++ {
			for k := r.IntN(3); k > 0; k-- {
				w := int32(r.IntN(n))
				if int(w) != i {
					edges[i] = append(edges[i], w)
				}
			}
		}
		cycles := Cycles(n, adj(edges))
		for _, c := range cycles {
			if len(c) < 3 || c[0] != c[len(c)-1] {
				t.Fatalf("seed %d: bad cycle %v", seed, c)
			}
			for k := 0; k+1 < len(c); k++ {
				found := false
				for _, w := range edges[c[k]] {
					if int(w) == c[k+1] {
						found = true
					}
				}
				if !found {
					t.Fatalf("seed %d: cycle %v uses missing edge %d->%d", seed, c, c[k], c[k+1])
				}
			}
		}
		// Kahn's algorithm.
		indeg := make([]int, n)
		for _, ws := range edges {
			for _, w := range ws {
				indeg[w]++
			}
		}
		var q []int
		for i := range indeg {
			if indeg[i] == 0 {
				q = append(q, i)
			}
		}
		seen := 0
		for len(q) > 0 {
			v := q[0]
			q = q[1:]
			seen++
			for _, w := range edges[v] {
				if indeg[w]--; indeg[w] == 0 {
					q = append(q, int(w))
				}
			}
		}
		if acyclic := seen == n; acyclic != (len(cycles) == 0) {
			t.Fatalf("seed %d: acyclic=%v but %d cycles reported", seed, acyclic, len(cycles))
		}
	}
}

func TestGraphCyclesLongChainNoRecursion(t *testing.T) {
	const n = 1_000_000
	next := func(i int) []int32 { return []int32{int32((i + 1) % n)} }
	c := Cycles(n, next)
	if len(c) != 1 || len(c[0]) != n+1 {
		t.Fatalf("got %d cycles", len(c))
	}
}

func TestGraphSuggest(t *testing.T) {
	ids := []string{"process-a", "process-b", "validate-order", "charge"}
	tests := []struct{ in, want string }{
		{"proces-a", "process-a"},
		{"validate-ordr", "validate-order"},
		{"charg", "charge"},
		{"zzz", ""},
		{"completely-different", ""},
		{"process-a", "process-b"}, // itself is never suggested
		{"process-c", "process-a"}, // ties go to the first candidate
		{"pro", ""},                // 3 bytes allow one edit only
		{"xharge", "charge"},       // 6 bytes allow two
		{"validate-ordre", "validate-order"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := Suggest(tc.in, ids); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGraphSuggestShortIDs(t *testing.T) {
	ids := []string{"a", "b", "ab"}
	tests := []struct{ in, want string }{
		{"c", "a"},    // one edit is always allowed
		{"abc", "ab"}, // a deletion
		{"xyz", ""},
	}
	for _, tc := range tests {
		if got := Suggest(tc.in, ids); got != tc.want {
			t.Errorf("Suggest(%q, %q) = %q, want %q", tc.in, ids, got, tc.want)
		}
	}
}

// levenshtein is the textbook distance, to check the banded one against.
func levenshtein(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
		}
	}
	return d[len(a)][len(b)]
}

// TestGraphDistanceBanded checks on random strings over a small alphabet
// that the banded distance equals the full one when that is within the
// limit, and exceeds the limit otherwise.
func TestGraphDistanceBanded(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	word := func() string {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = "abc"[r.IntN(3)]
		}
		return string(b)
	}
	for iter := 0; iter < 20000; iter++ {
		a, b := word(), word()
		limit := 1 + r.IntN(4)
		want := levenshtein(a, b)
		got := distance(a, b, limit, make([]int, 2*(len(b)+1)))
		if want <= limit && got != want || want > limit && got <= limit {
			t.Fatalf("seed %d: distance(%q, %q, %d) = %d, want %d", seed, a, b, limit, got, want)
		}
	}
}

// TestGraphSuggestRandom checks Suggest, with its filters and early exit,
// against a plain search with the full distance.
func TestGraphSuggestRandom(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	word := func() string {
		b := make([]byte, 1+r.IntN(14))
		for i := range b {
			b[i] = "abcd-"[r.IntN(5)]
		}
		return string(b)
	}
	for iter := 0; iter < 3000; iter++ {
		cands := make([]string, r.IntN(30))
		for i := range cands {
			cands[i] = word()
		}
		s := word()
		limit := min(max(len(s)/3, 1), 4)
		want, wantD := "", limit+1
		for _, c := range cands {
			if d := levenshtein(s, c); c != s && d < wantD {
				want, wantD = c, d
			}
		}
		if got := Suggest(s, cands); got != want {
			t.Fatalf("seed %d: Suggest(%q, %q) = %q, want %q (distance %d)", seed, s, cands, got, want, wantD)
		}
	}
}

// BenchmarkGraphSuggest100k is one "did you mean" search among 100,000
// step ids of the same length, the worst case for the length filter, that
// finds nothing near enough and so reads every candidate.
func BenchmarkGraphSuggest100k(b *testing.B) {
	ids := make([]string, 100_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("step-%06d", i)
	}
	b.ResetTimer()
	for b.Loop() {
		if s := Suggest("task-x01234", ids); s != "" {
			b.Fatal(s)
		}
	}
}
