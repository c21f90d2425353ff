// Customstore shows a store of your own: FileStore (store.go) keeps every
// run in one JSON file, passes the conformance suite in store/storetest
// (see store_test.go), and runs a workflow like any other store.
//
//	go run ./examples/customstore
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/dagflow/dagflow"
)

func main() {
	if err := run(context.Background(), os.Stdout, ""); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, w io.Writer, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "dagflow-customstore")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	path := filepath.Join(dir, "runs.json")
	s, err := OpenFileStore(path)
	if err != nil {
		return err
	}
	defer s.Close()
	eng, err := dagflow.Open(dagflow.WithStore(s))
	if err != nil {
		return err
	}
	defer eng.Close()
	eng.Handle("greet", func(ctx context.Context, in dagflow.Input) (any, error) {
		return "hello from " + in.StepID, nil
	})
	wf := dagflow.Workflow{ID: "greetings", Steps: []dagflow.Step{
		{ID: "first", Handler: "greet"},
		{ID: "second", Handler: "greet", DependsOn: []string{"first"}},
	}}
	if _, err := eng.Create(ctx, wf); err != nil {
		return err
	}
	st, err := eng.Wait(ctx, wf.ID)
	if err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "run %s: %s; second said %s; the store file has %s\n", st.ID, st.State, st.Results["second"],
		map[bool]string{true: "data", false: "nothing"}[fi.Size() > 0])
	return nil
}
