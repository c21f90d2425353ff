package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dagflow/dagflow"
)

const validateHelp = `Usage: dagflow validate [--allow-handlers] FILE.json

Validate reads a workflow file ("-" reads stdin) and reports every problem in
it at once, each on its own line on stderr with its place in the file, such as
  order.json: steps[1].dependsOn[0]: unknown step "validate-ordr" (did you mean "validate-order"?)
JSON syntax errors, wrong types and unknown fields come with a line and column.
It prints "ok" on stdout when the file is valid.

The file is checked as 'dagflow run' would take it: steps with a "handler" (a Go
function registered by a program embedding dagflow) cannot run from the command
line and are reported, unless --allow-handlers is given. Relative URLs are
accepted: 'dagflow run' needs --base-url for them.

Exit status: 0 valid, 2 invalid or unreadable.
`

func (c *cli) cmdValidate(ctx context.Context, args []string) error {
	fs := c.newFlagSet("validate", validateHelp)
	allow := fs.Bool("allow-handlers", false, "accept steps with a Go \"handler\" (for files a Go program runs)")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	wf, err := c.readWorkflow(name)
	if err != nil {
		return err
	}
	if !*allow {
		if ps := handlerSteps(&wf, ""); len(ps) > 0 {
			return problemsError(displayName(name), &dagflow.ValidationError{WorkflowID: wf.ID, Problems: ps})
		}
	}
	fmt.Fprintln(c.stdout, "ok")
	return nil
}

// handlerSteps returns a problem for each Go handler step of wf and of its
// sub-workflows; at is the place of wf in the file.
func handlerSteps(wf *dagflow.Workflow, at string) []dagflow.Problem {
	var ps []dagflow.Problem
	for i, s := range wf.Steps {
		step := fmt.Sprintf("%ssteps[%d]", at, i)
		if s.Handler != "" {
			ps = append(ps, dagflow.Problem{Path: step + ".handler",
				Message: fmt.Sprintf("no handler named %q is registered (the command line runs only \"url\" steps)", s.Handler)})
		}
		if s.Workflow != nil {
			ps = append(ps, handlerSteps(s.Workflow, step+".workflow.")...)
		}
	}
	return ps
}

// displayName is how messages name a workflow file.
func displayName(name string) string {
	if name == "-" {
		return "<stdin>"
	}
	return name
}

// readWorkflow reads and parses a workflow file; "-" is stdin. Every error
// is bad input naming the file.
func (c *cli) readWorkflow(name string) (dagflow.Workflow, error) {
	wf, ve, err := c.loadWorkflow(name)
	if err == nil && ve != nil {
		err = problemsError(displayName(name), ve)
	}
	return wf, err
}

// loadWorkflow reads and parses a workflow file: ve holds the problems of
// a file that could be read, err says why one could not.
func (c *cli) loadWorkflow(name string) (wf dagflow.Workflow, ve *dagflow.ValidationError, err error) {
	var data []byte
	if name == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	shown := displayName(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dagflow.Workflow{}, nil, inputError("%s: no such file", shown)
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return dagflow.Workflow{}, nil, inputError("%s: %v", shown, err)
	}
	wf, err = dagflow.ParseWorkflow(data)
	if err != nil && !errors.As(err, &ve) {
		return wf, nil, problemsError(shown, err)
	}
	return wf, ve, nil
}

// problemsError turns a workflow's problems into bad input: one line per
// problem, each naming the file, with hints for the command line.
func problemsError(file string, err error) error {
	var ve *dagflow.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) == 0 {
		return inputError("%s: %v", file, err)
	}
	var b strings.Builder
	handlers, relative := false, false
	for i, p := range ve.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		// The library's hints name Go calls; the notes below say what to
		// do on the command line instead.
		p.Message = strings.NewReplacer(" (set one with WithHTTP)", "", " (register it with Engine.Handle)", "").Replace(p.Message)
		fmt.Fprintf(&b, "%s: %s", file, p)
		handlers = handlers || strings.Contains(p.Message, "no handler named")
		relative = relative || strings.Contains(p.Message, "no base URL")
	}
	if handlers {
		fmt.Fprintf(&b, "\n%s: note: a \"handler\" step runs a Go function that only a program embedding dagflow can register; the command line runs \"url\" steps", file)
	}
	if relative {
		fmt.Fprintf(&b, "\n%s: note: give relative URLs a base with --base-url or DAGFLOW_BASE_URL", file)
	}
	return inputError("%s", b.String())
}
