// Package txcache is a write-back cache of the step and item records of one
// store transaction. The state machine reads a record, changes it and writes
// it back several times in one transaction (a step made ready by its
// dependency's completion, then claimed by the same worker; a fan-in counted
// down by many completions of a group commit); through the cache each record
// is read from the store once and written to it once, when the transaction
// ends. The rules (internal/flow) know nothing of it: it is a store.Tx.
package txcache

import (
	"time"

	"github.com/dagflow/dagflow/store"
)

// Tx is a store.Tx that keeps the first maxRecords step and item records it
// reads, and the changes to them, until Flush; past those it reads and writes
// the store directly (a transaction that readies ten thousand steps gains
// nothing from a copy of each). Reads that list records (Steps, Items,
// DueSteps, Waiting, NextDue) and DeleteRun write the kept records first, so
// that the store answers them. A Tx is used by one goroutine, like the
// store.Tx it wraps; the zero value wraps nothing, and Reset makes it wrap a
// transaction.
type Tx struct {
	store.Tx
	recs []entry
}

type key struct {
	run         string
	index, item int
}

type entry struct {
	k     key
	st    store.Step
	dirty bool
}

// maxRecords is the number of records a Tx keeps.
const maxRecords = 64

// Reset makes t a cache over tx, keeping what it allocated before.
func (t *Tx) Reset(tx store.Tx) {
	t.Tx = tx
	clear(t.recs)
	t.recs = t.recs[:0]
}

func (t *Tx) find(k key) int {
	for i := range t.recs {
		if t.recs[i].k == k {
			return i
		}
	}
	return -1
}

// Step returns the record from the cache, reading it from the store the
// first time.
func (t *Tx) Step(runID string, index, item int) (store.Step, error) {
	k := key{runID, index, item}
	if i := t.find(k); i >= 0 {
		return t.recs[i].st, nil
	}
	st, err := t.Tx.Step(runID, index, item)
	if err == nil && len(t.recs) < maxRecords {
		t.recs = append(t.recs, entry{k: k, st: st})
	}
	return st, err
}

// PutStep keeps a record read through the cache, to be written by Flush;
// it writes any other (a new record, as Create writes) to the store at once.
func (t *Tx) PutStep(st store.Step) error {
	k := key{st.RunID, st.Index, st.Item}
	if i := t.find(k); i >= 0 {
		t.recs[i].st, t.recs[i].dirty = st, true
		return nil
	}
	return t.Tx.PutStep(st)
}

// Flush writes the records changed since the last Flush, in the order they
// were first read or written.
func (t *Tx) Flush() error {
	for i := range t.recs {
		if e := &t.recs[i]; e.dirty {
			e.dirty = false
			if err := t.Tx.PutStep(e.st); err != nil {
				return err
			}
		}
	}
	return nil
}

// Steps writes the changed records, then lists the steps of a run.
func (t *Tx) Steps(runID string) ([]store.Step, error) {
	if err := t.Flush(); err != nil {
		return nil, err
	}
	return t.Tx.Steps(runID)
}

// Items writes the changed records, then lists the items of a step.
func (t *Tx) Items(runID string, index int) ([]store.Step, error) {
	if err := t.Flush(); err != nil {
		return nil, err
	}
	return t.Tx.Items(runID, index)
}

// DueSteps writes the changed records, then lists the due ones, and keeps
// them: the caller reads each again to act on it.
func (t *Tx) DueSteps(now time.Time, max int) ([]store.Step, error) {
	if err := t.Flush(); err != nil {
		return nil, err
	}
	due, err := t.Tx.DueSteps(now, max)
	for i := range due {
		if len(t.recs) == maxRecords {
			break
		}
		st := &due[i]
		if k := (key{st.RunID, st.Index, st.Item}); t.find(k) < 0 {
			t.recs = append(t.recs, entry{k: k, st: *st})
		}
	}
	return due, err
}

// NextDue writes the changed records, then asks the store.
func (t *Tx) NextDue() (time.Time, error) {
	if err := t.Flush(); err != nil {
		return time.Time{}, err
	}
	return t.Tx.NextDue()
}

// Waiting writes the changed records, then asks the store.
func (t *Tx) Waiting(event, key string) ([]store.Step, error) {
	if err := t.Flush(); err != nil {
		return nil, err
	}
	return t.Tx.Waiting(event, key)
}

// DeleteRun writes the changed records, forgets the run's, and deletes it.
func (t *Tx) DeleteRun(id string) error {
	if err := t.Flush(); err != nil {
		return err
	}
	keep := t.recs[:0]
	for _, e := range t.recs {
		if e.k.run != id {
			keep = append(keep, e)
		}
	}
	clear(t.recs[len(keep):])
	t.recs = keep
	return t.Tx.DeleteRun(id)
}
