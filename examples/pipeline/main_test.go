package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestPipeline(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out, filepath.Join(t.TempDir(), "flows.db")); err != nil {
		t.Fatal(err)
	}
	want := `run nightly-etl: failed
  extract    completed  
  clean      completed  
  enrich     completed  
  geocode    failed     geocoding service unavailable
  score      completed  
  map-tiles  skipped    skipped: dependency "geocode" did not complete
  load       completed  
  report     completed  
report: {"missing":["map-tiles"],"reached":["extract","clean","enrich","score","load"]}
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
