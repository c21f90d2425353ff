// Package graph holds the graph algorithms behind workflow validation:
// cycle finding in linear time and "did you mean" suggestions.
package graph

// Cycles finds the cycles of a directed graph of n nodes whose edges run from
// each node to the nodes next(i) returns. It returns one cycle for every
// strongly connected component of more than one node, as a path of node
// numbers that starts and ends with the same node and follows the edges.
// Self-loops are not reported (callers report them as their own problem).
// Tarjan's algorithm, iterative: O(nodes + edges) time, no recursion.
func Cycles(n int, next func(i int) []int32) [][]int {
	const unvisited = -1
	index := make([]int32, n)
	low := make([]int32, n)
	onStack := make([]bool, n)
	comp := make([]int32, n) // component id of each node, for the path search
	for i := range index {
		index[i] = unvisited
		comp[i] = -1
	}
	var (
		stack   []int32
		counter int32
		ncomp   int32
		cycles  [][]int
	)
	type frame struct {
		v    int32
		edge int
	}
	var call []frame
	for root := 0; root < n; root++ {
		if index[root] != unvisited {
			continue
		}
		call = append(call[:0], frame{v: int32(root)})
		index[root], low[root] = counter, counter
		counter++
		stack = append(stack, int32(root))
		onStack[root] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			edges := next(int(f.v))
			if f.edge < len(edges) {
				w := edges[f.edge]
				f.edge++
				if w < 0 || int(w) >= n {
					continue
				}
				if index[w] == unvisited {
					index[w], low[w] = counter, counter
					counter++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{v: w})
				} else if onStack[w] && index[w] < low[f.v] {
					low[f.v] = index[w]
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				if p := call[len(call)-1].v; low[v] < low[p] {
					low[p] = low[v]
				}
			}
			if low[v] != index[v] {
				continue
			}
			// v is the root of a component: pop it.
			start := len(stack) - 1
			for stack[start] != v {
				start--
			}
			members := stack[start:]
			for _, m := range members {
				onStack[m] = false
				comp[m] = ncomp
			}
			if len(members) > 1 {
				cycles = append(cycles, cyclePath(v, ncomp, comp, next))
			}
			ncomp++
			stack = stack[:start]
		}
	}
	return cycles
}

// cyclePath walks from v inside its component until it meets a node it has
// seen, and returns the cycle through that node. Every node of a strongly
// connected component has an edge to another node of it, so the walk never
// gets stuck, and it visits each node at most once.
func cyclePath(v, c int32, comp []int32, next func(i int) []int32) []int {
	pos := map[int32]int{}
	var path []int
	for cur := v; ; {
		if at, seen := pos[cur]; seen {
			cycle := append([]int(nil), path[at:]...)
			return append(cycle, int(cur))
		}
		pos[cur] = len(path)
		path = append(path, int(cur))
		for _, w := range next(int(cur)) {
			if w >= 0 && int(w) < len(comp) && comp[w] == c && w != cur {
				cur = w
				break
			}
		}
	}
}

// Suggest returns the candidate nearest to s by edit distance when it is near
// enough to be a likely typo (at most a third of the length of s, at least
// one edit and at most four), or "" when none is. Of candidates equally
// near, the first wins. It takes time linear in the total length of the
// candidates: candidates whose length alone puts them too far are skipped,
// and the distances it computes are bounded.
func Suggest(s string, candidates []string) string {
	limit := min(max(len(s)/3, 1), 4)
	best := ""
	var rows []int
	var counts [256]int32 // of each byte in s
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	for _, c := range candidates {
		if c == s || absDiff(len(c), len(s)) > limit || bagDistance(&counts, len(s), c) > limit {
			continue
		}
		if need := 2 * (len(c) + 1); cap(rows) < need {
			rows = make([]int, need)
		}
		// Once one is found, a later candidate must be strictly nearer,
		// and none is nearer than one edit.
		if d := distance(s, c, limit, rows); d <= limit && (best == "" || d < limit) {
			best, limit = c, d
			if d <= 1 {
				break
			}
		}
	}
	return best
}

// bagDistance is a lower bound of the edit distance of s and c that looks
// only at which bytes they hold: each edit adds at most one byte and takes
// away at most one. counts holds the number of each byte in s, whose length
// is n; it is the same on return.
func bagDistance(counts *[256]int32, n int, c string) int {
	extra := 0 // bytes of c that s lacks
	for i := 0; i < len(c); i++ {
		counts[c[i]]--
		if counts[c[i]] < 0 {
			extra++
		}
	}
	for i := 0; i < len(c); i++ {
		counts[c[i]]++
	}
	missing := n - (len(c) - extra) // bytes of s that c lacks
	return max(extra, missing)
}

func absDiff(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}

// distance is the Levenshtein distance of a and b in bytes, or a number
// larger than limit once it is sure to exceed it. It fills only the band of
// cells within limit of the diagonal, so it takes O(len(a) * limit) time.
// rows is scratch space of at least 2*(len(b)+1) ints.
func distance(a, b string, limit int, rows []int) int {
	over := limit + 1
	if absDiff(len(a), len(b)) > limit {
		return over
	}
	// A common prefix or suffix changes nothing.
	for len(a) > 0 && len(b) > 0 && a[0] == b[0] {
		a, b = a[1:], b[1:]
	}
	for len(a) > 0 && len(b) > 0 && a[len(a)-1] == b[len(b)-1] {
		a, b = a[:len(a)-1], b[:len(b)-1]
	}
	prev, cur := rows[:len(b)+1], rows[len(b)+1:2*(len(b)+1)]
	for j := range prev {
		prev[j] = min(j, over)
	}
	for i := 1; i <= len(a); i++ {
		lo, hi := max(1, i-limit), min(len(b), i+limit)
		if lo > 1 {
			cur[lo-1] = over
		} else {
			cur[0] = min(i, over)
		}
		rowMin := cur[lo-1]
		for j := lo; j <= hi; j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j-1]+cost, cur[j-1]+1, over)
			if j < i+limit { // prev[j] is inside the previous row's band
				d = min(d, prev[j]+1)
			}
			cur[j] = d
			rowMin = min(rowMin, d)
		}
		if hi < len(b) {
			cur[hi+1] = over
		}
		if rowMin > limit {
			return over
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
