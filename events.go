package dagflow

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// Event is something that happened outside the runs, which steps with a
// waitForEvent wait for: every step waiting for its Name whose key path
// resolves to Key receives it, and completes with its Payload as result.
type Event struct {
	// Name is the event's name, as the steps' waitForEvent.name says it.
	Name string `json:"name"`
	// Key is matched against the value at each waiting step's
	// waitForEvent.key path: a JSON string's text, or any other value's
	// JSON (the number 42 matches "42").
	Key string `json:"key"`
	// Payload is a JSON value (null when empty), the waiting steps' result.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// SendEvent delivers an event to every step waiting for its name and key,
// and keeps it (WithEventRetention) so that a step that starts waiting for it
// later, in a run created before it was sent, receives it too. It returns
// once the event and the steps it completed are in the store. On a shared
// store, steps waiting in runs of other engines receive it too. A bad event
// (no name, a payload that is not JSON or is over WithMaxPayload) gets a
// *ValidationError.
func (e *Engine) SendEvent(ctx context.Context, ev Event) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if err := e.checkEvent(&ev); err != nil {
		return err
	}
	var id [8]byte
	rand.Read(id[:])
	rec := store.Event{Name: ev.Name, Key: ev.Key, ID: hex.EncodeToString(id[:]), Payload: ev.Payload, SentAt: e.now()}
	err := e.update(ctx, func(_ store.Tx, x *flow.Txn) error { return x.Deliver(rec) })
	if err != nil {
		return fmt.Errorf("dagflow: SendEvent %q: %w", ev.Name, err)
	}
	return nil
}

// checkEvent checks an event, and compacts its payload.
func (e *Engine) checkEvent(ev *Event) error {
	var ps []Problem
	if strings.TrimSpace(ev.Name) == "" {
		ps = append(ps, Problem{"name", "is required"})
	} else if msg := checkID(ev.Name, true); msg != "" {
		ps = append(ps, Problem{"name", msg})
	}
	if len(ev.Key) > maxIDLen*4 {
		ps = append(ps, Problem{"key", fmt.Sprintf("is %d bytes long; the limit is %d", len(ev.Key), maxIDLen*4)})
	}
	p := bytes.TrimSpace(ev.Payload)
	switch {
	case len(p) == 0:
		ev.Payload = json.RawMessage("null")
	case !json.Valid(p):
		ps = append(ps, Problem{"payload", "is not valid JSON"})
	case len(p) > e.cfg.maxPayload:
		ps = append(ps, Problem{"payload", fmt.Sprintf("is %d bytes; the limit is %d (WithMaxPayload)", len(p), e.cfg.maxPayload)})
	default:
		ev.Payload = compactJSON(p)
	}
	if len(ps) > 0 {
		return &ValidationError{Of: "event", Problems: ps}
	}
	return nil
}
