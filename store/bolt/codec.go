package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dagflow/dagflow/store"
)

// Records are kept in a compact binary form: the commit goroutine encodes
// and decodes several records for every step, and encoding/json cost most of
// its time. A record starts with a format byte; records written as JSON by
// earlier versions (first byte '{') are still read.
const (
	fmtRun     = 1
	fmtStep    = 2
	fmtAttempt = 3
	fmtWebhook = 4
)

type enc struct{ b []byte }

func (e *enc) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *enc) str(s string) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// raw writes a byte slice, keeping nil apart from empty.
func (e *enc) raw(b []byte) {
	if b == nil {
		e.uint(0)
		return
	}
	e.uint(uint64(len(b)) + 1)
	e.b = append(e.b, b...)
}

// time writes the zero time as a single 0 byte, others as 1 and their Unix
// nanoseconds.
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.int(t.UnixNano())
}

func (e *enc) ints(v []int) {
	if v == nil {
		e.uint(0)
		return
	}
	e.uint(uint64(len(v)) + 1)
	for _, x := range v {
		e.int(int64(x))
	}
}

var errCorrupt = errors.New("bolt: a record is truncated or corrupt")

type dec struct {
	b   []byte
	err error
}

func (d *dec) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *dec) bool() bool {
	if len(d.b) == 0 {
		d.fail()
		return false
	}
	v := d.b[0] != 0
	d.b = d.b[1:]
	return v
}

func (d *dec) take(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.take(d.uint())) }

// skipStr passes over a string.
func (d *dec) skipStr() { d.take(d.uint()) }

// raw returns a copy: bbolt's memory is only valid during its transaction.
func (d *dec) raw() []byte {
	n := d.uint()
	if n == 0 {
		return nil
	}
	return append([]byte{}, d.take(n-1)...)
}

func (d *dec) time() time.Time {
	if !d.bool() {
		return time.Time{}
	}
	return time.Unix(0, d.int()).UTC()
}

func (d *dec) ints() []int {
	n := d.uint()
	if n == 0 {
		return nil
	}
	if n-1 > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := make([]int, n-1)
	for i := range v {
		v[i] = int(d.int())
	}
	return v
}

// more reports whether the record has bytes left: fields added by later
// versions come at the end of a record, and a record written before them
// has none.
func (d *dec) more() bool { return d.err == nil && len(d.b) > 0 }

func encodeRun(r *store.Run) []byte {
	e := enc{b: make([]byte, 0, 128+len(r.ID)+len(r.Error))}
	e.b = append(e.b, fmtRun)
	e.str(r.ID)
	e.str(string(r.State))
	e.str(string(r.Phase))
	e.str(string(r.Outcome))
	e.str(r.Error)
	e.time(r.CreatedAt)
	e.time(r.StartedAt)
	e.time(r.CompletedAt)
	e.time(r.Deadline)
	e.time(r.UpdatedAt)
	e.int(int64(r.Generation))
	e.int(int64(r.Total))
	e.int(int64(r.Done))
	e.int(int64(r.Running))
	e.int(int64(r.Failed))
	e.int(r.Seq)
	e.int(int64(r.Serial))
	e.ints(r.SerialQueue)
	idx, items := make([]int, len(r.CompQueue)), make([]int, len(r.CompQueue))
	for i, ref := range r.CompQueue {
		idx[i], items[i] = ref.Index, ref.Item
	}
	if r.CompQueue == nil {
		idx, items = nil, nil
	}
	e.ints(idx)
	// Schema 3.
	e.ints(items)
	e.str(string(r.Cause))
	e.str(r.Parent)
	e.int(int64(r.ParentIndex))
	e.int(int64(r.ParentItem))
	e.str(r.ConcurrencyKey)
	e.int(int64(r.Limit))
	e.str(r.Trace)
	return e.b
}

