package bolt_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

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

// TestReadsJSONRecords: files written by earlier versions, whose records
// are JSON, are still read.
func TestReadsJSONRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := store.Run{ID: "old", State: store.RunCompleted, CreatedAt: at, Total: 1, Serial: -1}
	step := store.Step{RunID: "old", Index: 0, ID: "a", State: store.StepCompleted, Result: json.RawMessage(`{"x":1}`), CompletedAt: at}
	runJSON, _ := json.Marshal(run)
	stepJSON, _ := json.Marshal(step)
	key := append([]byte{0, 3}, "old"...)
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket([]byte("runs")).Put(key, runJSON); err != nil {
			return err
		}
		return tx.Bucket([]byte("steps")).Put(append(append([]byte{}, key...), 0, 0, 0, 0), stepJSON)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(context.Background(), func(tx store.Tx) error {
		r, err := tx.Run("old")
		if err != nil || !r.CreatedAt.Equal(at) || r.State != store.RunCompleted {
			t.Errorf("run = %+v, %v", r, err)
		}
		st, err := tx.Step("old", 0)
		if err != nil || string(st.Result) != `{"x":1}` || !st.CompletedAt.Equal(at) {
			t.Errorf("step = %+v, %v", st, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
