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
	hold        *hold // the next Update that claims a step waits after its commit

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

// hold is what HoldAfterClaim arms.
type hold struct {
	held    chan struct{}
	release chan struct{}
}

// HoldAfterClaim makes the next Update that claims a step (writes one in
// state running) wait, once it has committed and before it returns, until
// release is called; held is closed as it starts to wait. It opens the
// moment between a claim and the start of its attempt to tests.
func (f *Store) HoldAfterClaim() (held <-chan struct{}, release func()) {
	h := &hold{held: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	f.hold = h
	f.mu.Unlock()
	var once sync.Once
	return h.held, func() { once.Do(func() { close(h.release) }) }
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
	var claimed bool
	err := f.Store.Update(ctx, func(tx store.Tx) error {
		ft := &faultTx{Tx: tx, f: f}
		defer func() { claimed = ft.claimed }()
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
		if claimed {
			f.mu.Lock()
			h := f.hold
			f.hold = nil
			f.mu.Unlock()
			if h != nil {
				close(h.held)
				<-h.release
			}
		}
	}
	return err
}

type faultTx struct {
	store.Tx
	f         *Store
	wroteSpec bool
	claimed   bool // wrote a step in state running
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
	if s.State == store.StepRunning {
		t.claimed = true
	}
	return t.Tx.PutStep(s)
}
