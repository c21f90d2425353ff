package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestChaining(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), &out, filepath.Join(t.TempDir(), "flows.db")); err != nil {
		t.Fatal(err)
	}
	want := `run order_123: completed
  validate-order     {"amount":49.9,"valid":true}
  charge-payment     {"amount":49.9,"chargeId":"ch_order_123"}
  ship-order         {"trackingNumber":"TRK-order_123"}
  send-confirmation  {"sent":true}
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
