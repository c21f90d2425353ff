package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/bolt"
	"github.com/dagflow/dagflow/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "test.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
