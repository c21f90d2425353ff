package bolt_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
		st, err := tx.Step("old", 0, 0)
		if err != nil || string(st.Result) != `{"x":1}` || !st.CompletedAt.Equal(at) {
			t.Errorf("step = %+v, %v", st, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigratesSchema1: a file of schema 1, which kept the due time of each
// due step in a bucket of its own as well as in the step's record, opens as
// schema 2 without that bucket, and its due steps are found and rescheduled
// as before.
func TestMigratesSchema1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutRun(store.Run{ID: "r", State: store.RunRunning, CreatedAt: at, Total: 2, Serial: -1}); err != nil {
			return err
		}
		if err := tx.PutStep(store.Step{RunID: "r", Index: 0, ID: "a", State: store.StepReady, DueAt: at}); err != nil {
			return err
		}
		return tx.PutStep(store.Step{RunID: "r", Index: 1, ID: "b", State: store.StepPending})
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Make it a file as schema 1 wrote it.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("stepdue"))
		if err != nil {
			return err
		}
		stepKey := append([]byte{0, 1, 'r'}, 0, 0, 0, 0)
		var due [8]byte
		binary.BigEndian.PutUint64(due[:], uint64(at.UnixNano())^(1<<63))
		if err := b.Put(stepKey, due[:]); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte{0, 0, 0, 0, 0, 0, 0, 1})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("opening a schema 1 file: %v", err)
	}
	due := func(now time.Time) []string {
		t.Helper()
		var ids []string
		if err := s.View(ctx, func(tx store.Tx) error {
			steps, err := tx.DueSteps(now, 10)
			for _, st := range steps {
				ids = append(ids, st.ID)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := due(at); len(got) != 1 || got[0] != "a" {
		t.Fatalf("due steps after migration = %v, want [a]", got)
	}
	later := at.Add(time.Hour)
	if err := s.Update(ctx, func(tx store.Tx) error {
		return tx.PutStep(store.Step{RunID: "r", Index: 0, ID: "a", State: store.StepReady, DueAt: later})
	}); err != nil {
		t.Fatal(err)
	}
	if got := due(at.Add(time.Minute)); len(got) != 0 {
		t.Errorf("due steps before the new due time = %v, want none", got)
	}
	if got := due(later); len(got) != 1 || got[0] != "a" {
		t.Errorf("due steps at the new due time = %v, want [a]", got)
	}
	s.Close()

	db, err = bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket([]byte("meta")).Get([]byte("version")); binary.BigEndian.Uint64(v) != 3 {
			t.Errorf("schema after migration = %v, want 3", v)
		}
		if tx.Bucket([]byte("stepdue")) != nil {
			t.Error("the bucket stepdue is still there")
		}
		return nil
	})
}

// TestReadOnly: a file opened read-only is read as it is and not changed,
// several readers share it, a writer waits for them, and an empty file or
// one of another program is refused without being made a database.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.db")
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := store.Run{ID: "r", State: store.RunCompleted, CreatedAt: time.Unix(1, 0).UTC()}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutRun(run) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	r1, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := bolt.Open(path, bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	if _, err := bolt.Open(path, bolt.Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, bolt.ErrLocked) {
		t.Errorf("a writer while readers hold the file: %v, want ErrLocked", err)
	}
	var got store.Run
	if err := r1.View(ctx, func(tx store.Tx) (err error) { got, err = tx.Run("r"); return err }); err != nil || got.State != store.RunCompleted {
		t.Errorf("read %+v, %v", got, err)
	}
	if err := r1.Update(ctx, func(tx store.Tx) error { return tx.PutRun(run) }); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("Update on a read-only store: %v, want ErrReadOnly", err)
	}
	for _, r := range []*bolt.Store{r1, r2} {
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(before, after) {
		t.Errorf("the file changed while open read-only (%v)", err)
	}

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bolt.Open(empty, bolt.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "the file is empty") {
		t.Errorf("an empty file: %v", err)
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Errorf("the empty file was written to")
	}
	other := filepath.Join(dir, "other.db")
	db, err := bbolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := bolt.Open(other, bolt.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not a dagflow database") {
		t.Errorf("a bbolt file of another program: %v", err)
	}
}

// TestMigratesSchema2 opens a file written by the dagflow before map items
// (testdata/schema2.db, a finished run with a step that failed after two
// attempts): its records read as they were, the attempts keep their place,
// and the new buckets work.
func TestMigratesSchema2(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join("testdata", "schema2.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("opening a schema 2 file: %v", err)
	}
	defer s.Close()
	err = s.View(ctx, func(tx store.Tx) error {
		r, err := tx.Run("v2")
		if err != nil || r.State != store.RunFailed || r.Total != 2 || r.CompQueue != nil {
			t.Errorf("run = %+v, %v", r, err)
		}
		st, err := tx.Step("v2", 0, 0)
		if err != nil || string(st.Result) != `{"x":1}` || st.Item != 0 || st.Items != 0 {
			t.Errorf("step = %+v, %v", st, err)
		}
		atts, err := tx.Attempts("v2", 1)
		if err != nil || len(atts) != 2 || atts[0].Number != 1 || atts[1].Number != 2 || atts[0].Item != 0 {
			t.Errorf("attempts = %+v, %v", atts, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutAttempt(store.Attempt{RunID: "v2", Index: 1, StepID: "b", Generation: 1, Number: 1}); err != nil {
			return err
		}
		if err := tx.PutEvent(store.Event{Name: "e", Key: "k", ID: "1", SentAt: time.Now()}); err != nil {
			return err
		}
		atts, err := tx.Attempts("v2", 1)
		if err != nil || len(atts) != 3 || atts[2].Generation != 1 {
			t.Errorf("attempts after a new one = %+v, %v", atts, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
