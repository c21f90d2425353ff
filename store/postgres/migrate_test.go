package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/dagflow/dagflow/store"
)

// Rows written by a dagflow of schema version 1 keep working after Open
// migrates the schema: steps and attempts are item 0, a compensation queue
// holds steps, and the new records (items, events, slots, schedules) can be
// written beside them.
func TestMigrateFromVersion1(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	ctx := context.Background()
	a := adminPool(t)
	if err := migrateTo(ctx, a, schema, 1); err != nil {
		t.Fatal(err)
	}
	q := pgx.Identifier{schema}.Sanitize() + "."
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO " + q + "runs (id, state, phase, outcome, error, created_at, started_at, deadline, generation, total, done, running, failed, seq, serial, serial_queue, comp_queue) " +
			"VALUES ('old', 'running', 'compensating', 'failed', 'boom', $1, $2, $3, 1, 3, 2, 1, 1, 2, -1, '{2}', '{1,0}')", []any{at(0), at(1), at(3600)}},
		{"INSERT INTO " + q + "specs (run_id, spec) VALUES ('old', '{\"id\":\"old\"}')", nil},
		{"INSERT INTO " + q + "steps (run_id, idx, id, state, attempts, due_at, result, seq, owner, token, comp) VALUES " +
			"('old', 0, 'a', 'completed', 1, NULL, '1', 1, 'e1', 1, 'ready'), " +
			"('old', 1, 'b', 'completed', 2, NULL, '2', 2, 'e1', 2, ''), " +
			"('old', 2, 'c', 'running', 1, $1, NULL, 0, 'e2', 5, '')", []any{at(30)}},
		{"INSERT INTO " + q + "attempts (run_id, idx, compensation, generation, number, step_id, owner, error) VALUES " +
			"('old', 1, false, 0, 1, 'b', 'e1', '503'), ('old', 1, false, 0, 2, 'b', 'e1', '')", nil},
		{"INSERT INTO " + q + "webhooks (run_id, id, url, event, due_at) VALUES ('old', 'error/1', 'https://x', 'error', $1)", []any{at(10)}},
	} {
		if _, err := a.Exec(ctx, stmt.sql, stmt.args...); err != nil {
			t.Fatalf("%s: %v", stmt.sql, err)
		}
	}

	s := openStore(t, schema, Options{})
	var run store.Run
	var steps []store.Step
	var atts []store.Attempt
	var due []store.Step
	err := s.View(ctx, func(tx store.Tx) (err error) {
		if run, err = tx.Run("old"); err != nil {
			return err
		}
		if steps, err = tx.Steps("old"); err != nil {
			return err
		}
		if atts, err = tx.Attempts("old", -1); err != nil {
			return err
		}
		due, err = tx.DueSteps(at(100), 10)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]store.Ref{{Index: 1}, {Index: 0}}, run.CompQueue); d != "" {
		t.Errorf("CompQueue of a version-1 run (-want +got):\n%s", d)
	}
	if run.Cause != "" || run.Parent != "" || run.Limit != 0 || !slicesEqual(run.SerialQueue, []int{2}) {
		t.Errorf("run after migrating: %+v", run)
	}
	if len(steps) != 3 || steps[2].Item != 0 || steps[2].Token != 5 || steps[0].Comp != store.CompReady {
		t.Errorf("steps after migrating: %+v", steps)
	}
	if len(atts) != 2 || atts[0].Item != 0 || atts[0].Interrupted || atts[0].Error != "503" {
		t.Errorf("attempts after migrating: %+v", atts)
	}
	if len(due) != 1 || due[0].Index != 2 || due[0].Item != 0 {
		t.Errorf("due steps after migrating: %+v", due)
	}

	// The new records sit beside the old ones.
	err = s.Update(ctx, func(tx store.Tx) error {
		for i := 1; i <= 2; i++ {
			if err := tx.PutStep(store.Step{RunID: "old", Index: 2, Item: i, ID: "c", State: store.StepReady, DueAt: at(5), Input: json.RawMessage(`"x"`)}); err != nil {
				return err
			}
			if err := tx.PutAttempt(store.Attempt{RunID: "old", Index: 1, Item: i, StepID: "b", Number: 1, Interrupted: true}); err != nil {
				return err
			}
		}
		r, err := tx.Run("old")
		if err != nil {
			return err
		}
		r.CompQueue = append(r.CompQueue, store.Ref{Index: 2, Item: 2})
		return tx.PutRun(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx store.Tx) (err error) {
		if run, err = tx.Run("old"); err != nil {
			return err
		}
		if steps, err = tx.Steps("old"); err != nil {
			return err
		}
		items, err := tx.Items("old", 2)
		if err != nil {
			return err
		}
		if len(items) != 2 || items[1].Item != 2 {
			t.Errorf("items: %+v", items)
		}
		if atts, err = tx.Attempts("old", 1); err != nil {
			return err
		}
		due, err = tx.DueSteps(at(100), 10)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]store.Ref{{Index: 1}, {Index: 0}, {Index: 2, Item: 2}}, run.CompQueue, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("CompQueue with an item (-want +got):\n%s", d)
	}
	if len(steps) != 3 || len(atts) != 4 || len(due) != 3 {
		t.Errorf("after writing items: %d steps, %d attempts of step 1, %d due; want 3, 4, 3", len(steps), len(atts), len(due))
	}
	// Deleting the run takes everything with it, old rows and new.
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteRun("old") }); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT (SELECT count(*) FROM "+q+"steps) + (SELECT count(*) FROM "+q+"attempts) + (SELECT count(*) FROM "+q+"webhooks)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d rows left after DeleteRun", n)
	}
}

func slicesEqual(a, b []int) bool { return cmp.Equal(a, b, cmpopts.EquateEmpty()) }
