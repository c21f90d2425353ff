package console_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: engines, test
// servers, event streams and browsers are all closed in Cleanup.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
