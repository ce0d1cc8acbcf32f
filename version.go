package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildInfo is what gateway version prints and gateway_build_info
// carries, read from the binary's own build information.
type buildInfo struct {
	// Version is the module version: a tag such as v1.4.0 for go install
	// module@version, a pseudo-version or "(devel)" for a local build.
	Version string
	// Revision and Time are the VCS commit the binary was built from, ""
	// when the build had no VCS information (-buildvcs=false, or a copy
	// without .git, as in the Docker build); Modified is true when the
	// work tree had changes.
	Revision, Time string
	Modified       bool
	// GoVersion is the toolchain that built it.
	GoVersion string
}

// readBuildInfo reads the running binary's build information; read is
// debug.ReadBuildInfo, a parameter so tests can give their own.
func readBuildInfo(read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: "(unknown)", GoVersion: runtime.Version()}
	bi, ok := read()
	if !ok {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// revisionLabel is the revision as gateway_build_info labels it: "" when
// unknown, "-dirty" appended for a modified tree.
func (b buildInfo) revisionLabel() string {
	if b.Revision != "" && b.Modified {
		return b.Revision + "-dirty"
	}
	return b.Revision
}

// write prints b as gateway version does.
func (b buildInfo) write(w io.Writer) {
	fmt.Fprintf(w, "gateway %s\n", b.Version)
	if b.Revision != "" {
		fmt.Fprintf(w, "revision %s", b.revisionLabel())
		if b.Time != "" {
			fmt.Fprintf(w, " (%s)", b.Time)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%s %s/%s\n", b.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// runVersion is gateway version (and -version, --version).
func runVersion(args []string, stdout io.Writer) error {
	if wantsHelp(args) {
		printHelp(stdout, "version", nil)
		return flag.ErrHelp
	}
	if len(args) > 0 {
		return usageError("gateway version takes no arguments")
	}
	readBuildInfo(debug.ReadBuildInfo).write(stdout)
	return nil
}
