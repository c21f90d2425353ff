package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestFanIn(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out, filepath.Join(t.TempDir(), "flows.db")); err != nil {
		t.Fatal(err)
	}
	want := "run daily-report: completed\nreport: {\"sources\":3,\"totalOrders\":225}\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
