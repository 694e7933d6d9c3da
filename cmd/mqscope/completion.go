package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mqscope/mqscope/inspect"
	"github.com/mqscope/mqscope/inspect/payload"
)

// Shell completion of flag values (mqscope completion bash|zsh|fish|powershell).

// completeOutputFlags registers the completions of the output flags that read, capture and
// proxy share.
func completeOutputFlags(cmd *cobra.Command) {
	fixed := func(flag string, values ...string) {
		_ = cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	fixed("format", "text", "jsonl")
	fixed("payload", payloadModes()...)
	fixed("version", "3", "4", "5")
	_ = cmd.RegisterFlagCompletionFunc("profile", completeProfile)
}

// payloadModes are the values of --payload.
func payloadModes() []string {
	return []string{payload.None.String(), payload.Preview.String(), payload.Full.String()}
}

// completeProfile offers the built-in profiles and the YAML files (and directories, to go
// into) that begin with what was typed.
func completeProfile(_ *cobra.Command, _ []string, typed string) ([]string, cobra.ShellCompDirective) {
	var out []string
	for _, n := range inspect.Profiles() {
		if strings.HasPrefix(n, typed) {
			out = append(out, n)
		}
	}
	dirs := false
	matches, _ := filepath.Glob(typed + "*")
	for _, m := range matches {
		fi, err := os.Stat(m)
		switch {
		case err != nil:
		case fi.IsDir():
			out, dirs = append(out, m+string(filepath.Separator)), true
		case strings.HasSuffix(m, ".yaml") || strings.HasSuffix(m, ".yml"):
			out = append(out, m)
		}
	}
	d := cobra.ShellCompDirectiveNoFileComp
	if dirs {
		d |= cobra.ShellCompDirectiveNoSpace // a directory is completed further
	}
	return out, d
}

// completeInterfaces offers the network interfaces of this machine.
func completeInterfaces(_ *cobra.Command, _ []string, typed string) ([]string, cobra.ShellCompDirective) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, typed) {
			out = append(out, i.Name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
