package dagflow

// ScanSpecContext exposes scanSpecContext to the fuzz targets of
// package dagflow_test.
var ScanSpecContext = scanSpecContext

// Idle reports whether none of e's worker slots is held (by a claim, or
// reserved by a transaction about to claim).
func Idle(e *Engine) bool { return e.free.Load() == int64(e.cfg.concurrency) }
