package main

import (
	"fmt"

	"github.com/spf13/pflag"
)

// versionFlag adds --version, the protocol level to decode with when no CONNECT says it.
func versionFlag(f *pflag.FlagSet, v *int, usage string) {
	f.IntVar(v, "version", 0, usage)
}

// checkVersion validates --version: 0 (not given), 3, 4 or 5.
func checkVersion(v int) error {
	switch v {
	case 0, 3, 4, 5:
		return nil
	}
	return usageError{fmt.Errorf("--version %d: want 3, 4 or 5", v)}
}
