package cron

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestMain makes the tests read time zones from the Go distribution's own
// database, not the machine's, so that the expected ticks (and the golden
// file) do not move with the machine's tzdata package.
func TestMain(m *testing.M) {
	root := os.Getenv("GOROOT")
	if root == "" {
		root = runtime.GOROOT() //nolint:staticcheck // the toolchain that runs the test
	}
	if zip := filepath.Join(root, "lib", "time", "zoneinfo.zip"); root != "" {
		if _, err := os.Stat(zip); err == nil {
			os.Setenv("ZONEINFO", zip)
		}
	}
	os.Exit(m.Run())
}
