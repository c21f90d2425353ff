package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dagflow/dagflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	st, err := run(ctx, filepath.Join(t.TempDir(), "flows.db"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted {
		t.Fatalf("run %s: %s", st.State, st.Error)
	}
	want := `{"published":["thumbs/a_128.png","thumbs/b_128.png","thumbs/c_128.png"]}`
	if got := string(st.Results["finalize"]); got != want {
		t.Errorf("finalize = %s, want %s", got, want)
	}
	for _, s := range st.Steps {
		if s.ID == "process" && (s.Items == nil || s.Items.Completed != 3) {
			t.Errorf("process items %+v", s.Items)
		}
	}
}
