package dagflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dagflow/dagflow/internal/cron"
	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// Schedule creates a run of a workflow at each tick of a cron expression. The
// run's id is "<ID>/<UTC time of the tick in RFC 3339>", so that a tick
// creates one run however many engines share the store. Ticks missed while
// no engine ran are not replayed, except the latest one.
type Schedule struct {
	// ID names the schedule; it may not contain "/".
	ID string `json:"id"`
	// Cron is a standard five-field cron expression ("0 2 * * *": every
	// day at 02:00), or a descriptor such as "@hourly".
	Cron string `json:"cron"`
	// Timezone is the IANA time zone the expression is read in
	// ("Europe/Paris"); empty means UTC.
	Timezone string `json:"timezone,omitempty"`
	// Workflow is what each run runs; its ID is left empty (each run's id
	// is the schedule's and the tick's).
	Workflow Workflow `json:"workflow"`
}

// ScheduleInfo is a schedule as Engine.Schedules lists it.
type ScheduleInfo struct {
	ID       string `json:"id"`
	Cron     string `json:"cron"`
	Timezone string `json:"timezone,omitempty"`
	// Next is the next tick.
	Next time.Time `json:"next"`
	// Last is the latest tick a run was created for, zero before the first.
	Last time.Time `json:"last,omitzero"`
}

// parseSchedule reads a schedule's expression in its time zone.
func parseSchedule(expr, tz string) (cron.Schedule, *time.Location, []Problem) {
	var ps []Problem
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil || strings.Contains(tz, "..") {
			ps = append(ps, Problem{Path: "timezone", Message: fmt.Sprintf("unknown time zone %s", quote(tz))})
		} else {
			loc = l
		}
	}
	if strings.HasPrefix(strings.TrimSpace(expr), "TZ=") || strings.HasPrefix(strings.TrimSpace(expr), "CRON_TZ=") {
		ps = append(ps, Problem{Path: "cron", Message: "give the time zone in timezone, not in the expression"})
		return nil, loc, ps
	}
	sched, err := cron.Parse(expr)
	if err != nil {
		ps = append(ps, Problem{Path: "cron", Message: fmt.Sprintf("%s is not a cron expression: %v", quote(expr), err)})
	}
	return sched, loc, ps
}

// Schedule adds a schedule, or replaces the one with its id. Its first run is
// created at its next tick. It returns a *ValidationError for a bad id,
// expression, time zone or workflow.
func (e *Engine) Schedule(ctx context.Context, s Schedule) error {
	if e.closed.Load() {
		return ErrClosed
	}
	var ps []Problem
	if strings.Contains(s.ID, "/") {
		ps = append(ps, Problem{Path: "id", Message: fmt.Sprintf("%s contains \"/\", which the ids of its runs (<scheduleId>/<time>) reserve", quote(s.ID))})
	} else if msg := checkID(s.ID, true); msg != "" {
		ps = append(ps, Problem{Path: "id", Message: msg})
	}
	sched, loc, sps := parseSchedule(s.Cron, s.Timezone)
	ps = append(ps, sps...)
	now := e.now()
	if sched != nil && sched.Next(now.In(loc)).IsZero() {
		ps = append(ps, Problem{Path: "cron", Message: fmt.Sprintf("%s never fires (no tick in the next five years)", quote(s.Cron))})
	}
	w := s.Workflow
	if w.ID != "" {
		ps = append(ps, Problem{Path: "workflow.id", Message: "is set by each tick (<scheduleId>/<time>): leave it empty"})
	}
	w.ID = "schedule"
	if wps, _ := w.check(&engineCheck{hasHandler: e.hasHandler, hasBaseURL: e.http.HasBaseURL(), maxDepth: e.cfg.maxDepth}); len(wps) > 0 {
		for _, p := range wps {
			p.Path = "workflow." + p.Path
			ps = append(ps, p)
		}
	}
	if len(ps) > 0 {
		return &ValidationError{Of: "schedule", WorkflowID: s.ID, Problems: ps}
	}
	w.ID = ""
	spec, err := json.Marshal(w)
	if err != nil {
		return fmt.Errorf("dagflow: Schedule %q: %w", s.ID, err)
	}
	rec := store.Schedule{ID: s.ID, Cron: s.Cron, Timezone: s.Timezone, Workflow: spec, CreatedAt: now,
		NextAt: sched.Next(now.In(loc)).UTC()}
	err = e.store.Update(ctx, func(tx store.Tx) error {
		if old, err := tx.Schedule(s.ID); err == nil {
			rec.CreatedAt, rec.LastAt = old.CreatedAt, old.LastAt
		}
		return tx.PutSchedule(rec)
	})
	if err != nil {
		return fmt.Errorf("dagflow: Schedule %q: %w", s.ID, err)
	}
	e.notify(store.Change{Kind: store.ChangeSchedules})
	e.sched.schedulesChanged()
	return nil
}

