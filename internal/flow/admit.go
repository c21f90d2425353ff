package flow

import (
	"errors"
	"slices"

	"github.com/dagflow/dagflow/store"
)

// This file holds the rules of concurrency keys: at most Limit runs with the
// same key value hold a slot, from their start to their end; the others wait
// in the key's queue, in the order they were created (or retried), pending,
// and start when a slot frees up. The slots are one record per key, so that on
// a shared store the limit holds across engine processes.

// admit starts a run with a concurrency key if a slot is free and no run
// waits before it, and queues it otherwise.
func (x *Txn) admit(rs *runState) error {
	r := &rs.rec
	sl, err := x.slots(r.ConcurrencyKey)
	if err != nil {
		return err
	}
	if slices.Contains(sl.Holders, r.ID) || len(sl.Holders) < r.Limit && len(sl.Queue) == 0 {
		if !slices.Contains(sl.Holders, r.ID) {
			sl.Holders = append(slices.Clip(sl.Holders), r.ID)
			if err := x.tx.PutSlots(sl); err != nil {
				return err
			}
		}
		return x.start(rs)
	}
	if !slices.Contains(sl.Queue, r.ID) {
		sl.Queue = append(slices.Clip(sl.Queue), r.ID)
		if err := x.tx.PutSlots(sl); err != nil {
			return err
		}
	}
	r.Phase = store.PhaseQueued
	return nil
}

func (x *Txn) slots(key string) (store.Slots, error) {
	sl, err := x.tx.Slots(key)
	if errors.Is(err, store.ErrNotFound) {
		return store.Slots{Key: key}, nil
	}
	return sl, err
}

// releaseSlot gives up the slot of a run that ended (or its place in the
// queue) and starts the runs waiting for one, first come first served.
func (x *Txn) releaseSlot(rs *runState) error {
	key, id := rs.rec.ConcurrencyKey, rs.rec.ID
	sl, err := x.slots(key)
	if err != nil {
		return err
	}
	sl.Holders = slices.DeleteFunc(slices.Clone(sl.Holders), func(h string) bool { return h == id })
	sl.Queue = slices.DeleteFunc(slices.Clone(sl.Queue), func(h string) bool { return h == id })
	for len(sl.Queue) > 0 {
		next, err := x.run(sl.Queue[0])
		if err != nil || next.rec.Phase != store.PhaseQueued {
			sl.Queue = sl.Queue[1:] // deleted, or not waiting any more
			continue
		}
		if len(sl.Holders) >= next.rec.Limit {
			break
		}
		sl.Queue = slices.Clone(sl.Queue[1:])
		sl.Holders = append(sl.Holders, next.rec.ID)
		// Written before the run starts: it may end in this transaction
		// and give its slot back.
		if err := x.tx.PutSlots(sl); err != nil {
			return err
		}
		if err := x.start(next); err != nil {
			return err
		}
		if sl, err = x.slots(key); err != nil {
			return err
		}
	}
	return x.tx.PutSlots(sl)
}
