package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/dagflow/dagflow/store"
)

func TestForRun(t *testing.T) {
	ctx := context.Background()
	if got := store.RunOf(ctx); got != "" {
		t.Errorf("RunOf(no hint) = %q, want \"\"", got)
	}
	ctx = store.ForRun(ctx, "order-1")
	if got := store.RunOf(ctx); got != "order-1" {
		t.Errorf("RunOf = %q, want order-1", got)
	}
	if got := store.RunOf(store.ForRun(ctx, "order-2")); got != "order-2" {
		t.Errorf("RunOf of a second hint = %q, want order-2", got)
	}
}

func TestStepsOf(t *testing.T) {
	ctx := context.Background()
	if got := store.StepsOf(ctx); got != nil {
		t.Errorf("StepsOf(no hint) = %v, want nil", got)
	}
	ctx = store.ForRun(ctx, "order-1", 2, 5)
	if got := store.StepsOf(ctx); !slices.Equal(got, []int{2, 5}) {
		t.Errorf("StepsOf = %v, want [2 5]", got)
	}
	if got := store.StepsOf(store.ForRun(ctx, "order-2")); got != nil {
		t.Errorf("StepsOf of a second hint without steps = %v, want nil", got)
	}
}
