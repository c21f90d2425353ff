//go:build unix

package bolt_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/bolt"
)

// TestFileStaysSmall: the store maps more of the file than it has (so that
// bbolt need not map it again as it grows); bbolt then extends the file in
// steps of 16 MiB, sparsely, so that the disk holds only what was written.
func TestFileStaysSmall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx store.Tx) error {
		return tx.PutRun(store.Run{ID: "r", State: store.RunRunning, CreatedAt: time.Now(), Total: 1, Serial: -1})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 17<<20 {
		t.Errorf("a file holding one run is %d bytes long", fi.Size())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 1<<20 {
		t.Errorf("a file holding one run takes %d bytes of disk", st.Blocks*512)
	}
}
