package store

import "context"

type runKey struct{}

// ForRun returns a copy of ctx that tells Update which run its transaction
// is about. It is a hint, not a limit: the transaction may read and write
// any record. A store that runs several groups of Updates at once (as
// store/postgres does) may use it to put the Updates of one run in the same
// group, so that they do not queue on that run's rows from several
// connections while Updates of other runs go on beside them.
func ForRun(ctx context.Context, runID string) context.Context {
	return context.WithValue(ctx, runKey{}, runID)
}

// RunOf returns the run that ctx names through ForRun, or "".
func RunOf(ctx context.Context) string {
	id, _ := ctx.Value(runKey{}).(string)
	return id
}
