package main

import (
	"fmt"
	"os"
	"syscall"
)

const tmpfsMagic = 0x01021994

// warnIfTmpfs warns when the file stores would live in memory, where fsync
// costs nothing.
func warnIfTmpfs(dir string) {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic {
		fmt.Fprintf(os.Stderr, "warning: %s is a tmpfs: the file stores will not touch a disk (use -dir)\n", dir)
	}
}
