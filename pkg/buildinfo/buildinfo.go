// Package buildinfo says which build a binary is: its module version, VCS
// revision and Go version, read from runtime/debug.ReadBuildInfo. Builds
// without VCS data (a container build whose context has no .git) can stamp
// the first two with -ldflags "-X".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Stamped by the image build (-ldflags "-X ...buildinfo.version=v1.2.3
// -X ...buildinfo.revision=<sha>"); empty otherwise.
var version, revision string

// Info identifies a build.
type Info struct {
	Version   string // module version ("v0.1.0", a pseudo-version, or "(devel)")
	Revision  string // VCS revision, "+dirty" appended when the tree was modified; "unknown" without VCS data
	GoVersion string
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok, version, revision)
}

func fromBuildInfo(bi *debug.BuildInfo, ok bool, stampedVersion, stampedRevision string) Info {
	in := Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	if ok && bi != nil {
		if bi.Main.Version != "" {
			in.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		var rev string
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			in.Revision = rev
			if modified {
				in.Revision += "+dirty"
			}
		}
	}
	if stampedVersion != "" {
		in.Version = stampedVersion
	}
	if stampedRevision != "" {
		in.Revision = stampedRevision
	}
	return in
}

// String is what --version prints: "<program> <version> (revision <rev>, <go version>)".
func (in Info) String(program string) string {
	return fmt.Sprintf("%s %s (revision %s, %s)", program, in.Version, in.Revision, in.GoVersion)
}
