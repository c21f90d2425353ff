package dagflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
)

// BenchmarkEventLatency measures, on bbolt with fsync, the time from SendEvent
// to the completion of the step that waited for the event being recorded
// (SendEvent's own transaction records it), and the time until Wait sees
// the run end. It reports the median and the 90th percentile.
func BenchmarkEventLatency(b *testing.B) {
	eng, err := dagflow.Open(dagflow.WithPath(filepath.Join(b.TempDir(), "flows.db")), dagflow.WithLogger(testLogger(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
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
	report(b, "send", sendLat)
	report(b, "end", endLat)
}

// BenchmarkSleepLatency measures, on bbolt with fsync, how late a sleep's
// completion is recorded after the time it sleeps until ("late": the time the
// transaction stamps on it), and how long after that time Wait returns the
// ended run ("seen": the commit included).
func BenchmarkSleepLatency(b *testing.B) {
	eng, err := dagflow.Open(dagflow.WithPath(filepath.Join(b.TempDir(), "flows.db")), dagflow.WithLogger(testLogger(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	var lat, seen []time.Duration
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
		json.Unmarshal(st.Results["nap"], &res)
		seen = append(seen, time.Since(res.SleptUntil))
		lat = append(lat, st.Steps[0].CompletedAt.Sub(res.SleptUntil))
	}
	report(b, "late", lat)
	report(b, "seen", seen)
}

func report(b *testing.B, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), name+"-p50-µs")
	b.ReportMetric(float64(d[len(d)*9/10].Microseconds()), name+"-p90-µs")
}
