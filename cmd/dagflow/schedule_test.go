package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
)

func TestSchedule(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	// The workflow file of 'dagflow run', id and all; and one without an id.
	withID := writeFile(t, dir, "report.json", orderChain("report", "https://jobs.example", nil))
	noID := writeFile(t, dir, "noid.json", `{"steps": [{"id": "a", "url": "/jobs/a"}]}`)

	r := dagflowCmd(t, "schedule", "add", "--db", db, "--timezone", "Europe/Paris", "nightly", "0 2 * * *", withID)
	r.want(t, 0)
	if r.stderr != "" {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	var s dagflow.ScheduleInfo
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("schedule add printed %v:\n%s", err, r.stdout)
	}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	if next := s.Next.In(paris); s.ID != "nightly" || s.Cron != "0 2 * * *" || s.Timezone != "Europe/Paris" ||
		next.Hour() != 2 || next.Minute() != 0 || !s.Next.After(time.Now()) || s.Next.After(time.Now().Add(25*time.Hour)) {
		t.Errorf("schedule add printed %+v (next %v in Paris)", s, s.Next.In(paris))
	}

	dagflowCmd(t, "schedule", "add", "--db", db, "--base-url", "https://jobs.example", "hourly", "@hourly", noID).want(t, 0)
	r = dagflowCmd(t, "schedule", "list", "--db", db)
	r.want(t, 0)
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(rows) != 3 || strings.Join(strings.Fields(rows[0]), " ") != "ID CRON TIMEZONE NEXT LAST" ||
		!strings.HasPrefix(rows[1], "hourly ") || !strings.Contains(rows[1], " UTC ") ||
		!strings.HasPrefix(rows[2], "nightly ") || !strings.Contains(rows[2], "0 2 * * *") || !strings.Contains(rows[2], "Europe/Paris") {
		t.Errorf("schedule list:\n%s", r.stdout)
	}
	r = dagflowCmd(t, "schedule", "list", "--db", db, "--json")
	r.want(t, 0)
	var ids []string
	for dec := json.NewDecoder(strings.NewReader(r.stdout)); dec.More(); {
		var s dagflow.ScheduleInfo
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("schedule list --json: %v\n%s", err, r.stdout)
		}
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "hourly,nightly" {
		t.Errorf("schedule list --json: %q", ids)
	}

	// Adding it again replaces it.
	r = dagflowCmd(t, "schedule", "add", "--db", db, "nightly", "30 3 * * *", withID)
	r.want(t, 0, `replaced the schedule "nightly" (0 2 * * * Europe/Paris)`)
	s = dagflow.ScheduleInfo{}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.Cron != "30 3 * * *" || s.Timezone != "" ||
		s.Next.Hour() != 3 || s.Next.Minute() != 30 {
		t.Errorf("schedule add again printed %v %+v", err, s)
	}

	// Nothing ran, no run was made: schedule only changes the schedules.
	if got := listIDs(t, db); len(got) != 0 {
		t.Errorf("runs %q", got)
	}

	dagflowCmd(t, "schedule", "remove", "--db", db, "nightly").want(t, 0)
	dagflowCmd(t, "schedule", "remove", "--db", db, "nightly").want(t, 2, `no schedule with id "nightly"`)
	r = dagflowCmd(t, "schedule", "list", "--db", db, "--json")
	r.want(t, 0)
	if !strings.Contains(r.stdout, `"id":"hourly"`) || strings.Contains(r.stdout, "nightly") {
		t.Errorf("after remove:\n%s", r.stdout)
	}
}

func TestScheduleBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	valid := writeFile(t, dir, "valid.json", orderChain("v", "https://jobs.example", nil))
	relative := writeFile(t, dir, "relative.json", orderChain("v", "", nil))
	handlers := writeFile(t, dir, "handlers.json", `{"steps": [{"id": "a", "handler": "charge"}]}`)
	invalid := writeFile(t, dir, "invalid.json", `{"steps": [{"id": "a", "url": "https://x/a", "dependsOn": ["b"]}]}`)
	for _, tc := range []struct {
		name string
		args []string
		msgs []string
	}{
		{"no subcommand", []string{"schedule"}, []string{"schedule: missing subcommand"}},
		{"unknown subcommand", []string{"schedule", "walk"}, []string{`schedule: unknown subcommand "walk"`}},
		{"missing arguments", []string{"schedule", "add", "--db", db, "x", "* * * * *"}, []string{"schedule add: missing argument"}},
		{"bad cron", []string{"schedule", "add", "--db", db, "x", "every day", valid}, []string{`schedule add: CRON: "every day" is not a cron expression`}},
		{"six fields", []string{"schedule", "add", "--db", db, "x", "0 0 2 * * *", valid}, []string{"schedule add: CRON: "}},
		{"bad time zone", []string{"schedule", "add", "--db", db, "--timezone", "Mars/Olympus", "x", "@daily", valid},
			[]string{`schedule add: --timezone "Mars/Olympus": unknown time zone "Mars/Olympus"`}},
		{"bad id", []string{"schedule", "add", "--db", db, "a/b", "@daily", valid}, []string{"schedule add: ID: "}},
		{"relative URLs", []string{"schedule", "add", "--db", db, "x", "@daily", relative},
			[]string{`relative.json: steps[0].url: "/jobs/validate-order" is relative`, "--base-url"}},
		{"handlers", []string{"schedule", "add", "--db", db, "x", "@daily", handlers},
			[]string{`handlers.json: steps[0].handler: no handler named "charge"`, `the command line runs "url" steps`}},
		{"invalid file", []string{"schedule", "add", "--db", db, "x", "@daily", invalid}, []string{`invalid.json: steps[0].dependsOn[0]: unknown step "b"`}},
		{"no file", []string{"schedule", "add", "--db", db, "x", "@daily", filepath.Join(dir, "none.json")}, []string{"none.json: no such file"}},
		{"list no db", []string{"schedule", "list", "--db", filepath.Join(dir, "none.db")}, []string{"none.db: no such database"}},
		{"remove no db", []string{"schedule", "remove", "--db", filepath.Join(dir, "none.db"), "x"}, []string{"none.db: no such database"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dagflowCmd(t, tc.args...)
			r.want(t, 2, tc.msgs...)
			if r.stdout != "" {
				t.Errorf("stdout:\n%s", r.stdout)
			}
		})
	}
	// Bad input leaves no database behind.
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("schedule add on bad input made the database: %v", err)
	}
}
