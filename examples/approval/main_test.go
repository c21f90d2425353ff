package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestApproval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, filepath.Join(t.TempDir(), "flows.db"), &out, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	want := `order-approved: completed, "shipped, approved by grace"
refund ch_order-forgotten_120 (order-forgotten)
order-forgotten: failed (step "approval" failed: timed out waiting for event "order-approved"), compensated [charge]
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
