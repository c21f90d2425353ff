package store

import "errors"

// Errors returned by stores, grouped by operation. Callers test for them with
// errors.Is; stores may wrap them with more detail.
var (
	// ErrNotFound is returned by reads (Tx.Run, Tx.Step, Tx.DeleteRun)
	// when the record does not exist.
	ErrNotFound = errors.New("store: not found")

	// ErrConflict is returned when a change contradicts what is stored: a
	// run created again with another spec, a state change that no longer
	// applies.
	ErrConflict = errors.New("store: conflict")

	// ErrLeaseLost is returned when an outcome is reported under a lease
	// that has expired and been taken over by another claim (the fencing
	// token no longer matches).
	ErrLeaseLost = errors.New("store: lease lost")

	// ErrReadOnly is returned by the write methods of a Tx given to View.
	ErrReadOnly = errors.New("store: read-only transaction")

	// ErrClosed is returned by Update and View after Close.
	ErrClosed = errors.New("store: closed")
)
