package dagflow

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow/store"
)

// TestStatusManyResults holds the status of a large run, whose results
// another goroutine puts in the map, to the one built by one goroutine.
func TestStatusManyResults(t *testing.T) {
	for _, n := range []int{10, 5000, 6*resultsChunk + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			steps := make([]store.Step, n)
			var seq int64
			for i := range steps {
				st := store.Step{RunID: "r", Index: i, ID: fmt.Sprintf("s%d", i), State: store.StepCompleted, StartedAt: at, CompletedAt: at, Attempts: 1}
				switch {
				case i%97 == 5:
					st.State, st.Error = store.StepFailed, "boom"
				case i%89 == 3:
					st.State, st.StartedAt, st.CompletedAt, st.Attempts = store.StepPending, time.Time{}, time.Time{}, 0
				case i%7 == 0:
					st.Result = nil // a handler that returned nothing
				default:
					st.Result = json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
				}
				if st.State == store.StepCompleted {
					seq++
					st.Seq = seq
					if i%13 == 1 {
						st.Comp, st.CompAttempts, st.CompStartedAt, st.CompEndedAt = store.CompDone, 1, at, at
					}
				}
				steps[i] = st
			}
			// Completion order differs from the steps' order.
			for i, j := 0, len(steps)-1; i < j; i, j = i+1, j-1 {
				if steps[i].State == store.StepCompleted && steps[j].State == store.StepCompleted {
					steps[i].Seq, steps[j].Seq = steps[j].Seq, steps[i].Seq
				}
			}
			r := &store.Run{ID: "r", State: store.RunFailed, Total: n, Seq: seq, StartedAt: at, CompletedAt: at}
			got := buildStatus(r, json.RawMessage(`{"a":1}`), steps)

			old := parallelResults
			parallelResults = 1 << 62
			want := buildStatus(r, json.RawMessage(`{"a":1}`), steps)
			parallelResults = old

			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("status (-one goroutine +two):\n%s", diff)
			}
			if len(got.Results) != int(seq) || len(got.CompletedSteps) != int(seq) {
				t.Fatalf("%d results and %d completed steps, want %d", len(got.Results), len(got.CompletedSteps), seq)
			}
			for i := range steps {
				st := &steps[i]
				res, ok := got.Results[st.ID]
				if ok != (st.State == store.StepCompleted) {
					t.Fatalf("step %s (%s): in Results = %v", st.ID, st.State, ok)
				}
				if ok && st.Result == nil && string(res) != "null" {
					t.Fatalf("step %s returned nothing; its result is %s, want null", st.ID, res)
				}
			}
		})
	}
}
