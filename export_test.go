package dagflow

// ScanSpecContext exposes scanSpecContext to the fuzz targets of
// package dagflow_test.
var ScanSpecContext = scanSpecContext
