package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store"
)

const sendEventHelp = `Usage: dagflow send-event [--db FILE | --url URL] NAME KEY [PAYLOAD.json]

Send-event sends an event to the runs in the database: every step waiting for
an event named NAME ("waitForEvent": {"name": NAME, "key": "context.orderId"})
whose key path has the value KEY (the text of a string, the JSON of any other
value: KEY 42 matches the number 42) receives it, and completes with the
payload as its result. PAYLOAD.json is a file holding any JSON value ("-" reads
stdin); without it the payload is null.

The event is kept in the database for 7 days, so that a step that starts
waiting for it later, in a run created before it was sent, receives it too.

It prints on stdout, as indented JSON, the event's name and key and the steps
that received it now ("received": [{"run": ID, "step": ID}], with "item" for
an item of a map step). The runs go on when a command next opens the database
and resumes them: 'dagflow resume'. Send-event itself runs nothing.

The database must not be in use by another process. 'dagflow run', retry and
resume do not hold it waiting for an event: when a run can only go on with one,
they print its status, say on stderr what it waits for, and exit 1. Another
command that holds the database can be interrupted (Ctrl-C leaves its runs
unfinished in the database, for 'dagflow resume').

With --url, the event goes to a running 'dagflow serve' at URL (POST
URL/v1/events, with the bearer token of DAGFLOW_API_TOKEN when it is set)
instead of a database: the steps it completes go on at once, in serve. It
prints the event's name and key as serve accepted them.

Exit status: 0 sent (also when no step waits for it yet), 2 a bad name,
key or payload, or no such database, 3 the database is in use or cannot be
opened, or serve could not be reached or refused the event for another reason.
`

// received names a step (or map item) that an event completed.
type received struct {
	Run  string `json:"run"`
	Step string `json:"step"`
	Item *int   `json:"item,omitempty"`
}

func (c *cli) cmdSendEvent(ctx context.Context, args []string) error {
	fs := c.newFlagSet("send-event", sendEventHelp)
	var f dbFlags
	f.register(c, fs)
	url := fs.String("url", "", "send the event to the 'dagflow serve' at this URL, not to a database")
	pos, err := c.parse(fs, args, 2, 3)
	if err != nil {
		return err
	}
	ev := dagflow.Event{Name: pos[0], Key: pos[1]}
	if strings.TrimSpace(ev.Name) == "" {
		return inputError("send-event: the event's NAME is empty")
	}
	if len(pos) == 3 {
		if ev.Payload, err = readPayload(pos[2]); err != nil {
			return err
		}
	}
	if *url != "" {
		return c.sendEventTo(ctx, *url, ev)
	}
	eng, err := c.open(&f, openQuiet)
	if err != nil {
		return err
	}
	defer c.close(eng)
	// The steps waiting for it now: nothing else changes the file while
	// this command holds it, and its engine runs nothing.
	var waiting []store.Step
	err = eng.store.View(ctx, func(tx store.Tx) error {
		var err error
		waiting, err = tx.Waiting(ev.Name, ev.Key)
		return err
	})
	if err != nil {
		return opError("%s: reading the waiting steps: %v", f.db, err)
	}
	if err := eng.SendEvent(ctx, ev); err != nil {
		if ve, ok := errors.AsType[*dagflow.ValidationError](err); ok {
			return inputError("send-event: %s", strings.TrimPrefix(ve.Error(), "invalid event: "))
		}
		return opError("%s: sending the event: %v", f.db, err)
	}
	out := struct {
		Name     string     `json:"name"`
		Key      string     `json:"key"`
		Received []received `json:"received"`
	}{Name: ev.Name, Key: ev.Key, Received: []received{}}
	for _, st := range waiting {
		r := received{Run: st.RunID, Step: st.ID}
		if st.Item > 0 {
			i := st.Item - 1
			r.Item = &i
		}
		out.Received = append(out.Received, r)
	}
	if err := c.printJSON(out); err != nil {
		return err
	}
	if len(waiting) == 0 {
		_, keep := eng.Retention()
		c.note(f.db, "no step waits for event %q with key %q now; it is kept for %s for the steps of runs created before now that start waiting for it later", ev.Name, ev.Key, days(keep))
	} else {
		c.note(f.db, "the runs go on when a command next opens the database: 'dagflow resume%s'", dbArg(f.db))
	}
	return nil
}

// sendEventTo sends ev to the /v1 API of a dagflow serve at base.
func (c *cli) sendEventTo(ctx context.Context, base string, ev dagflow.Event) error {
	body, err := json.Marshal(struct {
		Name    string          `json:"name"`
		Key     string          `json:"key"`
		Payload json.RawMessage `json:"payload,omitempty"`
	}{ev.Name, ev.Key, ev.Payload})
	if err != nil {
		return inputError("send-event: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return inputError("send-event: --url %q: %v", base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok := os.Getenv("DAGFLOW_API_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return opError("send-event: %v", err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return opError("send-event: reading serve's answer: %v", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(reply))
		if json.Unmarshal(reply, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusBadRequest {
			return inputError("send-event: %s", strings.TrimPrefix(msg, "invalid event: "))
		}
		return opError("send-event: %s answered %s: %s", base, resp.Status, msg)
	}
	var out any
	if err := json.Unmarshal(reply, &out); err != nil {
		return opError("send-event: serve's answer is not JSON: %v", err)
	}
	return c.printJSON(out)
}

// readPayload reads an event's payload file ("-" is stdin): a JSON value.
func readPayload(name string) (json.RawMessage, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	shown := displayName(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, inputError("%s: no such file", shown)
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, inputError("%s: %v", shown, err)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, inputError("%s: empty: give a JSON value (null, {}, ...) or leave the file out for null", shown)
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return nil, inputError("%s: not valid JSON: %v", shown, err)
	}
	if len(data) > dagflow.DefaultMaxPayload {
		return nil, inputError("%s: %d bytes; the limit is %d", shown, len(data), dagflow.DefaultMaxPayload)
	}
	return data, nil
}

// days writes a duration in days when it is a whole number of them.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%d %s", d/day, plural(int(d/day), "day", "days"))
	}
	return d.String()
}

// dbArg is the --db flag that names db in a command to suggest, or "" for
// the default file.
func dbArg(db string) string {
	if db == defaultDB {
		return ""
	}
	return " --db " + db
}
