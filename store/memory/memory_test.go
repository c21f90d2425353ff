package memory_test

import (
	"testing"

	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/memory"
	"github.com/dagflow/dagflow/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
}
