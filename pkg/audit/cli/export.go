package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ledger"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

// logKeyFlag registers --log-key, the evidence log's public key.
func logKeyFlag(fs *config.FlagSet, key *string) {
	fs.StringVar(key, "log-key", "", "the evidence log's public key, <origin>+<hash>+<key> as `ledger keygen` printed it (required)")
}

func openLogKey(key string) (note.Verifier, error) {
	if strings.TrimSpace(key) == "" {
		return nil, usageErr("want --log-key (or %sLOG_KEY): the evidence log's public key", config.EnvPrefix)
	}
	v, err := ledger.NewVerifier(key)
	if err != nil {
		return nil, usageErr("--log-key: %v", err)
	}
	return v, nil
}

func export(ctx context.Context, env Env, args []string) error {
	fs := config.NewFlagSet("faceharvest export <vendor>:<id>", `Writes one verification's evidence bundle, a zip file a court or an auditor can check offline
with faceharvest verify and the log's public key alone: the index entry as the evidence log holds
it, its inclusion proof, the log's latest signed checkpoint, the record, the evidence document
(every vendor answer and signed callback as received, the unmasked identity) and every stored media
object, with a manifest and a short summary. The bundle is checked (as verify does) before it is
handed over. It holds personal data: the export is first recorded as one event on --audit-topic
(acks=all), and when the event cannot be written no file is written (exit 1). Exit 3 when the
verification is not indexed; a verification not yet in a checkpoint is refused (try again after
the ledger's next checkpoint).`)
	var svc ops.ServiceFlags
	svc.RegisterKafka(fs)
	var st storeFlags
	st.register(fs)
	var out, viewer, auditTopic, logKey, prefix string
	trail := true
	fs.StringVar(&out, "out", "", "the bundle's file (required; written whole or not at all)")
	fs.StringVar(&viewer, "viewer", "", "who exports (a person's name or e-mail, not a shared account): the viewer of the audit event (required)")
	fs.StringVar(&auditTopic, "audit-topic", contract.DefaultAuditTopic, "topic of audit events")
	logKeyFlag(fs, &logKey)
	fs.StringVar(&prefix, "ledger-prefix", ledger.DefaultPrefix, "where the evidence log lives in the bucket")
	fs.BoolVar(&trail, "audit-trail", trail, "include the verification's audit trail (its events on --audit-topic: who viewed it, when) as audit-trail.json; reads the whole topic")
	var query string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		query, args = args[0], args[1:]
	}
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return err
	}
	if err := svc.Validate(env.Getenv); err != nil {
		return err
	}
	if viewer = strings.TrimSpace(viewer); viewer == "" {
		return usageErr("want --viewer (or %sVIEWER): who exports, for the audit event", config.EnvPrefix)
	}
	if out == "" {
		return usageErr("want --out FILE")
	}
	if query == "" {
		return usageErr("want faceharvest export <vendor>:<id> --out FILE")
	}
	v, id, err := audit.ParseKey(query)
	if err != nil {
		return usageErr("%v", err)
	}
	verifier, err := openLogKey(logKey)
	if err != nil {
		return err
	}
	b, err := st.open(env.Getenv)
	if err != nil {
		return err
	}
	if err := bus.CheckTopics(ctx, svc.Kafka, auditTopic); err != nil {
		return fmt.Errorf("the audit topic (nothing was exported): %w", err)
	}
	w := bus.NewWriter(bus.WriterConfig{Cluster: svc.Kafka, Topic: auditTopic})
	defer w.Close()
	alog, err := audit.NewLog(audit.LogConfig{Writer: w, Via: "faceharvest", Now: env.Now})
	if err != nil {
		return err
	}
	x := audit.Exporter{Log: ledger.Reader{Bucket: b, Prefix: prefix}, Key: verifier}
	if trail {
		x.Trail = func(ctx context.Context, v contract.Vendor, id string) ([]byte, error) {
			return audit.ReadTrail(ctx, svc.Kafka, auditTopic, v, id)
		}
	}
	return writeBundle(ctx, env, x, alog, query, v, id, viewer, out)
}

// writeBundle builds the bundle of v:id in a temporary file beside out,
// records the export, then renames the file to out: nothing is written
// unless the bundle verified and its event was acknowledged.
func writeBundle(ctx context.Context, env Env, x audit.Exporter, alog *audit.Log, query string, v contract.Vendor, id, viewer, out string) error {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".bundle-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is left to remove
	defer tmp.Close()
	bundle, err := x.Build(ctx, v, id, viewer, env.Now().UTC(), tmp)
	switch {
	case errors.Is(err, ledger.ErrNotIndexed):
		return fmt.Errorf("%v (%w)", err, errNotFound)
	case errors.Is(err, ledger.ErrNotInLog):
		return fmt.Errorf("%s is indexed but not yet in the evidence log (is the ledger running?): %w", query, err)
	case err != nil:
		return fmt.Errorf("%w (nothing was exported)", err)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	ev := bundle.Event
	ev.Viewer, ev.Role = viewer, contract.RoleOperator
	if err := alog.Record(ctx, ev); err != nil {
		return fmt.Errorf("recording the export (nothing was exported): %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s (%d bytes)\n%s", out, bundle.Size, bundle.Report)
	return nil
}

func verify(_ context.Context, env Env, args []string) error {
	fs := config.NewFlagSet("faceharvest verify <bundle.zip>", `Checks an evidence bundle (faceharvest export) offline, with no network and no access to the store,
against the evidence log's public key alone: the checkpoint's signature, the index entry's inclusion
in the checkpoint's tree (RFC 6962), and the SHA-256 of the record, the evidence document and every
media object the entry names. Prints what it proved (and what a bundle cannot prove); exit 1 with the
precise reason when any check fails.`)
	var logKey string
	logKeyFlag(fs, &logKey)
	var path string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		path, args = args[0], args[1:]
	}
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return err
	}
	if path == "" {
		return usageErr("want faceharvest verify <bundle.zip> --log-key KEY")
	}
	verifier, err := openLogKey(logKey)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	rep, err := ledger.VerifyBundle(f, st.Size(), verifier)
	if err != nil {
		return fmt.Errorf("REFUSED: %w", err)
	}
	fmt.Fprint(env.Stdout, rep)
	return nil
}
