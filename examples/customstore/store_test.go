package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/storetest"
)

// TestConformance is what makes FileStore a store: the suite every store
// passes.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := OpenFileStore("")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceOnFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := OpenFileStore(filepath.Join(t.TempDir(), "runs.json"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestExample(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	want := "run greetings: completed; second said \"hello from second\"; the store file has data\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}
