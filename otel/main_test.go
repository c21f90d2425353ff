package dagflowotel_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left behind: every
// engine a test opens must stop all it started on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
