package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow/store"
)

// A row another process wrote after this one cached it is never relied on:
// the check fails, the group runs again at once with the row read from the
// server, and nothing of the stale read is written.
func TestRowCacheStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// other is what the other process does to run "a" after this one
		// cached it.
		other func(tx store.Tx) error
		// then is what this process's Update does; it reports what it
		// read.
		then func(tx store.Tx) (store.Run, store.Step, error)
		// want is the run's Done and its step 0's Attempts at the end, and
		// whether the run is left.
		wantDone, wantAttempts int
		gone                   bool
	}{{
		name:  "run changed, read and written",
		other: func(tx store.Tx) error { return bumpRun(tx, "a") },
		then: func(tx store.Tx) (store.Run, store.Step, error) {
			return store.Run{}, store.Step{}, bump(tx, "a")
		},
		wantDone: 2, wantAttempts: 1,
	}, {
		name:  "step changed, read and written",
		other: func(tx store.Tx) error { return bumpStep(tx, "a", 0) },
		then: func(tx store.Tx) (store.Run, store.Step, error) {
			return store.Run{}, store.Step{}, bump(tx, "a")
		},
		wantDone: 1, wantAttempts: 2,
	}, {
		name:  "run changed, only read",
		other: func(tx store.Tx) error { return bumpRun(tx, "a") },
		then: func(tx store.Tx) (store.Run, store.Step, error) {
			r, err := tx.Run("a")
			return r, store.Step{}, err
		},
		wantDone: 1,
	}, {
		name:  "step changed, only read",
		other: func(tx store.Tx) error { return bumpStep(tx, "a", 0) },
		then: func(tx store.Tx) (store.Run, store.Step, error) {
			if _, err := tx.Run("a"); err != nil {
				return store.Run{}, store.Step{}, err
			}
			st, err := tx.Step("a", 0, 0)
			return store.Run{}, st, err
		},
		wantAttempts: 1,
	}, {
		name:  "run deleted",
		other: func(tx store.Tx) error { return tx.DeleteRun("a") },
		then: func(tx store.Tx) (store.Run, store.Step, error) {
			return store.Run{}, store.Step{}, bump(tx, "a")
		},
		gone: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			schema := newSchema(t)
			s1 := openStore(t, schema, Options{})
			s2 := openStore(t, schema, Options{})
			putRun(t, s1, "a", 2) // s1 caches the run and its steps
			if err := s2.Update(ctx, tc.other); err != nil {
				t.Fatal(err)
			}
			before := s1.Stats()
			var reads []store.Run
			var steps []store.Step
			err := s1.Update(ctx, func(tx store.Tx) error {
				r, st, err := tc.then(tx)
				reads, steps = append(reads, r), append(steps, st)
				return err
			})
			after := s1.Stats()
			if tc.gone {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Update of a run deleted since it was cached = %v, want ErrNotFound", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if n := after.Stale - before.Stale; n != 1 {
				t.Errorf("%d groups ran again for a stale row, want 1", n)
			}
			if after.Cached == before.Cached {
				t.Errorf("nothing was read from the cache")
			}
			if len(reads) != 2 {
				t.Fatalf("the function ran %d times, want 2 (from the cache, then from the server)", len(reads))
			}
			// What the function returned last is what the server holds.
			if got := reads[1].Done; reads[1].ID != "" && got != tc.wantDone {
				t.Errorf("the run read at last has Done %d, want %d", got, tc.wantDone)
			}
			if got := steps[1].Attempts; steps[1].ID != "" && got != tc.wantAttempts {
				t.Errorf("the step read at last has %d attempts, want %d", got, tc.wantAttempts)
			}
			err = s2.View(ctx, func(tx store.Tx) error {
				r, err := tx.Run("a")
				if tc.gone {
					if !errors.Is(err, store.ErrNotFound) {
						t.Errorf("run a after it was deleted: %+v, %v", r, err)
					}
					return nil
				}
				if err != nil {
					return err
				}
				st, err := tx.Step("a", 0, 0)
				if err != nil {
					return err
				}
				if r.Done != tc.wantDone || st.Attempts != tc.wantAttempts {
					t.Errorf("run a: Done %d, step 0: %d attempts; want %d and %d", r.Done, st.Attempts, tc.wantDone, tc.wantAttempts)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// A run found stale is read from the server for a while: the
			// next Update does not fail its check again.
			if tc.gone {
				return
			}
			if err := s2.Update(ctx, tc.other); err != nil {
				t.Fatal(err)
			}
			before = s1.Stats()
			if err := s1.Update(ctx, func(tx store.Tx) error { return bump(tx, "a") }); err != nil {
				t.Fatal(err)
			}
			if n := s1.Stats().Stale - before.Stale; n != 0 {
				t.Errorf("the run found stale was cached again at once: %d more stale groups", n)
			}
		})
	}
}

func bumpRun(tx store.Tx, id string) error {
	r, err := tx.Run(id)
	if err != nil {
		return err
	}
	r.Done++
	return tx.PutRun(r)
}

func bumpStep(tx store.Tx, id string, index int) error {
	st, err := tx.Step(id, index, 0)
	if err != nil {
		return err
	}
	st.Attempts++
	return tx.PutStep(st)
}

// A process's own writes are cached as a read from the server returns them:
// every field of a run and of a step, times to the microsecond in UTC,
// empty lists and JSON as nil, error text cleaned.
func TestRowCacheHoldsWhatTheServerHolds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, newSchema(t), Options{})
	var r store.Run
	fill(reflect.ValueOf(&r).Elem())
	r.ID = "full"
	r.State, r.Phase, r.Outcome, r.Cause = store.RunRunning, store.Phase("compensating"), store.RunFailed, store.Cause("timeout")
	r.Error = "bad \xff byte and a \x00"
	r.CompQueue = []store.Ref{{Index: 0, Item: 0}, {Index: 1, Item: 2}}
	var st store.Step
	fill(reflect.ValueOf(&st).Elem())
	st.RunID, st.Index, st.Item = "full", 0, 0
	st.State, st.Comp = store.StepRunning, store.CompRunning
	st.Result, st.Input = json.RawMessage(`{"a": [1, 2]}`), json.RawMessage(`"x"`)
	st.Error, st.CompError = "\xfe", "nul \x00"
	// Empty but not nil, and times in another zone with nanoseconds.
	empty := store.Step{RunID: "full", Index: 1, Result: json.RawMessage{}, Input: json.RawMessage{},
		DueAt: time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.FixedZone("x", 3600))}
	// A field fill does not know how to set would go unchecked.
	for _, v := range []reflect.Value{reflect.ValueOf(r), reflect.ValueOf(st)} {
		for i := range v.NumField() {
			if name := v.Type().Field(i).Name; name != "Index" && name != "Item" && v.Field(i).IsZero() {
				t.Errorf("%s.%s is zero: teach fill its type", v.Type().Name(), v.Type().Field(i).Name)
			}
		}
	}
	if err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutRun(r); err != nil {
			return err
		}
		if err := tx.PutStep(st); err != nil {
			return err
		}
		return tx.PutStep(empty)
	}); err != nil {
		t.Fatal(err)
	}
	read := func(f func(func(store.Tx) error) error) (store.Run, []store.Step) {
		var r store.Run
		var steps []store.Step
		err := f(func(tx store.Tx) error {
			var err error
			if r, err = tx.Run("full"); err != nil {
				return err
			}
			steps = nil
			for i := range 2 {
				st, err := tx.Step("full", i, 0)
				if err != nil {
					return err
				}
				steps = append(steps, st)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return r, steps
	}
	cached := s.Stats().Cached
	cr, csteps := read(func(fn func(store.Tx) error) error { return s.Update(ctx, fn) })
	if n := s.Stats().Cached - cached; n != 3 {
		t.Fatalf("%d rows read from the cache, want 3", n)
	}
	sr, ssteps := read(func(fn func(store.Tx) error) error { return s.View(ctx, fn) })
	if diff := cmp.Diff(sr, cr); diff != "" {
		t.Errorf("the run from the cache differs from the server's (-server +cache):\n%s", diff)
	}
	if diff := cmp.Diff(ssteps, csteps); diff != "" {
		t.Errorf("the steps from the cache differ from the server's (-server +cache):\n%s", diff)
	}
}

// fill sets every field of v, a struct, to a value that is not zero.
func fill(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64, reflect.Int32:
			if f.Type() == reflect.TypeFor[time.Duration]() {
				f.SetInt(int64(time.Second))
			} else {
				f.SetInt(int64(i + 1))
			}
		case reflect.Uint64, reflect.Uint32, reflect.Uint:
			f.SetUint(uint64(i + 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			switch f.Type().Elem().Kind() {
			case reflect.Int:
				f.Set(reflect.ValueOf([]int{i, i + 1}).Convert(f.Type()))
			case reflect.Uint8:
				f.SetBytes([]byte(`{"f": 1}`))
			}
		case reflect.Struct:
			if f.Type() == reflect.TypeFor[time.Time]() {
				f.Set(reflect.ValueOf(base.Add(time.Duration(i)*time.Hour + 123_456_789).In(time.FixedZone("y", -7200))))
			}
		}
	}
}

// A function that fails for a reason of its own, having read from the row
// cache, fails only if what it read holds: an engine refusing an outcome
// because a remembered step shows another claim must see the step as it is.
func TestRowCacheFailureIsChecked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := newSchema(t)
	s1 := openStore(t, schema, Options{})
	s2 := openStore(t, schema, Options{})
	putRun(t, s1, "a", 1) // s1 remembers step 0 with no claim
	// The claim s1 does not know of (its own claim, say, whose COMMIT's
	// answer it lost).
	if err := s2.Update(ctx, func(tx store.Tx) error {
		st, err := tx.Step("a", 0, 0)
		if err != nil {
			return err
		}
		st.State, st.Owner, st.Token = store.StepRunning, "s1", 7
		return tx.PutStep(st)
	}); err != nil {
		t.Fatal(err)
	}
	errLost := errors.New("claim lost")
	runs := 0
	err := s1.Update(ctx, func(tx store.Tx) error {
		runs++
		if _, err := tx.Run("a"); err != nil {
			return err
		}
		st, err := tx.Step("a", 0, 0)
		if err != nil {
			return err
		}
		if st.Token != 7 {
			return errLost
		}
		st.State, st.Owner, st.Token = store.StepCompleted, "", 0
		return tx.PutStep(st)
	})
	if err != nil {
		t.Fatalf("Update = %v after %d runs, want nil: the error came of a stale read", err, runs)
	}
	if runs != 2 {
		t.Errorf("the function ran %d times, want 2 (from the cache, then from the server)", runs)
	}
}

// A transaction whose every read the row cache answered begins in the batch
// that commits it, so its id is unknown when that batch's answer is lost:
// the rows it wrote tell whether it committed. The proxy loses the batch
// (the server never commits) or its answer (the server commits), then cuts
// the connection.
func TestCommitOutcomeLostInOneBatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		toServer  bool
		committed string
	}{
		{"AnswerLost", false, "had committed"},
		{"BatchLost", true, "had not committed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			var lmu sync.Mutex
			s, p := openThroughProxy(t, Options{Committers: 1, MaxConns: 1, Logger: slog.New(slog.NewTextHandler(lockedWriter{&lmu, &logs}, nil))})
			putRun(t, s, "a", 1)
			putRun(t, s, "w", 1)
			ctx := context.Background()
			// The same statements once, so that none is prepared in the
			// batch that is lost.
			if err := s.Update(ctx, func(tx store.Tx) error { return bump(tx, "w") }); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			s.commitHook = func(tx *tx) {
				once.Do(func() {
					if tx.xid != 0 {
						t.Errorf("the transaction began before its COMMIT's batch")
					}
					p.loseBatch(tc.toServer)
				})
			}
			if err := s.Update(ctx, func(tx store.Tx) error { return bump(tx, "a") }); err != nil {
				t.Fatalf("Update: %v", err)
			}
			done, attempts := counts(t, s, "a")
			if done[0] != 1 || attempts[0] != 1 {
				t.Errorf("run a: Done %d, Attempts %d; want 1 each", done[0], attempts[0])
			}
			lmu.Lock()
			out := logs.String()
			lmu.Unlock()
			t.Logf("log: %s", out)
			if st := s.Stats(); st.CommitsLost != 1 || st.CommitsResolved != 1 {
				t.Errorf("stats %+v, want one COMMIT lost and resolved", st)
			}
			if n := strings.Count(out, "\n"); n != 1 || !strings.Contains(out, tc.committed) {
				t.Errorf("the store logged %d lines, want one saying %q", n, tc.committed)
			}
		})
	}
}
