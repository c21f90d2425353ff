package flow_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/memory"
)

// env is a flow.Env for one plan.
type env struct{ plan *flow.Plan }

func (e *env) Plan(store.Tx, string) (*flow.Plan, error) { return e.plan, nil }
func (e *env) Owner() string                             { return "bench" }
func (e *env) Lease() time.Duration                      { return 0 }
func (e *env) CanRun(string, *flow.Plan, int, bool) bool { return true }
func (e *env) Jitter(d time.Duration) time.Duration      { return d }
func (e *env) Webhooks(store.Tx, *store.Run, *flow.Plan, time.Time) ([]store.Webhook, error) {
	return nil, nil
}

func chainPlan(n int) *flow.Plan {
	p := &flow.Plan{Timeout: time.Hour, Steps: make([]flow.StepPlan, n)}
	retry := &flow.Retry{MaxAttempts: 1, Initial: time.Second, Max: time.Minute}
	for i := range p.Steps {
		p.Steps[i] = flow.StepPlan{ID: fmt.Sprintf("s%d", i), Parallel: true, Retry: retry, Timeout: time.Minute, Handler: "h"}
		if i > 0 {
			p.Steps[i].Deps = []int32{int32(i - 1)}
			p.Steps[i-1].Dependents = []int32{int32(i)}
		}
	}
	return p
}

// BenchmarkChainTx measures the transactions of a chain on the memory store:
// each iteration records a step's completion and claims the next one, as a
// worker does, with no goroutine or handler around them.
func BenchmarkChainTx(b *testing.B) {
	const n = 10_000
	s := memory.New()
	defer s.Close()
	e := &env{plan: chainPlan(n)}
	ctx := context.Background()
	var eff flow.Effects
	var x flow.Txn
	run := 0
	var claim flow.Claim
	start := func() {
		run++
		id := fmt.Sprintf("r%d", run)
		err := s.Update(ctx, func(tx store.Tx) error {
			t := x.Reset(tx, e, time.Now(), &eff)
			if err := t.Create(store.Run{ID: id, CreatedAt: time.Now(), Deadline: time.Now().Add(time.Hour)}, []byte(`{}`), e.plan); err != nil {
				return err
			}
			if err := t.Claim(1); err != nil {
				return err
			}
			return t.Flush()
		})
		if err != nil || len(eff.Claimed) != 1 {
			b.Fatal(err, len(eff.Claimed))
		}
		claim = eff.Claimed[0]
	}
	start()
	done := 0
	fn := func(tx store.Tx) error {
		t := x.Reset(tx, e, time.Now(), &eff)
		if err := t.Finish(&claim, flow.Outcome{}); err != nil {
			return err
		}
		if err := t.Claim(8); err != nil {
			return err
		}
		return t.Flush()
	}
	b.ResetTimer()
	for b.Loop() {
		if err := s.Update(ctx, fn); err != nil {
			b.Fatal(err)
		}
		done++
		if len(eff.Claimed) == 0 {
			b.StopTimer()
			start()
			b.StartTimer()
			continue
		}
		claim = eff.Claimed[0]
	}
}
