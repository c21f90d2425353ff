package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
)

// The latency of durable waits on PostgreSQL, beside the root package's
// benchmarks of the same on bbolt: from SendEvent to the waiting step's
// completion recorded, and from a sleep's end to its completion.

func openWaitEngine(b *testing.B) *dagflow.Engine {
	s := openStore(b, newSchema(b), Options{})
	eng, err := dagflow.Open(dagflow.WithStore(s))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	return eng
}

// BenchmarkEventLatency: "send" is SendEvent's own time (its transaction
// records the step's completion), "end" the time until Wait sees the run
// end.
func BenchmarkEventLatency(b *testing.B) {
	eng := openWaitEngine(b)
	ctx := context.Background()
	var sendLat, endLat []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		id := fmt.Sprintf("e-%d", i)
		if _, err := eng.Create(ctx, dagflow.Workflow{ID: id, Context: json.RawMessage(`{"k":"` + id + `"}`), Steps: []dagflow.Step{
			{ID: "wait", WaitForEvent: &dagflow.WaitForEvent{Name: "go", Key: "context.k"}},
		}}); err != nil {
			b.Fatal(err)
		}
		for st, _ := eng.Status(ctx, id); st.Steps[0].State != dagflow.StateWaiting; st, _ = eng.Status(ctx, id) {
			time.Sleep(100 * time.Microsecond)
		}
		b.StartTimer()
		start := time.Now()
		if err := eng.SendEvent(ctx, dagflow.Event{Name: "go", Key: id}); err != nil {
			b.Fatal(err)
		}
		sendLat = append(sendLat, time.Since(start))
		if st, err := eng.Wait(ctx, id); err != nil || st.State != dagflow.StateCompleted {
			b.Fatal(st, err)
		}
		endLat = append(endLat, time.Since(start))
	}
	reportLatency(b, "send", sendLat)
	reportLatency(b, "end", endLat)
}

// BenchmarkSleepLatency: "late" is how long after a sleep's end its
// completion is stamped, "seen" how long after it Wait returns the ended
// run (the commit included).
func BenchmarkSleepLatency(b *testing.B) {
	eng := openWaitEngine(b)
	ctx := context.Background()
	var late, seen []time.Duration
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("s-%d", i)
		if _, err := eng.Create(ctx, dagflow.Workflow{ID: id, Steps: []dagflow.Step{
			{ID: "nap", Sleep: &dagflow.Sleep{Duration: 20 * time.Millisecond}},
		}}); err != nil {
			b.Fatal(err)
		}
		st, err := eng.Wait(ctx, id)
		if err != nil || st.State != dagflow.StateCompleted {
			b.Fatal(st, err)
		}
		var res struct{ SleptUntil time.Time }
		if err := json.Unmarshal(st.Results["nap"], &res); err != nil {
			b.Fatal(err)
		}
		seen = append(seen, time.Since(res.SleptUntil))
		late = append(late, st.Steps[0].CompletedAt.Sub(res.SleptUntil))
	}
	reportLatency(b, "late", late)
	reportLatency(b, "seen", seen)
}

func reportLatency(b *testing.B, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), name+"-p50-µs")
	b.ReportMetric(float64(d[len(d)*9/10].Microseconds()), name+"-p90-µs")
}
