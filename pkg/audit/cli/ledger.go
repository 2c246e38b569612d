package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/ledger"
)

var errLedgerProblems = errors.New("the log and the index differ")

func ledgerCheck(ctx context.Context, env Env, args []string) error {
	fs := config.NewFlagSet("faceharvest ledger check", `Recomputes the evidence log from its tiles and entry bundles in the store (every entry must hash
to its leaf and every tile to the root of the latest checkpoint, whose signature is checked with
--log-key), then compares it with the store's index (index/v1/by-id/): index entries missing from
the log (the newest may wait for the next checkpoint), entries that are more than one leaf, entries
changed since they were logged, and leaves whose index entry, record, evidence document or media
object is gone from the store or has another size. Prints the report (text or json); exit 1 when
anything differs.`)
	var st storeFlags
	st.register(fs)
	var logKey, prefix, output string
	logKeyFlag(fs, &logKey)
	fs.StringVar(&prefix, "ledger-prefix", ledger.DefaultPrefix, "where the evidence log lives in the bucket")
	fs.StringVar(&output, "output", "text", "text or json")
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return err
	}
	if output != "text" && output != "json" {
		return usageErr("--output %q: want text or json", output)
	}
	v, err := openLogKey(logKey)
	if err != nil {
		return err
	}
	b, err := st.open(env.Getenv)
	if err != nil {
		return err
	}
	rep, err := ledger.Check(ctx, ledger.Reader{Bucket: b, Prefix: prefix}, v)
	if err != nil {
		return err
	}
	if output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.Stdout, "log %q: %d leaves, root %s (checkpoint signature checked)\nindex: %d entries\n", rep.Checkpoint.Origin, rep.TreeSize, rep.Root, rep.Indexed)
		for _, l := range []struct {
			what string
			keys []string
		}{{"missing from the log", rep.Missing}, {"more than one leaf", rep.Repeated}, {"changed since logged", rep.Changed}, {"leaf without its objects", rep.Orphans}} {
			fmt.Fprintf(env.Stdout, "%s: %d\n", l.what, len(l.keys))
			for _, k := range l.keys {
				fmt.Fprintf(env.Stdout, "  %s\n", k)
			}
		}
	}
	if !rep.OK() {
		return errLedgerProblems
	}
	return nil
}
