//go:build unix

package gvcache

import (
	"os"
	"syscall"
)

// owned reports whether the current user owns the file.
func owned(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
