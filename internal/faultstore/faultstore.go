// Package faultstore wraps a store.Store to inject faults, for tests of how
// the engine survives a store that fails: commits that fail, writes that
// fail, transactions that block.
package faultstore

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/dagflow/dagflow/store"
)

// ErrInjected is the error of an injected fault.
var ErrInjected = errors.New("faultstore: injected fault")

// Store wraps a store.Store. Its zero faults pass everything through.
type Store struct {
	store.Store

	mu          sync.Mutex
	failCommits int  // fail this many upcoming commits
	failAll     bool // fail every commit from now on
	failPutStep int  // fail the nth PutStep from now (1: the next)
	failCreates int  // fail this many upcoming commits that write a spec
	block       chan struct{}

	Commits  atomic.Int64 // Updates that committed
	Failures atomic.Int64 // faults injected
}

// New wraps s.
func New(s store.Store) *Store { return &Store{Store: s} }

// Exclusive passes through the wrapped store's answer.
func (f *Store) Exclusive() bool {
	ex, ok := f.Store.(store.Exclusive)
	return ok && ex.Exclusive()
}

// FailCommits makes the next n Updates fail after their function ran, as a
// commit that fails does: nothing they wrote is kept.
func (f *Store) FailCommits(n int) {
	f.mu.Lock()
	f.failCommits = n
	f.mu.Unlock()
}

// FailCreates makes the next n Updates that write a spec (a Create) fail
// after their function ran, leaving the engine's other transactions alone.
func (f *Store) FailCreates(n int) {
	f.mu.Lock()
	f.failCreates = n
	f.mu.Unlock()
}

// FailAll makes every Update fail from now on (a disk that is full), or
// stops doing so.
func (f *Store) FailAll(on bool) {
	f.mu.Lock()
	f.failAll = on
	f.mu.Unlock()
}

// FailPutStep makes the nth PutStep from now return ErrInjected.
func (f *Store) FailPutStep(n int) {
	f.mu.Lock()
	f.failPutStep = n
	f.mu.Unlock()
}

// Block makes Updates wait until the returned function is called.
func (f *Store) Block() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.block = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.block = nil
			f.mu.Unlock()
			close(ch)
		})
	}
}

// Update runs fn on the wrapped store, injecting the configured faults.
func (f *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := f.Store.Update(ctx, func(tx store.Tx) error {
		ft := &faultTx{Tx: tx, f: f}
		if err := fn(ft); err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failAll || f.failCommits > 0 || f.failCreates > 0 && ft.wroteSpec {
			if f.failCommits > 0 {
				f.failCommits--
			} else if f.failCreates > 0 && ft.wroteSpec {
				f.failCreates--
			}
			f.Failures.Add(1)
			return ErrInjected
		}
		return nil
	})
	if err == nil {
		f.Commits.Add(1)
	}
	return err
}

type faultTx struct {
	store.Tx
	f         *Store
	wroteSpec bool
}

func (t *faultTx) PutSpec(runID string, spec json.RawMessage) error {
	t.wroteSpec = true
	return t.Tx.PutSpec(runID, spec)
}

func (t *faultTx) PutStep(s store.Step) error {
	t.f.mu.Lock()
	fail := false
	if t.f.failPutStep > 0 {
		t.f.failPutStep--
		fail = t.f.failPutStep == 0
	}
	t.f.mu.Unlock()
	if fail {
		t.f.Failures.Add(1)
		return ErrInjected
	}
	return t.Tx.PutStep(s)
}
