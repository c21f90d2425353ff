package dagflow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// This file holds what an engine does only on a store shared with other
// engine processes: it renews the leases of the attempts it runs (and
// cancels one whose lease another engine took over), tells the other
// engines what it changed, and acts on what they tell it.

// leases is the set of attempts under way under a lease.
type leases struct {
	mu   sync.Mutex
	live map[*task]flow.Claim
}

func (l *leases) add(t *task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live == nil {
		l.live = map[*task]flow.Claim{}
	}
	l.live[t] = t.c
}

// started gives t, under a lease since its claim, the context of its
// attempt: ended at once when the lease was lost while t waited to start.
func (l *leases) started(t *task, ctx *attemptCtx) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t.ctx = ctx
	if t.lost {
		ctx.end(errLeaseLost)
	}
}

func (l *leases) remove(t *task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.live, t)
}

// renewLoop extends the leases of the attempts this engine runs, and cancels
// an attempt whose lease was lost.
func (e *Engine) renewLoop() {
	tick := time.NewTicker(e.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
		}
		type liveClaim struct {
			t *task
			c flow.Claim
		}
		e.leases.mu.Lock()
		claims := make([]liveClaim, 0, len(e.leases.live))
		for t, c := range e.leases.live {
			claims = append(claims, liveClaim{t, c})
		}
		e.leases.mu.Unlock()
		if len(claims) == 0 {
			continue
		}
		// One order of row locks for every renewal.
		slices.SortFunc(claims, func(a, b liveClaim) int {
			return cmp.Or(cmp.Compare(a.c.RunID, b.c.RunID), cmp.Compare(a.c.Index, b.c.Index), cmp.Compare(a.c.Item, b.c.Item))
		})
		var lost []liveClaim
		err := e.store.Update(e.ctx, func(tx store.Tx) error {
			lost = lost[:0]
			var eff flow.Effects
			x := flow.Begin(tx, e.env(), e.now(), &eff)
			for _, lc := range claims {
				if err := x.Renew(&lc.c); errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrNotFound) {
					lost = append(lost, lc)
				} else if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			if e.ctx.Err() == nil {
				e.log.Warn("dagflow: renewing leases", "error", err)
			}
			continue
		}
		e.leases.mu.Lock()
		for _, lc := range lost {
			if c, ok := e.leases.live[lc.t]; !ok || c.Token != lc.c.Token {
				continue // ended since
			}
			e.log.Warn("dagflow: lease lost; cancelling the attempt", "run", lc.c.RunID, "step", lc.c.StepID)
			if lc.t.ctx != nil {
				lc.t.ctx.end(errLeaseLost)
			} else {
				lc.t.lost = true // claimed ahead, not started yet
			}
		}
		e.leases.mu.Unlock()
		// The slow fallback for a lost notification: cancel the attempts
		// of runs that another engine cancelled or that timed out.
		var runs []string
		for _, lc := range claims {
			if len(runs) == 0 || runs[len(runs)-1] != lc.c.RunID {
				runs = append(runs, lc.c.RunID)
			}
		}
		e.checkRuns(runs)
	}
}

// errLeaseLost ends the context of an attempt whose lease another engine
// took over.
var errLeaseLost = errors.New("dagflow: the attempt's lease was lost to another engine")

// watchLoop turns a shared store's notifications into work: due steps and
// webhooks are claimed, stopped runs' attempts cancelled, waiters woken.
func (e *Engine) watchLoop(ch <-chan store.Change) {
	for c := range ch {
		switch c.Kind {
		case store.ChangeDue:
			e.sched.poke()
		case store.ChangeSchedules:
			e.sched.schedulesChanged()
		case store.ChangeRun:
			e.waits.wake(c.RunID)
			e.checkRuns([]string{c.RunID})
		}
	}
}

