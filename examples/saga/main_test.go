package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestSaga(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out, filepath.Join(t.TempDir(), "flows.db")); err != nil {
		t.Fatal(err)
	}
	want := `booked book-flight
booked book-hotel
rent-car failed
cancelled book-hotel (booking {"booking":"book-hotel-0042"}, key trip-42/book-hotel/compensation)
cancelled book-flight (booking {"booking":"book-flight-0042"}, key trip-42/book-flight/compensation)
run trip-42: failed (step "rent-car" failed: no cars left)
compensated: [book-hotel book-flight]
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
