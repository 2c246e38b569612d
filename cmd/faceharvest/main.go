// Command faceharvest is the operator command: it shows and finds any
// verification's evidence from the store's index, replays records from the
// store, and lists and redrives dead letters. Run faceharvest --help.
package main

import (
	"os"

	"github.com/faceharvest/faceharvest/pkg/audit/cli"
)

func main() {
	st, err := os.Stderr.Stat()
	os.Exit(cli.Main(cli.Env{Args: os.Args[1:], Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr,
		StderrIsTerminal: err == nil && st.Mode()&os.ModeCharDevice != 0}))
}
