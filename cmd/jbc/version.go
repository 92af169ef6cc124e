package main

import (
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is jbc's version, set at build time with
// -ldflags "-X main.version=v1.2.3"; when empty it comes from the build
// information.
var version string

// versionString returns the version: the one set at build time, else the
// module version, else "devel" and the VCS revision when recorded.
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	v := "devel"
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += "-" + rev + dirty
	}
	return v
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print jbc's version",
		Example: `  jbc version
  jbc version --json`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			v := versionString()
			if a.json {
				return a.printJSON(struct {
					Version string `json:"version"`
					Go      string `json:"go"`
					OS      string `json:"os"`
					Arch    string `json:"arch"`
				}{v, runtime.Version(), runtime.GOOS, runtime.GOARCH})
			}
			a.printf("jbc %s (%s %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