// Unschedule removes a schedule; the runs it created stay. It returns an
// error matching ErrNotFound for an unknown schedule.
func (e *Engine) Unschedule(ctx context.Context, id string) error {
	if e.closed.Load() {
		return ErrClosed
	}
	err := e.store.Update(ctx, func(tx store.Tx) error { return tx.DeleteSchedule(id) })
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("dagflow: schedule %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("dagflow: Unschedule %q: %w", id, err)
	}
	e.notify(store.Change{Kind: store.ChangeSchedules})
	e.sched.schedulesChanged()
	return nil
}

// Schedules lists the schedules, by id.
func (e *Engine) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var out []ScheduleInfo
	err := e.store.View(ctx, func(tx store.Tx) error {
		list, err := tx.Schedules()
		for _, s := range list {
			out = append(out, ScheduleInfo{ID: s.ID, Cron: s.Cron, Timezone: s.Timezone, Next: s.NextAt, Last: s.LastAt})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dagflow: Schedules: %w", err)
	}
	return out, nil
}

// ScheduledWorkflow returns the workflow of a schedule.
func (e *Engine) ScheduledWorkflow(ctx context.Context, id string) (*Schedule, error) {
	var out *Schedule
	err := e.store.View(ctx, func(tx store.Tx) error {
		s, err := tx.Schedule(id)
		if err != nil {
			return err
		}
		out = &Schedule{ID: s.ID, Cron: s.Cron, Timezone: s.Timezone}
		return json.Unmarshal(s.Workflow, &out.Workflow)
	})
	if err != nil {
		return nil, runErr("ScheduledWorkflow", id, err)
	}
	return out, nil
}

// maxMissedTicks bounds how many missed ticks are skipped over to find the
// latest one.
const maxMissedTicks = 1_000_000

// tickSchedules creates the runs of the schedules whose tick has come (the
// latest tick of each, when several were missed), and returns when the next
// tick of any schedule comes (zero for none).
func (e *Engine) tickSchedules(tx store.Tx, x *flow.Txn, now time.Time) (time.Time, error) {
	list, err := tx.Schedules()
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	for _, s := range list {
		if s.NextAt.IsZero() {
			continue // no tick to come
		}
		if s.NextAt.After(now) {
			if next.IsZero() || s.NextAt.Before(next) {
				next = s.NextAt
			}
			continue
		}
		sched, loc, ps := parseSchedule(s.Cron, s.Timezone)
		if len(ps) > 0 {
			e.log.Error("dagflow: a stored schedule does not parse", "schedule", s.ID, "error", ps[0].String())
			continue
		}
		tick := s.NextAt
		for range maxMissedTicks {
			n := sched.Next(tick.In(loc))
			if n.IsZero() || n.After(now) {
				break
			}
			tick = n
		}
		if err := e.createTick(tx, x, &s, tick.UTC()); err != nil {
			return time.Time{}, err
		}
		s.LastAt, s.NextAt = tick.UTC(), sched.Next(now.In(loc)).UTC()
		if err := tx.PutSchedule(s); err != nil {
			return time.Time{}, err
		}
		if next.IsZero() || s.NextAt.Before(next) {
			next = s.NextAt
		}
	}
	return next, nil
}

// createTick creates the run of one tick of a schedule, unless it exists.
func (e *Engine) createTick(tx store.Tx, x *flow.Txn, s *store.Schedule, tick time.Time) error {
	id := s.ID + "/" + tick.Format(time.RFC3339)
	if _, err := tx.Run(id); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var w Workflow
	if err := json.Unmarshal(s.Workflow, &w); err != nil {
		e.log.Error("dagflow: a stored schedule's workflow does not decode", "schedule", s.ID, "error", err)
		return nil
	}
	w.ID = id
	prep, err := e.prepare(&w, true)
	if err != nil {
		e.log.Error("dagflow: a schedule's tick cannot create its run", "schedule", s.ID, "run", id, "error", err)
		return nil
	}
	plan := e.runs.put(id, &prep.n, prep.plan)
	e.log.Debug("dagflow: schedule tick", "schedule", s.ID, "run", id)
	trace := e.hookRunCreated(e.bgCtx, id)
	return x.Create(store.Run{ID: id, CreatedAt: e.now(), Trace: trace}, prep.spec, plan, prep.key)
}