func decodeRun(data []byte) (store.Run, error) {
	var r store.Run
	if len(data) > 0 && data[0] == '{' {
		return decodeJSON[store.Run](data)
	}
	if len(data) == 0 || data[0] != fmtRun {
		return r, fmt.Errorf("bolt: not a run record")
	}
	d := dec{b: data[1:]}
	r.ID = d.str()
	r.State = store.RunState(d.str())
	r.Phase = store.Phase(d.str())
	r.Outcome = store.RunState(d.str())
	r.Error = d.str()
	r.CreatedAt = d.time()
	r.StartedAt = d.time()
	r.CompletedAt = d.time()
	r.Deadline = d.time()
	r.UpdatedAt = d.time()
	r.Generation = int(d.int())
	r.Total = int(d.int())
	r.Done = int(d.int())
	r.Running = int(d.int())
	r.Failed = int(d.int())
	r.Seq = d.int()
	r.Serial = int(d.int())
	r.SerialQueue = d.ints()
	idx := d.ints()
	var items []int
	if d.more() {
		items = d.ints()
		r.Cause = store.Cause(d.str())
		r.Parent = d.str()
		r.ParentIndex = int(d.int())
		r.ParentItem = int(d.int())
		r.ConcurrencyKey = d.str()
		r.Limit = int(d.int())
		r.Trace = d.str()
	}
	if idx != nil {
		r.CompQueue = make([]store.Ref, len(idx))
		for i := range idx {
			r.CompQueue[i].Index = idx[i]
			if i < len(items) {
				r.CompQueue[i].Item = items[i]
			}
		}
	}
	return r, d.err
}

func encodeStep(s *store.Step) []byte {
	e := enc{b: make([]byte, 0, 96+len(s.RunID)+len(s.ID)+len(s.Result)+len(s.Error)+len(s.Owner))}
	e.b = append(e.b, fmtStep)
	e.str(s.RunID)
	e.int(int64(s.Index))
	e.str(s.ID)
	e.str(string(s.State))
	e.int(int64(s.Waiting))
	e.int(int64(s.Attempts))
	e.time(s.DueAt)
	e.time(s.StartedAt)
	e.time(s.CompletedAt)
	e.time(s.AttemptAt)
	e.raw(s.Result)
	e.str(s.Error)
	e.int(s.Seq)
	e.str(s.Owner)
	e.int(s.Token)
	e.time(s.LeaseUntil)
	e.str(string(s.Comp))
	e.int(int64(s.CompAttempts))
	e.str(s.CompError)
	e.time(s.CompStartedAt)
	e.time(s.CompEndedAt)
	// Schema 3.
	e.int(int64(s.Item))
	e.int(int64(s.Interruptions))
	e.raw(s.Input)
	e.int(int64(s.CompInterruptions))
	e.str(s.Event)
	e.str(s.EventKey)
	e.int(int64(s.Items))
	e.int(int64(s.ItemsDone))
	e.int(int64(s.ItemsFailed))
	e.int(int64(s.ItemsRunning))
	e.int(int64(s.ItemsNext))
	return e.b
}

// decodeStepDue returns the due time of an encoded step, reading no more
// of it than it needs.
func decodeStepDue(data []byte) (time.Time, error) {
	if len(data) == 0 || data[0] != fmtStep {
		s, err := decodeStep(data)
		return s.DueAt, err
	}
	d := dec{b: data[1:]}
	d.skipStr() // RunID
	d.int()     // Index
	d.skipStr() // ID
	d.skipStr() // State
	d.int()     // Waiting
	d.int()     // Attempts
	due := d.time()
	return due, d.err
}

func decodeStep(data []byte) (store.Step, error) {
	var s store.Step
	if len(data) > 0 && data[0] == '{' {
		return decodeJSON[store.Step](data)
	}
	if len(data) == 0 || data[0] != fmtStep {
		return s, fmt.Errorf("bolt: not a step record")
	}
	d := dec{b: data[1:]}
	s.RunID = d.str()
	s.Index = int(d.int())
	s.ID = d.str()
	s.State = store.StepState(d.str())
	s.Waiting = int(d.int())
	s.Attempts = int(d.int())
	s.DueAt = d.time()
	s.StartedAt = d.time()
	s.CompletedAt = d.time()
	s.AttemptAt = d.time()
	s.Result = d.raw()
	s.Error = d.str()
	s.Seq = d.int()
	s.Owner = d.str()
	s.Token = d.int()
	s.LeaseUntil = d.time()
	s.Comp = store.CompState(d.str())
	s.CompAttempts = int(d.int())
	s.CompError = d.str()
	s.CompStartedAt = d.time()
	s.CompEndedAt = d.time()
	if d.more() {
		s.Item = int(d.int())
		s.Interruptions = int(d.int())
		s.Input = d.raw()
		s.CompInterruptions = int(d.int())
		s.Event = d.str()
		s.EventKey = d.str()
		s.Items = int(d.int())
		s.ItemsDone = int(d.int())
		s.ItemsFailed = int(d.int())
		s.ItemsRunning = int(d.int())
		s.ItemsNext = int(d.int())
	}
	return s, d.err
}

