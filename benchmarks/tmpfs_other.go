//go:build !linux

package main

func warnIfTmpfs(dir string) {}