// checkRuns looks at runs this engine works on that another engine may have
// stopped, ended or retried.
func (e *Engine) checkRuns(ids []string) {
	var infos []*runInfo
	for _, id := range ids {
		if ri := e.runs.get(id); ri != nil {
			infos = append(infos, ri)
		}
	}
	if len(infos) == 0 {
		return
	}
	runs := make([]store.Run, len(infos))
	err := e.store.View(e.ctx, func(tx store.Tx) error {
		for i, ri := range infos {
			r, err := tx.Run(ri.id)
			if errors.Is(err, store.ErrNotFound) {
				r = store.Run{ID: ri.id, State: store.RunCancelled} // deleted
			} else if err != nil {
				return err
			}
			runs[i] = r
		}
		return nil
	})
	if err != nil {
		if e.ctx.Err() == nil {
			e.log.Warn("dagflow: reading runs other engines changed", "error", err)
		}
		return
	}
	for i, r := range runs {
		switch {
		case r.State.Final():
			e.runs.forget(r.ID)
			e.waits.wake(r.ID)
		case r.Phase == store.PhaseStopping && r.Cause != store.CauseFailed:
			infos[i].stop(fmt.Errorf("dagflow: run %q stopped: %s", r.ID, r.Error))
		case r.Phase == store.PhaseActive:
			infos[i].mu.Lock()
			stale := infos[i].stopped != nil || infos[i].ctx != nil && infos[i].ctx.Err() != nil || infos[i].gen != r.Generation
			infos[i].mu.Unlock()
			if stale {
				e.runs.redriven(r.ID) // retried since it was cancelled here
			}
		}
	}
}

// notifier holds the changes waiting to be told to the other engines sharing
// the store, so that no worker waits for one: its loop sends them, one
// ChangeDue for any number asked for meanwhile.
type notifier struct {
	mu      sync.Mutex
	w       store.Watcher
	wake    chan struct{}
	quit    chan struct{} // closed by stop
	done    chan struct{} // closed when the loop has ended
	due     bool
	sched   bool
	runs    []string
	running bool
}

// start starts the loop. It runs until stop, which the engine calls once its
// workers have ended: a step that Close hands back is told to the other
// engines too.
func (n *notifier) start(e *Engine, w store.Watcher) {
	n.w, n.wake, n.quit, n.done, n.running = w, make(chan struct{}, 1), make(chan struct{}), make(chan struct{}), true
	go func() {
		defer close(n.done)
		for {
			select {
			case <-n.wake:
				n.flush(e)
			case <-n.quit:
				n.flush(e)
				return
			}
		}
	}()
}

func (n *notifier) stop() {
	if n.running {
		close(n.quit)
		<-n.done
	}
}

// notify tells the engines sharing the store about a change, after the
// transaction that made it committed.
func (e *Engine) notify(c store.Change) {
	n := &e.notes
	if !n.running {
		return
	}
	n.mu.Lock()
	switch c.Kind {
	case store.ChangeDue:
		n.due = true
	case store.ChangeSchedules:
		n.sched = true
	default:
		if !slices.Contains(n.runs, c.RunID) {
			n.runs = append(n.runs, c.RunID)
		}
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) flush(e *Engine) {
	n.mu.Lock()
	due, sched, runs := n.due, n.sched, n.runs
	n.due, n.sched, n.runs = false, false, nil
	n.mu.Unlock()
	send := func(c store.Change) {
		ctx, cancel := context.WithTimeout(e.bgCtx, 5*time.Second)
		defer cancel()
		if err := n.w.Notify(ctx, c); err != nil && e.ctx.Err() == nil {
			e.log.Warn("dagflow: notifying other engines", "error", err)
		}
	}
	for _, id := range runs {
		send(store.Change{Kind: store.ChangeRun, RunID: id})
	}
	if sched {
		send(store.Change{Kind: store.ChangeSchedules})
	}
	if due {
		send(store.Change{Kind: store.ChangeDue})
	}
}
