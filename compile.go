package dagflow

import (
	"time"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/internal/path"
)

// compile turns a valid, normalized workflow into the state machine's plan.
// g is its dependency graph when validation built it, or nil.
func compile(w *Workflow, g *depGraph) *flow.Plan {
	p := &flow.Plan{
		Saga: w.Saga, Continue: w.OnStepFailure == ContinueOnFailure, Timeout: w.Timeout,
		OnComplete: w.OnComplete, OnError: w.OnError,
		Steps: make([]flow.StepPlan, len(w.Steps)),
	}
	index := make(map[string]int32, len(w.Steps))
	for i := range w.Steps {
		index[w.Steps[i].ID] = int32(i)
	}
	isStep := func(id string) bool { _, ok := index[id]; return ok }
	if g == nil {
		g = &depGraph{first: make([]int32, len(w.Steps)+1)}
		for i := range w.Steps {
			g.first[i] = int32(len(g.edges))
			for _, d := range w.Steps[i].DependsOn {
				g.edges = append(g.edges, index[d])
			}
		}
		g.first[len(w.Steps)] = int32(len(g.edges))
	}
	if c := w.Concurrency; c != nil {
		k, _ := path.Parse(c.Key, nil)
		p.Concurrency = &flow.ConcurrencyPlan{Key: k, Limit: c.Limit}
	}
	retries := map[flow.Retry]*flow.Retry{}
	for i := range w.Steps {
		s := &w.Steps[i]
		sp := &p.Steps[i]
		*sp = flow.StepPlan{
			ID: s.ID, Deps: g.deps(i), Parallel: s.Parallel, AllowFailedDeps: s.AllowFailedDeps,
			Timeout: s.Timeout, Handler: s.Handler, URL: s.URL,
		}
		r := flow.Retry{MaxAttempts: 1, Initial: DefaultInitialInterval, Max: DefaultMaxInterval}
		if s.Retries != nil {
			r = flow.Retry{MaxAttempts: max(s.Retries.MaxAttempts, 1), Initial: s.Retries.InitialInterval, Max: s.Retries.MaxInterval}
			switch s.Retries.Backoff {
			case Linear:
				r.Kind = flow.Linear
			case Fixed:
				r.Kind = flow.Fixed
			}
		}
		if retries[r] == nil {
			retries[r] = &r
		}
		sp.Retry = retries[r]
		switch {
		case s.Sleep != nil:
			sp.Kind, sp.SleepFor = flow.Sleep, s.Sleep.Duration
			if u := s.Sleep.Until; u != "" {
				if t, err := time.Parse(time.RFC3339Nano, u); err == nil {
					sp.SleepFor = 0
					sp.SleepUntil = nil
					sp.SleepAt = t
				} else {
					pu, _ := path.Parse(u, isStep)
					sp.SleepUntil = &pu
				}
			}
		case s.WaitForEvent != nil:
			sp.Kind = flow.Event
			sp.EventName, sp.EventTimeout = s.WaitForEvent.Name, s.WaitForEvent.Timeout
			sp.EventKey, _ = path.Parse(s.WaitForEvent.Key, isStep)
		case s.Workflow != nil:
			sp.Kind = flow.Child
			sp.HasComp = hasCompensation(s.Workflow)
		default:
			sp.HasComp = s.Compensation != ""
			if s.Handler != "" {
				sp.CompHandler = s.Compensation
			} else {
				sp.CompURL = s.Compensation
			}
		}
		if m := s.Map; m != nil {
			mp := &flow.MapPlan{MaxConcurrency: m.MaxConcurrency, FailCount: m.ToleratedFailureCount, FailPercent: m.ToleratedFailurePercentage}
			if m.Items.Path != "" {
				ip, _ := path.Parse(m.Items.Path, isStep)
				mp.Items = &ip
			} else {
				mp.Literal = m.Items.List
			}
			sp.Map = mp
		}
	}
	// Dependents, from the dependencies.
	for i := range p.Steps {
		for _, d := range p.Steps[i].Deps {
			p.Steps[d].Dependents = append(p.Steps[d].Dependents, int32(i))
		}
	}
	return p
}

// hasCompensation reports whether a sub-workflow rolls itself back when its
// parent compensates it: it is a saga with a step it can compensate.
func hasCompensation(w *Workflow) bool {
	if !w.Saga {
		return false
	}
	for i := range w.Steps {
		s := &w.Steps[i]
		if s.Compensation != "" || s.Workflow != nil && hasCompensation(s.Workflow) {
			return true
		}
	}
	return false
}
