package postgres

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bulk writes. When an Update sends its queued writes, the runs and the
// steps it writes whole go in one statement each, INSERT ... SELECT FROM
// unnest(arrays) ON CONFLICT DO UPDATE, rather than one statement per row:
// PostgreSQL plans and starts one statement where it would start dozens. (A
// group of workers' outcomes writes two step rows per step.) The runs' go
// first, the other queued writes next, in their order, and the steps' last,
// so that a row's run exists before it.
//
// When PostgreSQL refuses a bulk statement for a reason other than the ones
// worth a retry, nobody can tell which function's row it was; the group
// then runs again with a statement per row (tx.noBulk), to blame that one.

// colTypes gives the type of each column that bulk statements write: 't'
// text (NOT NULL), 'i' integer or bigint, 'z' timestamptz (NULL when zero),
// 'Z' timestamptz NOT NULL, 'j' json, 'a' integer[]. json and integer[]
// travel as text, ” for NULL (which neither can be), and are cast, so that
// arrays of them do not nest. Each column is an array of a type pgx encodes
// without reflection ([]string, []int64, []time.Time).
var colTypes = map[string]byte{
	// runs
	"id": 't', "state": 't', "phase": 't', "outcome": 't', "error": 't', "created_at": 'Z', "started_at": 'z',
	"completed_at": 'z', "deadline": 'z', "updated_at": 'z', "generation": 'i', "total": 'i', "done": 'i',
	"running": 'i', "failed": 'i', "seq": 'i', "serial": 'i', "serial_queue": 'a', "comp_queue": 'a', "cause": 't',
	"parent": 't', "parent_index": 'i', "parent_item": 'i', "concurrency_key": 't', "climit": 'i', "trace": 't',
	"comp_items": 'a',
	// steps
	"run_id": 't', "idx": 'i', "waiting": 'i', "attempts": 'i', "due_at": 'z', "result": 'j', "owner": 't',
	"token": 'i', "lease_until": 'z', "comp": 't', "comp_attempts": 'i', "comp_error": 't', "comp_started_at": 'z',
	"comp_ended_at": 'z', "item": 'i', "interruptions": 'i', "attempt_at": 'z', "input": 'j',
	"comp_interruptions": 'i', "event": 't', "event_key": 't', "items": 'i', "items_done": 'i', "items_failed": 'i',
	"items_running": 'i', "items_next": 'i',
}

// types returns the types of the columns of cols, as colTypes gives them.
func types(cols string) string {
	var b strings.Builder
	for _, c := range strings.Split(cols, ",") {
		typ, ok := colTypes[strings.TrimSpace(c)]
		if !ok {
			panic("postgres: no bulk type for column " + c)
		}
		b.WriteByte(typ)
	}
	return b.String()
}

var (
	stepTypes = types(stepCols)
	runTypes  = types(runCols)
)

// bulkUpsert returns the statement that upserts the rows of arrays of the
// columns of cols, typed as types says, keyed by key.
func bulkUpsert(table, cols, types, key string) string {
	names := strings.Split(cols, ",")
	var params, sel []string
	for i, c := range names {
		c = strings.TrimSpace(c)
		names[i] = c
		typ := map[byte]string{'t': "text", 'i': "bigint", 'z': "timestamptz", 'Z': "timestamptz", 'j': "text", 'a': "text"}[types[i]]
		params = append(params, fmt.Sprintf("$%d::%s[]", i+1, typ))
		switch types[i] {
		case 'j':
			sel = append(sel, "nullif(u."+c+", '')::json")
		case 'a':
			sel = append(sel, "nullif(u."+c+", '')::integer[]")
		case 'z':
			sel = append(sel, "nullif(u."+c+", '0001-01-01 00:00:00+00')")
		default:
			sel = append(sel, "u."+c)
		}
	}
	keys := map[string]bool{}
	for _, k := range strings.Split(key, ",") {
		keys[strings.TrimSpace(k)] = true
	}
	var set []string
	for _, c := range names {
		if !keys[c] {
			set = append(set, c+" = EXCLUDED."+c)
		}
	}
	return "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ") SELECT " + strings.Join(sel, ", ") +
		" FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(names, ", ") + ")" +
		" ON CONFLICT (" + key + ") DO UPDATE SET " + strings.Join(set, ", ")
}

// columns collects the values of rows as one array per column.
type columns struct {
	types string
	cols  []any // []string, []int64 or []time.Time
	row   int
}

func newColumns(types string, n int) *columns {
	c := &columns{types: types, cols: make([]any, len(types))}
	for i := range types {
		switch types[i] {
		case 'i':
			c.cols[i] = make([]int64, n)
		case 'z', 'Z':
			c.cols[i] = make([]time.Time, n)
		default:
			c.cols[i] = make([]string, n)
		}
	}
	return c
}

// add appends a row; values holds, for each column, a string, an int or
// int64, a time.Time, a json.RawMessage, an []int, or nil (NULL), as the
// args functions make them.
func (c *columns) add(values []any) {
	for i, v := range values {
		switch c.types[i] {
		case 'i':
			var n int64
			switch v := v.(type) {
			case int:
				n = int64(v)
			case int64:
				n = v
			}
			c.cols[i].([]int64)[c.row] = n
		case 'z', 'Z':
			if t, ok := v.(time.Time); ok {
				c.cols[i].([]time.Time)[c.row] = t
			}
		default:
			var s string
			switch v := v.(type) {
			case string:
				s = v
			case json.RawMessage:
				s = string(v)
			case []int:
				s = intArray(v)
			}
			c.cols[i].([]string)[c.row] = s
		}
	}
	c.row++
}

// intArray is the text of an integer[].
func intArray(v []int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(n))
	}
	b.WriteByte('}')
	return b.String()
}

// bulk rewrites queue for sending: the runs and steps written whole go in one
// statement each (when there are two or more), runs first and steps last; a
// bulk statement's owner is bulkOwner.
func (t *tx) bulk(queue []queued) []queued {
	nr, ns := 0, 0
	for i := range queue {
		switch queue[i].sql {
		case t.s.q.putRun:
			nr++
		case t.s.q.putStep:
			ns++
		}
	}
	if t.noBulk || nr < minBulk && ns < minBulk {
		return queue
	}
	out := make([]queued, 0, len(queue))
	var runs, steps *columns
	if nr >= minBulk {
		runs = newColumns(runTypes, nr)
		out = append(out, queued{}) // the runs' statement goes here
	}
	if ns >= minBulk {
		steps = newColumns(stepTypes, ns)
	}
	for _, w := range queue {
		switch {
		case runs != nil && w.sql == t.s.q.putRun:
			runs.add(w.args)
		case steps != nil && w.sql == t.s.q.putStep:
			steps.add(w.args)
		default:
			out = append(out, w)
		}
	}
	if runs != nil {
		out[0] = queued{sql: t.s.q.bulkRuns, args: runs.cols, what: fmt.Sprintf("writing %d runs", nr), owner: bulkOwner}
	}
	if steps != nil {
		out = append(out, queued{sql: t.s.q.bulkSteps, args: steps.cols, what: fmt.Sprintf("writing %d steps and items", ns), owner: bulkOwner})
	}
	return out
}

// bulkOwner is the owner of a bulk statement, which holds rows of several
// functions.
const bulkOwner = -2

// minBulk is the fewest rows of a table that go in a bulk statement: below
// it, a statement per row costs the server less than decoding an array per
// column (a chain step writes two steps: 727 to 674 µs/step).
const minBulk = 3
