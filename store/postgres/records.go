package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dagflow/dagflow/store"
)

// How records map to columns:
//
//   - a zero time.Time is NULL (except runs.created_at, see the migration);
//     times keep microseconds and come back in UTC;
//   - json.RawMessage fields are json columns, NULL when empty, and come
//     back byte for byte;
//   - Run.SerialQueue is an integer[], NULL when empty; Run.CompQueue is two
//     integer[] of the same length, its indexes and its items, the items
//     NULL when every one is 0 (as in a queue written by schema version 1);
//   - Slots.Holders and Slots.Queue are text[];
//   - Attempt.Logs is a json array, Attempt.Duration bigint nanoseconds;
//   - free-text error fields are cleaned of what PostgreSQL's text type
//     cannot hold (NUL bytes, invalid UTF-8), which becomes U+FFFD.

type scanner interface {
	Scan(dest ...any) error
}

// ts is the argument for a nullable timestamptz.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// tm is the time of a nullable timestamptz.
func tm(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// js is the argument for a nullable json column.
func js(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// raw is the value of a nullable json column.
func raw(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

// ints is the argument for a nullable integer[] column.
func ints(v []int) any {
	if len(v) == 0 {
		return nil
	}
	return v
}

// clean makes s fit a text column: PostgreSQL rejects NUL bytes and invalid
// UTF-8, which an error message quoting a reply body may contain.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// refs is the arguments for Run.CompQueue: its indexes and its items (NULL
// when all are 0).
func refs(q []store.Ref) (idx, items any) {
	if len(q) == 0 {
		return nil, nil
	}
	is, its := make([]int, len(q)), make([]int, len(q))
	nonzero := false
	for i, r := range q {
		is[i], its[i] = r.Index, r.Item
		nonzero = nonzero || r.Item != 0
	}
	if !nonzero {
		return is, nil
	}
	return is, its
}

// toRefs is the inverse of refs.
func toRefs(idx, items []int) ([]store.Ref, error) {
	if len(idx) == 0 {
		return nil, nil
	}
	if items != nil && len(items) != len(idx) {
		return nil, fmt.Errorf("comp_queue has %d entries but comp_items %d", len(idx), len(items))
	}
	out := make([]store.Ref, len(idx))
	for i, x := range idx {
		out[i].Index = x
		if items != nil {
			out[i].Item = items[i]
		}
	}
	return out, nil
}

func runArgs(r *store.Run) []any {
	cq, ci := refs(r.CompQueue)
	return []any{r.ID, string(r.State), string(r.Phase), string(r.Outcome), clean(r.Error),
		r.CreatedAt, ts(r.StartedAt), ts(r.CompletedAt), ts(r.Deadline), ts(r.UpdatedAt),
		r.Generation, r.Total, r.Done, r.Running, r.Failed, r.Seq, r.Serial, ints(r.SerialQueue), cq,
		string(r.Cause), r.Parent, r.ParentIndex, r.ParentItem, r.ConcurrencyKey, r.Limit, r.Trace, ci}
}

func scanRun(row scanner) (store.Run, error) {
	var x runScan
	if err := row.Scan(x.dests()...); err != nil {
		return store.Run{}, fmt.Errorf("decoding a run: %w", err)
	}
	return x.run()
}

// runScan receives the columns of a run (runCols), for rows that hold more.
type runScan struct {
	r                                    store.Run
	state, phase, outcome, cause         string
	created                              time.Time
	started, completed, deadline, update pgtype.Timestamptz
	cq, ci                               []int
}

func (x *runScan) dests() []any {
	r := &x.r
	return []any{&r.ID, &x.state, &x.phase, &x.outcome, &r.Error, &x.created, &x.started, &x.completed, &x.deadline, &x.update,
		&r.Generation, &r.Total, &r.Done, &r.Running, &r.Failed, &r.Seq, &r.Serial, &r.SerialQueue, &x.cq,
		&x.cause, &r.Parent, &r.ParentIndex, &r.ParentItem, &r.ConcurrencyKey, &r.Limit, &r.Trace, &x.ci}
}

func (x *runScan) run() (store.Run, error) {
	r := x.r
	var err error
	if r.CompQueue, err = toRefs(x.cq, x.ci); err != nil {
		return r, fmt.Errorf("decoding run %q: %w", r.ID, err)
	}
	r.State, r.Phase, r.Outcome, r.Cause = store.RunState(x.state), store.Phase(x.phase), store.RunState(x.outcome), store.Cause(x.cause)
	r.CreatedAt, r.StartedAt, r.CompletedAt, r.Deadline, r.UpdatedAt = x.created.UTC(), tm(x.started), tm(x.completed), tm(x.deadline), tm(x.update)
	return r, nil
}

func stepArgs(s *store.Step) []any {
	return []any{s.RunID, s.Index, s.ID, string(s.State), s.Waiting, s.Attempts,
		ts(s.DueAt), ts(s.StartedAt), ts(s.CompletedAt), js(s.Result), clean(s.Error), s.Seq,
		s.Owner, s.Token, ts(s.LeaseUntil), string(s.Comp), s.CompAttempts, clean(s.CompError), ts(s.CompStartedAt), ts(s.CompEndedAt),
		s.Item, s.Interruptions, ts(s.AttemptAt), js(s.Input), s.CompInterruptions, s.Event, s.EventKey,
		s.Items, s.ItemsDone, s.ItemsFailed, s.ItemsRunning, s.ItemsNext}
}

func scanStep(row scanner) (store.Step, error) {
	var x stepScan
	if err := row.Scan(x.dests()...); err != nil {
		return store.Step{}, fmt.Errorf("decoding a step: %w", err)
	}
	return x.step(), nil
}

// stepScan receives the columns of a step (stepCols), for rows that hold
// more.
type stepScan struct {
	s                                                               store.Step
	state, comp                                                     string
	result, input                                                   []byte
	due, started, completed, lease, compStarted, compEnded, attempt pgtype.Timestamptz
}

func (x *stepScan) dests() []any {
	s := &x.s
	return []any{&s.RunID, &s.Index, &s.ID, &x.state, &s.Waiting, &s.Attempts,
		&x.due, &x.started, &x.completed, &x.result, &s.Error, &s.Seq,
		&s.Owner, &s.Token, &x.lease, &x.comp, &s.CompAttempts, &s.CompError, &x.compStarted, &x.compEnded,
		&s.Item, &s.Interruptions, &x.attempt, &x.input, &s.CompInterruptions, &s.Event, &s.EventKey,
		&s.Items, &s.ItemsDone, &s.ItemsFailed, &s.ItemsRunning, &s.ItemsNext}
}

func (x *stepScan) step() store.Step {
	s := x.s
	s.State, s.Comp, s.Result, s.Input = store.StepState(x.state), store.CompState(x.comp), raw(x.result), raw(x.input)
	s.DueAt, s.StartedAt, s.CompletedAt, s.LeaseUntil, s.AttemptAt = tm(x.due), tm(x.started), tm(x.completed), tm(x.lease), tm(x.attempt)
	s.CompStartedAt, s.CompEndedAt = tm(x.compStarted), tm(x.compEnded)
	return s
}

func attemptArgs(a *store.Attempt) ([]any, error) {
	var logs any
	if len(a.Logs) > 0 {
		b, err := json.Marshal(a.Logs)
		if err != nil {
			return nil, fmt.Errorf("postgres: encoding the logs of an attempt: %w", err)
		}
		logs = json.RawMessage(b)
	}
	return []any{a.RunID, a.Index, a.Compensation, a.Generation, a.Number, a.StepID, a.Owner,
		ts(a.StartedAt), ts(a.EndedAt), clean(a.Error), a.StatusCode, int64(a.Duration), logs, a.LogsCut,
		a.Item, a.Interrupted}, nil
}

func scanAttempt(row scanner) (store.Attempt, error) {
	var a store.Attempt
	var started, ended pgtype.Timestamptz
	var dur int64
	var logs []byte
	err := row.Scan(&a.RunID, &a.Index, &a.Compensation, &a.Generation, &a.Number, &a.StepID, &a.Owner,
		&started, &ended, &a.Error, &a.StatusCode, &dur, &logs, &a.LogsCut, &a.Item, &a.Interrupted)
	if err != nil {
		return a, fmt.Errorf("decoding an attempt: %w", err)
	}
	if len(logs) > 0 {
		if err := json.Unmarshal(logs, &a.Logs); err != nil {
			return a, fmt.Errorf("decoding the logs of an attempt: %w", err)
		}
	}
	a.StartedAt, a.EndedAt, a.Duration = tm(started), tm(ended), time.Duration(dur)
	return a, nil
}

func hookArgs(w *store.Webhook) []any {
	return []any{w.RunID, w.ID, w.URL, w.Event, js(w.Body), w.Attempts,
		ts(w.DueAt), ts(w.CreatedAt), ts(w.DeliveredAt), clean(w.LastError)}
}

func scanHook(row scanner) (store.Webhook, error) {
	var w store.Webhook
	var body []byte
	var due, created, delivered pgtype.Timestamptz
	err := row.Scan(&w.RunID, &w.ID, &w.URL, &w.Event, &body, &w.Attempts, &due, &created, &delivered, &w.LastError)
	if err != nil {
		return w, fmt.Errorf("decoding a webhook: %w", err)
	}
	w.Body, w.DueAt, w.CreatedAt, w.DeliveredAt = raw(body), tm(due), tm(created), tm(delivered)
	return w, nil
}

func eventArgs(ev *store.Event) []any {
	return []any{ev.Name, ev.Key, ev.ID, js(ev.Payload), ev.SentAt}
}

func scanEvent(row scanner) (store.Event, error) {
	var ev store.Event
	var payload []byte
	var sent time.Time
	if err := row.Scan(&ev.Name, &ev.Key, &ev.ID, &payload, &sent); err != nil {
		return ev, fmt.Errorf("decoding an event: %w", err)
	}
	ev.Payload, ev.SentAt = raw(payload), sent.UTC()
	return ev, nil
}

func scheduleArgs(s *store.Schedule) []any {
	return []any{s.ID, s.Cron, s.Timezone, js(s.Workflow), ts(s.NextAt), ts(s.LastAt), ts(s.CreatedAt)}
}

func scanSchedule(row scanner) (store.Schedule, error) {
	var s store.Schedule
	var wf []byte
	var next, last, created pgtype.Timestamptz
	if err := row.Scan(&s.ID, &s.Cron, &s.Timezone, &wf, &next, &last, &created); err != nil {
		return s, fmt.Errorf("decoding a schedule: %w", err)
	}
	s.Workflow, s.NextAt, s.LastAt, s.CreatedAt = raw(wf), tm(next), tm(last), tm(created)
	return s, nil
}

func slotsArgs(s *store.Slots) []any {
	return []any{s.Key, s.Holders, s.Queue}
}

func scanSlots(row scanner) (store.Slots, error) {
	var s store.Slots
	if err := row.Scan(&s.Key, &s.Holders, &s.Queue); err != nil {
		return s, fmt.Errorf("decoding slots: %w", err)
	}
	return s, nil
}
