package postgres

import (
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Column lists, in the order the scan functions in records.go read them and
// the args functions write them.
const (
	runCols = "id, state, phase, outcome, error, created_at, started_at, completed_at, deadline, updated_at, " +
		"generation, total, done, running, failed, seq, serial, serial_queue, comp_queue, " +
		"cause, parent, parent_index, parent_item, concurrency_key, climit, trace, comp_items"
	stepCols = "run_id, idx, id, state, waiting, attempts, due_at, started_at, completed_at, result, error, seq, " +
		"owner, token, lease_until, comp, comp_attempts, comp_error, comp_started_at, comp_ended_at, " +
		"item, interruptions, attempt_at, input, comp_interruptions, event, event_key, " +
		"items, items_done, items_failed, items_running, items_next"
	attemptCols = "run_id, idx, compensation, generation, number, step_id, owner, started_at, ended_at, error, " +
		"status_code, duration, logs, logs_cut, item, interrupted"
	hookCols     = "run_id, id, url, event, body, attempts, due_at, created_at, delivered_at, last_error"
	eventCols    = "name, key, id, payload, sent_at"
	scheduleCols = "id, cron, timezone, workflow, next_at, last_at, created_at"
	slotsCols    = "key, holders, queue"
)

// Read statements come in two forms, indexed by mode: for View (a plain
// SELECT in a REPEATABLE READ snapshot) and for Update (the rows read are
// locked until the transaction ends).
const (
	modeView   = 0
	modeUpdate = 1
)

// queries holds every statement of a Store, with the schema written into
// each, built once by Open. pgx prepares each on first use on a connection
// and reuses it after (its statement cache is keyed by the SQL text).
type queries struct {
	begin [2]string
	// xid follows BEGIN in an Update: it reads the transaction's id and
	// sets the Update's lock_timeout, if it has one.
	xid string

	run, spec, step, steps, items, dueSteps, dueHooks, waiting [2]string
	attempts, stepAttempts, hooks                              [2]string
	events, schedule, schedules, slots                         [2]string
	runs                                                       [2][runsVariants]string
	nextDue                                                    string

	putRun, insertRun, putSpec, putStep, putAttempt, putHook string
	putEvent, putSchedule, putSlots, insertSlots             string
	deleteRun, deleteEvents, deleteSchedule, deleteSlots     string
	// lockRun checks that a run exists and keeps it from being deleted
	// until the transaction ends. lockRuns locks runs in the order of
	// their ids (the Sort runs below the LockRows that locks each row).
	lockRun, lockRuns string
	// lockSteps locks steps and items by key (three arrays: run ids,
	// indexes, items).
	lockSteps string
	// bulkRuns and bulkSteps write many rows at once (bulk.go).
	bulkRuns, bulkSteps string
	// tryRun reads a run and locks it if no other transaction holds it;
	// its last column says whether it did. dueStepsRuns is dueSteps[Update]
	// that also locks the steps' runs, skipping steps whose run another
	// transaction holds. (See tx.Run: a transaction waits only in order.)
	tryRun, dueStepsRuns string
	// smallSteps locks and reads the steps of run $1 if it has at most $2,
	// but those another transaction holds.
	smallSteps string
	// checkRuns and checkSteps lock the rows read from the row cache, by
	// key, in the order given, and fail with ErrCodeStale unless every one
	// of them still has the xmin given (cache.go).
	checkRuns, checkSteps string
	// runsXmin and stepsXmin read rows by key with their xmin, locking
	// nothing (resolveByRows).
	runsXmin, stepsXmin string
}

// Flags of the variants of the Runs query.
const (
	runsState = 1 << iota
	runsContains
	runsParent
	runsEnded
	runsBefore
	runsLimit

	runsVariants = runsLimit << 1
)

func newQueries(schema string, lockTimeout time.Duration) *queries {
	s := pgx.Identifier{schema}.Sanitize() + "."
	lock := [2]string{"", " FOR NO KEY UPDATE"}
	q := &queries{
		begin: [2]string{
			"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
			"BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE",
		},
		nextDue: "SELECT least((SELECT min(due_at) FROM " + s + "steps WHERE due_at IS NOT NULL), " +
			"(SELECT min(due_at) FROM " + s + "webhooks WHERE due_at IS NOT NULL))",
		putRun:      upsert(s+"runs", runCols, "id"),
		insertRun:   "INSERT INTO " + s + "runs (" + runCols + ") VALUES (" + params(runCols) + ")",
		putSpec:     upsert(s+"specs", "run_id, spec", "run_id"),
		putStep:     upsert(s+"steps", stepCols, "run_id, idx, item"),
		putAttempt:  upsert(s+"attempts", attemptCols, "run_id, idx, item, compensation, generation, number"),
		putHook:     upsert(s+"webhooks", hookCols, "run_id, id"),
		putEvent:    upsert(s+"events", eventCols, "name, key, id"),
		putSchedule: upsert(s+"schedules", scheduleCols, "id"),
		putSlots:    upsert(s+"slots", slotsCols, "key"),
		insertSlots: "INSERT INTO " + s + "slots (" + slotsCols + ") VALUES (" + params(slotsCols) + ")",
		deleteRun:   "DELETE FROM " + s + "runs WHERE id = $1",
		// The oldest events first, whatever their name; rows another
		// transaction deletes at the same time are left to it.
		deleteEvents: "DELETE FROM " + s + "events WHERE (name, key, id) IN (SELECT name, key, id FROM " + s +
			"events WHERE sent_at < $1 ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
		deleteSchedule: "DELETE FROM " + s + "schedules WHERE id = $1",
		deleteSlots:    "DELETE FROM " + s + "slots WHERE key = $1",
		lockRun:        "SELECT 1 FROM " + s + "runs WHERE id = $1 FOR KEY SHARE",
		lockRuns:       "SELECT " + runCols + " FROM " + s + "runs WHERE id = ANY ($1::text[]) ORDER BY id FOR NO KEY UPDATE",
		// One index lookup per key, whatever the plan's estimates: a
		// semi-join may scan the table instead.
		lockSteps: "SELECT s.* FROM unnest($1::text[], $2::integer[], $3::integer[]) AS k(run_id, idx, item) " +
			"CROSS JOIN LATERAL (SELECT " + stepCols + " FROM " + s + "steps WHERE run_id = k.run_id AND idx = k.idx AND item = k.item FOR NO KEY UPDATE) s",
	}
	q.tryRun = "WITH l AS (SELECT " + runCols + " FROM " + s + "runs WHERE id = $1 FOR NO KEY UPDATE SKIP LOCKED) " +
		"SELECT l.*, true FROM l UNION ALL SELECT " + runCols + ", false FROM " + s + "runs WHERE id = $1 AND NOT EXISTS (SELECT FROM l)"
	q.dueStepsRuns = "SELECT " + qualify(stepCols, "s") + ", " + qualify(runCols, "r") + " FROM " + s + "steps s JOIN " + s +
		"runs r ON r.id = s.run_id WHERE s.due_at <= $1 ORDER BY s.due_at LIMIT $2 FOR NO KEY UPDATE OF s, r SKIP LOCKED"
	q.smallSteps = "SELECT " + stepCols + " FROM " + s + "steps WHERE run_id = $1 AND item = 0 AND " +
		"(SELECT total FROM " + s + "runs WHERE id = $1) <= $2 ORDER BY idx FOR NO KEY UPDATE SKIP LOCKED"
	q.checkRuns = "SELECT " + s + "fresh(count(*) = cardinality($1::text[])) FROM unnest($1::text[], $2::bigint[]) AS k(id, x) " +
		"CROSS JOIN LATERAL (SELECT FROM " + s + "runs WHERE id = k.id AND xmin::text::bigint = k.x FOR NO KEY UPDATE) r"
	q.checkSteps = "SELECT " + s + "fresh(count(*) = cardinality($1::text[])) FROM unnest($1::text[], $2::integer[], $3::integer[], $4::bigint[]) AS k(run_id, idx, item, x) " +
		"CROSS JOIN LATERAL (SELECT FROM " + s + "steps WHERE run_id = k.run_id AND idx = k.idx AND item = k.item AND xmin::text::bigint = k.x FOR NO KEY UPDATE) s"
	q.runsXmin = "SELECT " + runCols + ", xmin::text::bigint FROM " + s + "runs WHERE id = ANY ($1::text[])"
	q.stepsXmin = "SELECT " + stepCols + ", xmin::text::bigint FROM " + s + "steps WHERE (run_id, idx, item) IN (SELECT * FROM unnest($1::text[], $2::integer[], $3::integer[]))"
	q.bulkRuns = bulkUpsert(s+"runs", runCols, types(runCols), "id")
	q.bulkSteps = bulkUpsert(s+"steps", stepCols, types(stepCols), "run_id, idx, item")
	q.xid = "SELECT txid_current()"
	if lockTimeout > 0 {
		q.xid = fmt.Sprintf("SELECT txid_current() FROM set_config('lock_timeout', '%d', true)", max(lockTimeout.Milliseconds(), 1))
	}
	for m := range 2 {
		l := lock[m]
		q.run[m] = "SELECT " + runCols + " FROM " + s + "runs WHERE id = $1" + l
		q.spec[m] = "SELECT spec FROM " + s + "specs WHERE run_id = $1" + l
		q.step[m] = "SELECT " + stepCols + " FROM " + s + "steps WHERE run_id = $1 AND idx = $2 AND item = $3" + l
		q.steps[m] = "SELECT " + stepCols + " FROM " + s + "steps WHERE run_id = $1 AND item = 0 ORDER BY idx" + l
		q.items[m] = "SELECT " + stepCols + " FROM " + s + "steps WHERE run_id = $1 AND idx = $2 AND item > 0 ORDER BY item" + l
		// The partial index of waiting steps serves "state = 'waiting'
		// AND event <> ''" (event = $1 does not imply event <> '' to the
		// planner).
		q.waiting[m] = "SELECT " + stepCols + " FROM " + s + "steps WHERE state = 'waiting' AND event <> '' AND event = $1 AND event_key = $2" + l
		q.attempts[m] = "SELECT " + attemptCols + " FROM " + s + "attempts WHERE run_id = $1 ORDER BY idx, item, compensation, generation, number" + l
		q.stepAttempts[m] = "SELECT " + attemptCols + " FROM " + s + "attempts WHERE run_id = $1 AND idx = $2 ORDER BY item, compensation, generation, number" + l
		q.hooks[m] = "SELECT " + hookCols + " FROM " + s + "webhooks WHERE run_id = $1 ORDER BY id" + l
		q.events[m] = "SELECT " + eventCols + " FROM " + s + "events WHERE name = $1 AND key = $2 AND sent_at >= $3 ORDER BY sent_at, id" + l
		q.schedule[m] = "SELECT " + scheduleCols + " FROM " + s + "schedules WHERE id = $1" + l
		q.schedules[m] = "SELECT " + scheduleCols + " FROM " + s + "schedules ORDER BY id" + l
		q.slots[m] = "SELECT " + slotsCols + " FROM " + s + "slots WHERE key = $1" + l
		for f := range runsVariants {
			q.runs[m][f] = runsQuery(s, f) + l
		}
	}
	// Claims skip steps that other transactions hold, so that engines
	// claiming at once get different steps and do not wait for each other.
	// "due_at <= $1" implies "due_at IS NOT NULL": the partial index serves.
	q.dueSteps = [2]string{
		"SELECT " + stepCols + " FROM " + s + "steps WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
		"SELECT " + stepCols + " FROM " + s + "steps WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED",
	}
	q.dueHooks = [2]string{
		"SELECT " + hookCols + " FROM " + s + "webhooks WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
		"SELECT " + hookCols + " FROM " + s + "webhooks WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED",
	}
	return q
}

// runsQuery builds the variant of the Runs query with the filters in flags.
// Each variant is a statement of its own, so that its prepared plan fits it.
func runsQuery(s string, flags int) string {
	var where []string
	n := 0
	arg := func() string { n++; return fmt.Sprintf("$%d", n) }
	if flags&runsState != 0 {
		where = append(where, "state = "+arg())
	}
	if flags&runsContains != 0 {
		where = append(where, "strpos(id, "+arg()+") > 0")
	}
	if flags&runsParent != 0 {
		// "parent <> ''" lets the planner use the partial index.
		where = append(where, "parent <> '' AND parent = "+arg())
	}
	if flags&runsEnded != 0 {
		where = append(where, "state IN ('completed', 'failed', 'cancelled') AND completed_at < "+arg())
	}
	if flags&runsBefore != 0 {
		a, b := arg(), arg()
		where = append(where, "(created_at, id) < ("+a+", "+b+")")
	}
	sql := "SELECT " + runCols + " FROM " + s + "runs"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY created_at DESC, id DESC"
	if flags&runsLimit != 0 {
		sql += " LIMIT " + arg()
	}
	return sql
}

// upsert returns an INSERT of cols into table that replaces the row with the
// same key.
func upsert(table, cols, key string) string {
	keys := map[string]bool{}
	for _, k := range strings.Split(key, ",") {
		keys[strings.TrimSpace(k)] = true
	}
	var set []string
	for _, c := range strings.Split(cols, ",") {
		c = strings.TrimSpace(c)
		if !keys[c] {
			set = append(set, c+" = EXCLUDED."+c)
		}
	}
	return "INSERT INTO " + table + " (" + cols + ") VALUES (" + params(cols) + ") ON CONFLICT (" + key + ") DO UPDATE SET " + strings.Join(set, ", ")
}

// qualify prefixes each column of cols with table.
func qualify(cols, table string) string {
	var out []string
	for _, c := range strings.Split(cols, ",") {
		out = append(out, table+"."+strings.TrimSpace(c))
	}
	return strings.Join(out, ", ")
}

// params returns "$1, $2, ..." with one parameter per column of cols.
func params(cols string) string {
	n := strings.Count(cols, ",") + 1
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", i)
	}
	return b.String()
}
