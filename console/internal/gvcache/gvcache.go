// Package gvcache keeps go-graphviz's compilation cache out of the shared
// temporary directory.
//
// github.com/goccy/go-graphviz compiles Graphviz's WebAssembly module in its
// package initialization, with a wazero compilation cache in
// os.TempDir()/go-graphviz. That directory is shared by every user of the
// machine: the first one to run a program that links the console creates
// it, its files are private to that user, and every other user's program
// then panics before main runs ("permission denied"); a user who created
// it first could also plant compiled code that another user's program
// would load. So this package, which sorts before github.com/goccy in
// import-path order and imports only the standard library, is initialized
// before go-graphviz (Go initializes packages in that order, each after its
// imports), and points TMPDIR at a directory of the user's own for the
// time go-graphviz's initialization takes. Restore, called from the
// initialization of the console, which imports go-graphviz and so runs
// after it, puts TMPDIR back as it was.
package gvcache

import (
	"os"
	"path/filepath"
	"strconv"
)

var (
	oldTMPDIR string
	hadTMPDIR bool
	set       bool
	// Dir is the directory go-graphviz was given as its temporary one
	// (its cache is Dir/go-graphviz), or "" when none could be made and
	// the shared one was left in place.
	Dir string
)

func init() {
	dir := cacheDir()
	if dir == "" {
		return
	}
	oldTMPDIR, hadTMPDIR = os.LookupEnv("TMPDIR")
	if os.Setenv("TMPDIR", dir) == nil {
		set, Dir = true, dir
	}
}

// cacheDir makes and returns a directory that only this user can write:
// dagflow under the user's cache directory (~/.cache/dagflow), else
// dagflow-<uid> in the temporary directory, or "" when neither can be
// made.
func cacheDir() string {
	var dirs []string
	if d, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(d, "dagflow"))
	}
	dirs = append(dirs, filepath.Join(os.TempDir(), "dagflow-"+strconv.Itoa(os.Getuid())))
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			continue
		}
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && owned(fi) && fi.Mode().Perm()&0o022 == 0 {
			return d
		}
	}
	return ""
}

// Restore puts TMPDIR back as it was before go-graphviz's initialization.
// It is safe to call more than once.
func Restore() {
	if !set {
		return
	}
	set = false
	if hadTMPDIR {
		os.Setenv("TMPDIR", oldTMPDIR)
	} else {
		os.Unsetenv("TMPDIR")
	}
}
