package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestFanOut(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out, filepath.Join(t.TempDir(), "flows.db")); err != nil {
		t.Fatal(err)
	}
	want := "run thumbnails: completed (10 steps)\ncollect: {\"thumbnails\":8,\"totalBytes\":5800}\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
