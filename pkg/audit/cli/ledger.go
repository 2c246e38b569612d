package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ledger"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

var errLedgerProblems = errors.New("the log and the index differ")

func ledgerCheck(ctx context.Context, env Env, args []string) error {
	fs := config.NewFlagSet("faceharvest ledger check", `Recomputes the evidence log from its tiles and entry bundles in the store (every entry must hash
to its leaf and every tile to the root of the latest checkpoint, whose signature is checked with
--log-key), then compares it with the store's index (index/v1/by-id/): index entries missing from
the log (the newest may wait for the next checkpoint), entries that are more than one leaf, entries
changed since they were logged, and leaves whose index entry, record, evidence document or media
object is gone from the store or has another size. Prints the report (text or json); exit 1 when
anything differs. With --append-missing, the entries missing from the log (verifications indexed
before the ledger ran, or whose leaf expired from the topic) are appended to --ledger-topic as the
archivers append them; the integrator logs each once.`)
	var svc ops.ServiceFlags
	svc.RegisterKafka(fs)
	var st storeFlags
	st.register(fs)
	var appendMissing bool
	var topic string
	fs.BoolVar(&appendMissing, "append-missing", false, "append the index entries missing from the log to --ledger-topic (exit 0 when that was the only difference)")
	fs.StringVar(&topic, "ledger-topic", contract.DefaultLedgerLeavesTopic, "the leaves topic (the archivers' and the ledger's --ledger-topic)")
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
	if appendMissing && len(rep.Missing) > 0 {
		if err := svc.Validate(env.Getenv); err != nil {
			return err
		}
		n, err := appendLeaves(ctx, svc, b, topic, rep.Missing, env.Now())
		fmt.Fprintf(env.Stdout, "appended %d missing entries to %s: they are leaves after the ledger's next checkpoint\n", n, topic)
		if err != nil {
			return err
		}
		rep.Missing = nil
	}
	if !rep.OK() {
		return errLedgerProblems
	}
	return nil
}

// appendLeaves appends the by-id index entries at keys to the leaves
// topic, as the archivers do, in acknowledged batches; it returns how many
// were appended.
func appendLeaves(ctx context.Context, svc ops.ServiceFlags, b objstore.Bucket, topic string, keys []string, now time.Time) (int, error) {
	if err := bus.CheckTopics(ctx, svc.Kafka, topic); err != nil {
		return 0, err
	}
	w := bus.NewWriter(bus.WriterConfig{Cluster: svc.Kafka, Topic: topic})
	defer w.Close()
	var batch []contract.Message
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return err
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for _, k := range keys {
		rc, err := b.Get(ctx, k)
		if err != nil {
			return n, fmt.Errorf("%s: %w", k, err)
		}
		body, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if err != nil {
			return n, fmt.Errorf("%s: %w", k, err)
		}
		e, err := archiver.ParseIndexEntry(body)
		if err != nil {
			return n, fmt.Errorf("%s: %w", k, err)
		}
		env, err := contract.LedgerLeaf{IndexKey: k, EntrySHA256: ledger.EntrySHA256(body), IndexedAt: now.UTC()}.Envelope(e.Vendor, e.VerificationID, "faceharvest")
		if err != nil {
			return n, err
		}
		if batch = append(batch, env.Message()); len(batch) == 500 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}
