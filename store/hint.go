package store

import "context"

type hintKey struct{}

type hint struct {
	run   string
	steps []int
}

// ForRun returns a copy of ctx that tells Update which run its transaction
// is about and, optionally, which of that run's steps (item 0 of each) it
// will read. It is a hint, not a limit: the transaction may read and write
// any record. A store that runs several groups of Updates at once (as
// store/postgres does) may use it to put the Updates of one run in the same
// group, so that they do not queue on that run's rows from several
// connections while Updates of other runs go on beside them, and to read
// the steps named with the run, in one round trip, rather than one by one.
func ForRun(ctx context.Context, runID string, steps ...int) context.Context {
	return context.WithValue(ctx, hintKey{}, hint{runID, steps})
}

// RunOf returns the run that ctx names through ForRun, or "".
func RunOf(ctx context.Context) string {
	h, _ := ctx.Value(hintKey{}).(hint)
	return h.run
}

// StepsOf returns the steps that ctx names through ForRun: indexes of
// steps of RunOf(ctx).
func StepsOf(ctx context.Context) []int {
	h, _ := ctx.Value(hintKey{}).(hint)
	return h.steps
}
