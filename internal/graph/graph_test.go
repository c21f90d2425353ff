package graph

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func adj(edges map[int][]int32) func(int) []int32 { return func(i int) []int32 { return edges[i] } }

func TestCycles(t *testing.T) {
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

// TestCyclesRandom checks on random graphs that every reported path is a real
// cycle and that a graph is reported acyclic exactly when a topological order
// exists.
func TestCyclesRandom(t *testing.T) {
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

func TestCyclesLongChainNoRecursion(t *testing.T) {
	const n = 1_000_000
	next := func(i int) []int32 { return []int32{int32((i + 1) % n)} }
	c := Cycles(n, next)
	if len(c) != 1 || len(c[0]) != n+1 {
		t.Fatalf("got %d cycles", len(c))
	}
}

func TestSuggest(t *testing.T) {
	ids := []string{"process-a", "process-b", "validate-order", "charge"}
	tests := []struct{ in, want string }{
		{"proces-a", "process-a"},
		{"validate-ordr", "validate-order"},
		{"charg", "charge"},
		{"zzz", ""},
		{"completely-different", ""},
	}
	for _, tc := range tests {
		if got := Suggest(tc.in, ids); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
