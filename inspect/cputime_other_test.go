//go:build !unix

package inspect

func cpuTime() int64 { return 0 }
