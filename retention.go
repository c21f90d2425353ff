package dagflow

import (
	"time"

	"github.com/dagflow/dagflow/store"
)

// Keeping a store small: events older than WithEventRetention, and (with
// WithRetention) runs that ended longer ago than that, are deleted in the
// background, a batch at a time, by the scheduler's loop.

// pruneBatch is how many runs or events one transaction of prune deletes;
// it reads at most prunePages pages of pruneBatch ended runs to find them.
const (
	pruneBatch = 100
	prunePages = 10
)

// prune deletes a batch of old events and runs, and returns when it should
// run next.
func (e *Engine) prune() time.Time {
	now := e.now()
	every := time.Minute
	if r := e.cfg.retention; r > 0 && r/10 < every {
		every = max(r/10, 10*time.Millisecond)
	}
	full := false
	err := e.store.Update(e.ctx, func(tx store.Tx) error {
		n, err := tx.DeleteEvents(now.Add(-e.cfg.eventRetention), pruneBatch)
		full = n == pruneBatch
		return err
	})
	if err == nil && e.cfg.retention > 0 {
		var deleted []string
		var more bool
		var resume *store.Cursor
		err = e.store.Update(e.ctx, func(tx store.Tx) error {
			deleted, more, resume = deleted[:0], false, e.pruneFrom
			for range prunePages {
				runs, err := tx.Runs(store.RunQuery{EndedBefore: now.Add(-e.cfg.retention), Before: resume, Limit: pruneBatch})
				if err != nil {
					return err
				}
				for _, r := range runs {
					if r.Parent != "" {
						continue // goes with its parent
					}
					if err := deleteRun(tx, r.ID); err != nil {
						return err
					}
					deleted = append(deleted, r.ID)
				}
				more = len(runs) == pruneBatch
				if !more {
					resume = nil
					return nil
				}
				last := runs[len(runs)-1]
				resume = &store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
				if len(deleted) >= pruneBatch {
					return nil
				}
			}
			return nil
		})
		if err == nil {
			// Child runs whose parents are kept fill pages: the next pass
			// goes on after them rather than read them again.
			e.pruneFrom = resume
			full = full || more
		}
		for _, id := range deleted {
			e.runs.forget(id)
			e.notify(store.Change{Kind: store.ChangeRun, RunID: id})
		}
		if len(deleted) > 0 {
			e.log.Debug("dagflow: deleted runs past their retention", "runs", len(deleted))
		}
	}
	if err != nil && e.ctx.Err() == nil {
		e.log.Warn("dagflow: deleting old runs and events", "error", err)
	}
	if full {
		return now // more to delete: soon
	}
	return now.Add(every)
}

// Retention returns how long the engine keeps runs that ended (zero: until
// Delete) and sent events.
func (e *Engine) Retention() (runs, events time.Duration) {
	return e.cfg.retention, e.cfg.eventRetention
}
