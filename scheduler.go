package dagflow

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// The scheduler is the engine's one loop that looks for work: whenever it is
// told work may be due (a run created, retried or cancelled, a step made
// ready by another engine, a handler registered, a worker slot freed while
// work waited) and when the next due time comes, it runs one transaction that
// claims due steps for the free worker slots, acts on timers (sleeps that
// ended, waits that timed out, leases that ran out), and takes due webhooks
// to deliver; schedules' ticks and the pruning of old events and runs ride
// on the same loop.
//
// Every claimed step holds one of the engine's worker slots from the
// transaction that claims it to the one that records its outcome. That
// transaction also claims, with the worker's slot and any slots free then,
// the steps the outcome made ready (else the steps due longest), so that a
// run goes on without waiting for the loop (see Engine.finish).
//
// On a store that engines share, a commit is round trips to a server and
// waits on other engines' locks, and a worker would sit idle through each
// outcome's commit before its next attempt. So there the engine claims
// ahead: it has half again as many worker slots as its concurrency, while
// only concurrency attempts run at once (exec); a step claimed ahead waits
// for an attempt to end, and starts the moment one does, while that
// attempt's outcome commits. It claims ahead only while attempts end often
// (aheadNow), so that a step claimed ahead waits a few milliseconds, not
// behind long attempts; one that waits aheadWait is given back.
type scheduler struct {
	e     *Engine
	wake  chan struct{} // something may be due now
	freed chan struct{} // a worker slot was given back
	free  atomic.Int64  // worker slots no claim holds
	more  bool          // owned by loop: work may be due now
	busy  atomic.Int64  // workers under way, for Shutdown

	ahead int           // worker slots beyond the concurrency, to claim ahead with
	exec  chan struct{} // with ahead: one per attempt under way, at most the concurrency
	ends  endRate       // of attempts, for aheadNow

	tmu     sync.Mutex
	timer   Timer
	timerAt time.Time

	hooks   sync.WaitGroup // webhook deliveries under way
	hookSem chan struct{}  // bounds them

	// Owned by loop: when schedules and pruning are next due.
	nextTick     time.Time
	ticksRead    bool
	nextPrune    time.Time
	schedChanged atomic.Bool // schedules changed: read them again

	claimTx txState       // owned by loop: the claim transaction's
	spare   chan *txState // the workers', kept between claims
}

// maxBacklog bounds the count of due steps the Backlog hook gets.
const maxBacklog = 10_000

// maxHooks bounds the webhook deliveries under way at once.
const maxHooks = 16

// aheadWait bounds how long a step claimed ahead waits for an attempt to
// end before the engine gives it back.
const aheadWait = time.Second

// aheadEnds is how many attempts must have ended in the last one to two
// seconds for each step the engine claims ahead: a step claimed ahead then
// waits about (its place in line) / (attempts ending per second), under
// 100 ms.
const aheadEnds = 20

func newScheduler(e *Engine) *scheduler {
	n := e.cfg.concurrency
	s := &scheduler{e: e, wake: make(chan struct{}, 1), freed: make(chan struct{}, 1),
		hookSem: make(chan struct{}, maxHooks), exec: make(chan struct{}, n)}
	if e.lease > 0 {
		s.ahead = n / 2
	}
	s.spare = make(chan *txState, n+s.ahead)
	s.free.Store(int64(n + s.ahead))
	e.workers.SetLimit(n + s.ahead)
	return s
}

// aheadNow is how many of the ahead slots claims may take now: one for
// every aheadEnds attempts that ended lately, so none while attempts are
// long or few.
func (s *scheduler) aheadNow() int {
	if s.ahead == 0 {
		return 0
	}
	return min(s.ahead, s.ends.recent(s.e.now())/aheadEnds)
}

// endRate counts the attempts that ended in the current second and the one
// before.
type endRate struct {
	mu        sync.Mutex
	sec       int64 // the current second, in Unix time
	cur, prev int
}

func (r *endRate) roll(now time.Time) {
	sec := now.Unix()
	switch {
	case sec == r.sec:
	case sec == r.sec+1:
		r.sec, r.prev, r.cur = sec, r.cur, 0
	default:
		r.sec, r.prev, r.cur = sec, 0, 0
	}
}

// ended counts an attempt that ended.
func (r *endRate) ended(now time.Time) {
	r.mu.Lock()
	r.roll(now)
	r.cur++
	r.mu.Unlock()
}

