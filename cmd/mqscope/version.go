package main

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version and commit are set at link time, for builds without VCS stamping (a source tarball,
// -buildvcs=false):
//
//	go build -ldflags "-X main.version=$(git describe --tags --always) -X main.commit=$(git rev-parse HEAD)" ./cmd/mqscope
var version, commit string

func newVersionCmd(io *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print mqscope's version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(io.Out, "mqscope %s\n", buildVersion())
			return err
		},
	}
}

// buildVersion describes this build from the link-time values and the build information the
// Go toolchain records.
func buildVersion() string {
	info, _ := debug.ReadBuildInfo()
	return describeBuild(info, version, commit)
}

// pseudoVersion matches a Go pseudo-version (v0.0.0-20261205072357-2eb3964abcde), whose last
// part is the commit: go install ...@latest on an untagged commit records one.
var pseudoVersion = regexp.MustCompile(`-(?:0\.)?\d{14}-([0-9a-f]{12})(?:\+incompatible)?$`)

// describeBuild says "VERSION (commit C[, modified], GO)": the version from -ldflags, else the
// module's version (go install ...@v1.2.3), else "(devel)"; the commit from -ldflags, else
// the VCS stamp of go build in a checkout, else the module's pseudo-version, else "unknown".
func describeBuild(info *debug.BuildInfo, ldVersion, ldCommit string) string {
	v, c, goVersion, modified := ldVersion, ldCommit, "", false
	if info != nil {
		goVersion = info.GoVersion
		if v == "" && info.Main.Version != "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if m := pseudoVersion.FindStringSubmatch(info.Main.Version); m != nil && c == "" {
			c = m[1]
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	} else if len(c) > 12 && !strings.ContainsAny(c, "-.") {
		c = c[:12]
	}
	s := v + " (commit " + c
	if modified {
		s += ", modified"
	}
	if goVersion != "" {
		s += ", " + goVersion
	}
	return s + ")"
}
