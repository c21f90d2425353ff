package memory_test

import (
	"testing"

	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/memory"
	"github.com/dagflow/dagflow/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
}

// The memory store keeps step states as small codes: a state it does not
// know is refused, not stored as something else.
func TestUnknownStepState(t *testing.T) {
	s := memory.New()
	defer s.Close()
	ctx := t.Context()
	for _, st := range []store.Step{
		{RunID: "r", Index: 0, ID: "a", State: "paused"},
		{RunID: "r", Index: 0, ID: "a", State: store.StepPending, Comp: "undone"},
	} {
		err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.PutRun(store.Run{ID: "r", State: store.RunRunning, Total: 1}); err != nil {
				return err
			}
			return tx.PutStep(st)
		})
		if err == nil {
			t.Fatalf("PutStep(%+v) stored an unknown state", st)
		}
		if err := s.View(ctx, func(tx store.Tx) error { _, err := tx.Run("r"); return err }); err == nil {
			t.Fatal("the failed transaction left its run behind")
		}
	}
}
