//go:build linux

package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAnotherUsersGraphvizCache runs the command as another user on a
// machine where a first user's program left go-graphviz's compilation
// cache in the shared temporary directory, private to that user, as
// go-graphviz makes it. go-graphviz, linked in through the console, sets
// itself up before main runs, and used to panic there for every user but
// the first ("permission denied"). Each user now gets a cache of their own
// (internal/gvcache).
func TestAnotherUsersGraphvizCache(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("running the command as another user needs root")
	}
	const nobody = 65534
	shared := t.TempDir()
	// t.TempDir's directories are private; this one stands for /tmp.
	for _, d := range []string{filepath.Dir(shared), shared} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	// The first user's cache: go-graphviz makes the outer directory 0755
	// and wazero the inner one 0700.
	gv := filepath.Join(shared, "go-graphviz")
	inner := filepath.Join(gv, "wazero-v1.10.1-amd64-linux")
	if err := os.MkdirAll(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(gv, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inner, "planted"), []byte("not a cache entry"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The binary and a workflow where that user can read them.
	exe := filepath.Join(shared, "dagflow")
	copyFile(t, bin, exe, 0o755)
	wf := filepath.Join(shared, "chain.json")
	copyFile(t, filepath.Join("..", "..", "testdata", "chain.json"), wf, 0o644)

	for _, home := range []string{"/nonexistent", ""} {
		cmd := exec.Command(exe, "validate", wf)
		cmd.Dir = shared
		cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + shared, "GORACE=atexit_sleep_ms=0"}
		if home != "" {
			cmd.Env = append(cmd.Env, "HOME="+home)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Contains(string(out), "panic") {
			t.Fatalf("HOME=%q: dagflow validate as another user: %v\n%s", home, err, out)
		}
		// No home directory to cache in: the cache went to a directory of
		// that user's own beside the shared one.
		fi, err := os.Stat(filepath.Join(shared, "dagflow-65534", "go-graphviz"))
		if err != nil {
			t.Fatalf("HOME=%q: no private cache: %v", home, err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody {
			t.Errorf("the private cache belongs to uid %d", st.Uid)
		}
	}
	if entries, _ := os.ReadDir(inner); len(entries) != 1 {
		t.Errorf("the first user's cache was written to: %v", entries)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
