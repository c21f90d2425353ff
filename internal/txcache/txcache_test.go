package txcache_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dagflow/dagflow/internal/txcache"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/memory"
)

// counting counts the step reads and writes that reach the store.
type counting struct {
	store.Tx
	reads, writes int
}

func (c *counting) Step(runID string, index, item int) (store.Step, error) {
	c.reads++
	return c.Tx.Step(runID, index, item)
}

func (c *counting) PutStep(st store.Step) error {
	c.writes++
	return c.Tx.PutStep(st)
}

// inTx runs fn over a cache of a transaction of a memory store holding run
// "r" with steps 0..n-1, and flushes the cache.
func inTx(t *testing.T, s *memory.Store, fn func(w *txcache.Tx, c *counting) error) {
	t.Helper()
	err := s.Update(context.Background(), func(tx store.Tx) error {
		c := &counting{Tx: tx}
		var w txcache.Tx
		w.Reset(c)
		if err := fn(&w, c); err != nil {
			return err
		}
		return w.Flush()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newStore(t *testing.T, n int) *memory.Store {
	t.Helper()
	s := memory.New()
	err := s.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.PutRun(store.Run{ID: "r", State: store.RunRunning}); err != nil {
			return err
		}
		for i := range n {
			if err := tx.PutStep(store.Step{RunID: "r", Index: i, ID: fmt.Sprint("s", i), State: store.StepPending}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadOnceWriteOnce(t *testing.T) {
	s := newStore(t, 2)
	inTx(t, s, func(w *txcache.Tx, c *counting) error {
		for i := range 3 {
			st, err := w.Step("r", 0, 0)
			if err != nil {
				return err
			}
			if st.Attempts != i {
				t.Errorf("read %d: attempts %d, want the last write's %d", i, st.Attempts, i)
			}
			st.Attempts++
			if err := w.PutStep(st); err != nil {
				return err
			}
		}
		if c.reads != 1 || c.writes != 0 {
			t.Errorf("before Flush: %d reads and %d writes reached the store, want 1 and 0", c.reads, c.writes)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if c.writes != 1 {
			t.Errorf("Flush wrote %d records, want 1", c.writes)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if c.writes != 1 {
			t.Errorf("a second Flush wrote again: %d writes", c.writes)
		}
		return nil
	})
	checkAttempts(t, s, 0, 3)
}

func checkAttempts(t *testing.T, s *memory.Store, index, want int) {
	t.Helper()
	err := s.View(context.Background(), func(tx store.Tx) error {
		st, err := tx.Step("r", index, 0)
		if err != nil {
			return err
		}
		if st.Attempts != want {
			t.Errorf("step %d: stored attempts %d, want %d", index, st.Attempts, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNewRecordWrittenAtOnce(t *testing.T) {
	s := newStore(t, 0)
	inTx(t, s, func(w *txcache.Tx, c *counting) error {
		if err := w.PutStep(store.Step{RunID: "r", Index: 0, ID: "s0"}); err != nil {
			return err
		}
		if c.writes != 1 {
			t.Errorf("a record not read first: %d writes, want 1 at once", c.writes)
		}
		if err := w.PutStep(store.Step{RunID: "nope", Index: 0}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a step of a missing run: %v, want ErrNotFound", err)
		}
		return nil
	})
}

func TestListingsSeeChanges(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newStore(t, 2)
	inTx(t, s, func(w *txcache.Tx, c *counting) error {
		st, err := w.Step("r", 1, 0)
		if err != nil {
			return err
		}
		st.State, st.DueAt = store.StepReady, now
		if err := w.PutStep(st); err != nil {
			return err
		}
		due, err := w.DueSteps(now, 10)
		if err != nil {
			return err
		}
		if len(due) != 1 || due[0].Index != 1 {
			t.Errorf("DueSteps = %v, want step 1, changed in the cache", due)
		}

		steps, err := w.Steps("r")
		if err != nil {
			return err
		}
		if steps[1].State != store.StepReady {
			t.Errorf("Steps shows step 1 %v, want ready", steps[1].State)
		}
		next, err := w.NextDue()
		if err != nil {
			return err
		}
		if !next.Equal(now) {
			t.Errorf("NextDue = %v, want %v", next, now)
		}
		return nil
	})
}

func TestDeleteRunForgetsItsRecords(t *testing.T) {
	s := newStore(t, 1)
	inTx(t, s, func(w *txcache.Tx, c *counting) error {
		st, err := w.Step("r", 0, 0)
		if err != nil {
			return err
		}
		st.Attempts = 7
		if err := w.PutStep(st); err != nil {
			return err
		}
		if err := w.DeleteRun("r"); err != nil {
			return err
		}
		if _, err := w.Step("r", 0, 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a step of the deleted run: %v, want ErrNotFound", err)
		}
		return nil
	})
}

func TestManyRecordsPassThrough(t *testing.T) {
	const n = 200 // beyond what the cache keeps
	s := newStore(t, n)
	inTx(t, s, func(w *txcache.Tx, c *counting) error {
		for round := range 2 {
			for i := range n {
				st, err := w.Step("r", i, 0)
				if err != nil {
					return err
				}
				if st.Attempts != round {
					t.Fatalf("round %d, step %d: attempts %d", round, i, st.Attempts)
				}
				st.Attempts++
				if err := w.PutStep(st); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for i := range n {
		checkAttempts(t, s, i, 2)
	}
}

func TestReset(t *testing.T) {
	s := newStore(t, 1)
	inTx(t, s, func(w *txcache.Tx, c *counting) error {
		st, err := w.Step("r", 0, 0)
		if err != nil {
			return err
		}
		st.Attempts = 5
		if err := w.PutStep(st); err != nil {
			return err
		}
		w.Reset(c) // dropped: the transaction is being run again
		st, err = w.Step("r", 0, 0)
		if err != nil {
			return err
		}
		if st.Attempts != 0 {
			t.Errorf("after Reset: attempts %d, want the stored 0", st.Attempts)
		}
		return nil
	})
	checkAttempts(t, s, 0, 0)
}

func TestDueStepsKept(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newStore(t, 1)
	inTx(t, s, func(w *txcache.Tx, c *counting) error {
		st, err := w.Step("r", 0, 0)
		if err != nil {
			return err
		}
		st.State, st.DueAt = store.StepReady, now
		return w.PutStep(st)
	})
	inTx(t, s, func(w *txcache.Tx, c *counting) error {
		due, err := w.DueSteps(now, 10)
		if err != nil || len(due) != 1 {
			t.Fatalf("DueSteps = %v, %v", due, err)
		}
		st, err := w.Step("r", 0, 0)
		if err != nil {
			return err
		}
		if c.reads != 0 || st.State != store.StepReady {
			t.Errorf("after DueSteps listed it: %d reads of the store, state %v; want 0 and ready", c.reads, st.State)
		}
		return nil
	})
}
