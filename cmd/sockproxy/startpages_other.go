//go:build !linux

package main

// releaseStartPages is Linux-only (MADV_PAGEOUT).
func releaseStartPages() int64 { return 0 }
