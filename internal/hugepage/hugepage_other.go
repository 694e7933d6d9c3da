//go:build !linux

// Package hugepage asks the operating system to back mqscope's large anonymous memory with huge
// pages; only on Linux, where it does nothing without transparent huge pages.
package hugepage

// Heap does nothing here.
func Heap(grow int) {}

// Enabled reports false here.
func Enabled() bool { return false }