func encodeAttempt(a *store.Attempt) []byte {
	e := enc{b: make([]byte, 0, 96+len(a.RunID)+len(a.StepID)+len(a.Error))}
	e.b = append(e.b, fmtAttempt)
	e.str(a.RunID)
	e.int(int64(a.Index))
	e.str(a.StepID)
	e.bool(a.Compensation)
	e.int(int64(a.Generation))
	e.int(int64(a.Number))
	e.str(a.Owner)
	e.time(a.StartedAt)
	e.time(a.EndedAt)
	e.str(a.Error)
	e.int(int64(a.StatusCode))
	e.int(int64(a.Duration))
	e.uint(uint64(len(a.Logs)))
	for _, l := range a.Logs {
		e.time(l.Time)
		e.str(l.Level)
		e.str(l.Message)
		e.str(l.Attrs)
	}
	e.bool(a.LogsCut)
	// Schema 3.
	e.int(int64(a.Item))
	e.bool(a.Interrupted)
	return e.b
}

func decodeAttempt(data []byte) (store.Attempt, error) {
	var a store.Attempt
	if len(data) > 0 && data[0] == '{' {
		return decodeJSON[store.Attempt](data)
	}
	if len(data) == 0 || data[0] != fmtAttempt {
		return a, fmt.Errorf("bolt: not an attempt record")
	}
	d := dec{b: data[1:]}
	a.RunID = d.str()
	a.Index = int(d.int())
	a.StepID = d.str()
	a.Compensation = d.bool()
	a.Generation = int(d.int())
	a.Number = int(d.int())
	a.Owner = d.str()
	a.StartedAt = d.time()
	a.EndedAt = d.time()
	a.Error = d.str()
	a.StatusCode = int(d.int())
	a.Duration = time.Duration(d.int())
	if n := d.uint(); n > 0 && n <= uint64(len(d.b)) {
		a.Logs = make([]store.LogLine, n)
		for i := range a.Logs {
			a.Logs[i] = store.LogLine{Time: d.time(), Level: d.str(), Message: d.str(), Attrs: d.str()}
		}
	} else if n > 0 {
		d.fail()
	}
	a.LogsCut = d.bool()
	if d.more() {
		a.Item = int(d.int())
		a.Interrupted = d.bool()
	}
	return a, d.err
}

func encodeWebhook(w *store.Webhook) []byte {
	e := enc{b: make([]byte, 0, 64+len(w.RunID)+len(w.URL)+len(w.Body))}
	e.b = append(e.b, fmtWebhook)
	e.str(w.ID)
	e.str(w.RunID)
	e.str(w.URL)
	e.str(w.Event)
	e.raw(w.Body)
	e.int(int64(w.Attempts))
	e.time(w.DueAt)
	e.time(w.CreatedAt)
	e.time(w.DeliveredAt)
	e.str(w.LastError)
	return e.b
}

func decodeWebhook(data []byte) (store.Webhook, error) {
	var w store.Webhook
	if len(data) > 0 && data[0] == '{' {
		return decodeJSON[store.Webhook](data)
	}
	if len(data) == 0 || data[0] != fmtWebhook {
		return w, fmt.Errorf("bolt: not a webhook record")
	}
	d := dec{b: data[1:]}
	w.ID = d.str()
	w.RunID = d.str()
	w.URL = d.str()
	w.Event = d.str()
	w.Body = d.raw()
	w.Attempts = int(d.int())
	w.DueAt = d.time()
	w.CreatedAt = d.time()
	w.DeliveredAt = d.time()
	w.LastError = d.str()
	return w, d.err
}

// decodeJSON decodes a record written as JSON (the format before the binary
// one). It is a function of its own so that the decoders' records, which
// json.Unmarshal would make escape, stay off the heap.
func decodeJSON[T any](data []byte) (T, error) {
	var v T
	err := json.Unmarshal(data, &v)
	return v, err
}
