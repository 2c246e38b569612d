package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.1.1-0.20260301120000-0123456789ab"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "true"}}}
	cases := []struct {
		name     string
		bi       *debug.BuildInfo
		ok       bool
		ver, rev string
		want     Info
	}{
		{"vcs", vcs, true, "", "", Info{"v0.1.1-0.20260301120000-0123456789ab", "0123456789abcdef+dirty", "go1.26.8"}},
		{"stamped", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true, "v0.2.0", "fedcba", Info{"v0.2.0", "fedcba", "go1.26.8"}},
		{"nothing", &debug.BuildInfo{GoVersion: "go1.26.8"}, true, "", "", Info{"(devel)", "unknown", "go1.26.8"}},
	}
	for _, c := range cases {
		if got := fromBuildInfo(c.bi, c.ok, c.ver, c.rev); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if got := Read(); got.GoVersion == "" || got.Version == "" || got.Revision == "" {
		t.Errorf("Read: %+v", got)
	}
	if s := (Info{"v1", "abc", "go1.26.8"}).String("ingest"); s != "ingest v1 (revision abc, go1.26.8)" {
		t.Error(s)
	}
	if !strings.HasPrefix(Read().String("x"), "x ") {
		t.Error("String")
	}
}