// recent returns the attempts that ended in the current second and the one
// before.
func (r *endRate) recent(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll(now)
	return r.cur + r.prev
}

// poke tells the loop that work may be due now.
func (s *scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// reserve takes every free worker slot, but the ahead slots not to claim
// with now, and returns how many it took.
func (s *scheduler) reserve() int {
	keep := int64(0)
	if s.ahead > 0 {
		keep = int64(s.ahead - s.aheadNow())
	}
	for {
		n := s.free.Load()
		if n <= keep {
			return 0
		}
		if s.free.CompareAndSwap(n, keep) {
			return int(n - keep)
		}
	}
}

// release gives n worker slots back, and tells the loop.
func (s *scheduler) release(n int) {
	if n <= 0 {
		return
	}
	s.free.Add(int64(n))
	select {
	case s.freed <- struct{}{}:
	default:
	}
}

// workerDone gives back the slot of a worker that stops.
func (s *scheduler) workerDone() {
	s.busy.Add(-1)
	s.release(1)
}

// submit hands a claimed task to a worker; the task holds a slot.
func (s *scheduler) submit(t *task) {
	s.busy.Add(1)
	s.e.workers.Go(func() error {
		s.e.work(t)
		return nil
	})
}

// wait waits for the webhook deliveries under way.
func (s *scheduler) wait() { s.hooks.Wait() }

// drain waits until no attempt is under way (for Shutdown), or ctx ends.
func (s *scheduler) drain(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.busy.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// setTimer makes the loop look again at t, unless it will earlier anyway.
func (s *scheduler) setTimer(t time.Time) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	if s.timer != nil && s.timerAt.After(s.e.now()) && !s.timerAt.After(t) {
		return // an earlier timer is pending
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	d := max(t.Sub(s.e.now()), 0)
	s.timerAt = t
	s.timer = s.e.cfg.clock.AfterFunc(d, s.poke)
}

func (s *scheduler) loop() {
	defer func() {
		s.tmu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		s.tmu.Unlock()
	}()
	for {
		select {
		case <-s.e.ctx.Done():
			return
		case <-s.wake:
			s.more = true
		case <-s.freed:
		}
		if s.more {
			s.pass()
		}
	}
}

// pass claims due work for as long as there is some and slots to run it.
func (s *scheduler) pass() {
	e := s.e
	for e.ctx.Err() == nil {
		n := 0
		if !e.draining.Load() {
			n = s.reserve()
		}
		tasks, hooks, next, err := s.claim(n)
		if err != nil {
			s.free.Add(int64(n))
			if e.ctx.Err() == nil {
				e.log.Error("dagflow: claiming due work", "error", err)
				s.setTimer(e.now().Add(time.Second))
			}
			s.more = false
			return
		}
		s.free.Add(int64(n - len(tasks)))
		for _, t := range tasks {
			s.submit(t)
		}
		for _, h := range hooks {
			s.deliver(h)
		}
		if n > 0 && len(tasks) == n || len(hooks) > 0 && len(s.hookSem) < maxHooks {
			continue // there may be more
		}
		s.more = false
		now := e.now()
		switch {
		case !next.IsZero() && !next.After(now) && n == 0:
			// Due now, and no slot was free: claimed when one is given
			// back (release tells the loop, also of a slot given back
			// since this pass reserved none).
			s.more = true
			return
		case !next.IsZero() && !next.After(now):
			// Due now, a slot free, yet nothing claimed: another engine
			// holds it, or a webhook waits for a delivery slot. Look again
			// shortly rather than spin.
			next = now.Add(10 * time.Millisecond)
		}
		if !s.nextTick.IsZero() && (next.IsZero() || s.nextTick.Before(next)) {
			next = s.nextTick
		}
		if !s.nextPrune.IsZero() && (next.IsZero() || s.nextPrune.Before(next)) {
			next = s.nextPrune
		}
		if e.lease > 0 && (next.IsZero() || next.Sub(now) > e.cfg.poll) {
			next = now.Add(e.cfg.poll) // the slow fallback on a shared store
		}
		if !next.IsZero() {
			s.setTimer(next)
		}
		return
	}
}

// claim runs the transaction of a pass: due steps for up to n slots, due
// timers, due webhooks for the free delivery slots, and the schedules' and
// pruning's work when due. It returns the earliest time anything is due.
func (s *scheduler) claim(n int) ([]*task, []store.Webhook, time.Time, error) {
	e := s.e
	var hooks []store.Webhook
	var next time.Time
	tickDue := s.schedChanged.Swap(false) || !s.ticksRead || !s.nextTick.IsZero() && !s.nextTick.After(e.now())
	pruneDue := !s.nextPrune.After(e.now())
	var tick time.Time
	backlog := -1 // not counted
	if e.backlogHooked() {
		backlog = 0
	}
	ts := &s.claimTx
	err := e.store.Update(e.ctx, func(stx store.Tx) error {
		tx := &ts.cache
		tx.Reset(stx)
		now := e.now()
		x := &ts.x
		x.Reset(tx, e.env(), now, &ts.eff)
		if err := x.Claim(n); err != nil {
			return err
		}
		var err error
		if hooks, err = e.claimWebhooks(tx, now, maxHooks-len(s.hookSem)); err != nil {
			return err
		}
		if tickDue {
			if tick, err = e.tickSchedules(tx, x, now); err != nil {
				return err
			}
		}
		if err := x.Flush(); err != nil {
			return err
		}
		if err := tx.Flush(); err != nil {
			return err
		}
		if backlog >= 0 {
			due, err := tx.DueSteps(now, maxBacklog)
			if err != nil {
				return err
			}
			backlog = len(due)
		}
		next, err = tx.NextDue()
		return err
	})
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	if tickDue {
		s.ticksRead, s.nextTick = true, tick
	}
	if pruneDue {
		s.nextPrune = e.prune()
	}
	if backlog >= 0 {
		e.hookBacklog(backlog)
	}
	e.apply(&ts.eff)
	tasks := make([]*task, len(ts.eff.Claimed))
	for i := range ts.eff.Claimed {
		c := &ts.eff.Claimed[i]
		tasks[i] = &task{c: *c, ri: e.claimedRun(c)}
	}
	return tasks, hooks, next, nil
}

// schedulesChanged makes the loop read the schedules again.
func (s *scheduler) schedulesChanged() {
	s.schedChanged.Store(true)
	s.poke()
}

// deliver sends a webhook on a goroutine of its own.
func (s *scheduler) deliver(w store.Webhook) {
	s.hookSem <- struct{}{}
	s.hooks.Add(1)
	go func() {
		defer func() {
			<-s.hookSem
			s.hooks.Done()
			s.poke() // a delivery slot is free
		}()
		s.e.deliver(w)
	}()
}

// apply acts on the effects of a committed transaction but its claims.
func (e *Engine) apply(eff *flow.Effects) {
	for _, id := range eff.Redriven {
		e.runs.redriven(id)
		e.notify(store.Change{Kind: store.ChangeRun, RunID: id})
	}
	for _, st := range eff.Stopped {
		if st.Cancel {
			e.runs.stop(st.RunID, fmt.Errorf("dagflow: run %q stopped: %s", st.RunID, st.Reason))
		}
		e.notify(store.Change{Kind: store.ChangeRun, RunID: st.RunID})
	}
	for _, f := range eff.Finished {
		e.runs.ended(f.RunID)
		e.waits.wake(f.RunID)
		e.notify(store.Change{Kind: store.ChangeRun, RunID: f.RunID})
		e.hookRunEnded(f.RunID, State(f.State))
		if f.State != store.RunCompleted {
			e.log.Info("dagflow: run ended", "run", f.RunID, "state", f.State, "error", f.Error)
		} else {
			e.log.Debug("dagflow: run completed", "run", f.RunID)
		}
	}
	if len(eff.Parked) > 0 {
		e.park(eff.Parked)
	}
	if eff.Due || eff.Hooks {
		e.notify(store.Change{Kind: store.ChangeDue})
		e.sched.poke()
	}
	if !eff.NextDue.IsZero() {
		e.sched.setTimer(eff.NextDue)
	}
}

// claimedRun returns what the engine knows of the run of a claim.
func (e *Engine) claimedRun(c *flow.Claim) *runInfo {
	if ri := e.runs.get(c.RunID); ri != nil {
		return ri
	}
	// Dropped from the cache since the claim: read it again.
	var ri *runInfo
	err := e.store.View(e.bgCtx, func(tx store.Tx) error {
		var err error
		ri, err = e.runs.load(tx, c.RunID)
		return err
	})
	if err != nil {
		e.log.Error("dagflow: reading a claimed step's run", "run", c.RunID, "error", err)
		ri = &runInfo{id: c.RunID, wf: &Workflow{Context: json0}, plan: c.Plan}
	}
	return ri
}

// json0 is an empty JSON object.
var json0 = []byte("{}")
