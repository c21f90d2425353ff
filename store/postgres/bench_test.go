package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagflow/dagflow/store"
)

// benchStore opens a store with runs×steps steps, all due.
func benchStore(b *testing.B, runs, steps int) *Store {
	s := openStore(b, newSchema(b), Options{MaxConns: 16})
	err := s.Update(context.Background(), func(tx store.Tx) error {
		for r := range runs {
			id := fmt.Sprint("run-", r)
			if err := tx.PutRun(store.Run{ID: id, State: store.RunRunning, CreatedAt: base, Total: steps, Serial: -1}); err != nil {
				return err
			}
			for i := range steps {
				if err := tx.PutStep(store.Step{RunID: id, Index: i, ID: fmt.Sprint("s", i), State: store.StepReady, DueAt: base}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// claimFinish does what an engine does for one attempt of a step, in two
// transactions: claim a due step (lock it and its run, mark it running, record
// the attempt), then report it done under its fencing token (which here
// makes the step due again, so that the benchmark runs in a steady state).
func claimFinish(s *Store, owner string) (bool, error) {
	ctx := context.Background()
	now := time.Now()
	var claimed store.Step
	ok := false
	err := s.Update(ctx, func(tx store.Tx) error {
		ok = false
		due, err := tx.DueSteps(now, 1)
		if err != nil || len(due) == 0 {
			return err
		}
		st := due[0]
		r, err := tx.Run(st.RunID)
		if err != nil {
			return err
		}
		st.State, st.Owner, st.Token, st.DueAt, st.LeaseUntil = store.StepRunning, owner, st.Token+1, now.Add(time.Minute), now.Add(time.Minute)
		st.Attempts++
		r.Running++
		if err := tx.PutStep(st); err != nil {
			return err
		}
		if err := tx.PutAttempt(store.Attempt{RunID: st.RunID, Index: st.Index, StepID: st.ID, Number: st.Attempts, Owner: owner, StartedAt: now}); err != nil {
			return err
		}
		claimed, ok = st, true
		return tx.PutRun(r)
	})
	if err != nil || !ok {
		return false, err
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		r, err := tx.Run(claimed.RunID)
		if err != nil {
			return err
		}
		st, err := tx.Step(claimed.RunID, claimed.Index, 0)
		if err != nil {
			return err
		}
		if st.Token != claimed.Token || st.Owner != owner {
			return store.ErrLeaseLost
		}
		st.State, st.Owner, st.DueAt, st.LeaseUntil = store.StepReady, "", now, time.Time{}
		r.Running--
		r.Done++
		if err := tx.PutStep(st); err != nil {
			return err
		}
		if err := tx.PutAttempt(store.Attempt{RunID: st.RunID, Index: st.Index, StepID: st.ID, Number: st.Attempts, Owner: owner, StartedAt: now, EndedAt: time.Now()}); err != nil {
			return err
		}
		return tx.PutRun(r)
	})
	return true, err
}

// BenchmarkClaimFinish claims a due step and finishes it, from parallel
// goroutines (4 per CPU), over 64 runs of 4 steps.
func BenchmarkClaimFinish(b *testing.B) {
	s := benchStore(b, 64, 4)
	var idle atomic.Int64
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		owner := fmt.Sprint("engine-", n.Add(1))
		for pb.Next() {
			ok, err := claimFinish(s, owner)
			if err != nil {
				b.Error(err)
				return
			}
			if !ok {
				idle.Add(1)
			}
		}
	})
	b.ReportMetric(float64(idle.Load())/float64(b.N), "idle/op")
}

// BenchmarkClaimFinishSerial is BenchmarkClaimFinish from one goroutine: the
// latency of the two transactions.
func BenchmarkClaimFinishSerial(b *testing.B) {
	s := benchStore(b, 1, 4)
	b.ResetTimer()
	for b.Loop() {
		if ok, err := claimFinish(s, "engine"); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkView is a View with one read: the floor of a transaction.
func BenchmarkView(b *testing.B) {
	s := benchStore(b, 1, 1)
	for b.Loop() {
		err := s.View(context.Background(), func(tx store.Tx) error {
			_, err := tx.Run("run-0")
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
