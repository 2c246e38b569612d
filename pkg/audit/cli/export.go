package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
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
	tmp, err := os.CreateTemp(filepath.Dir(out), ".bundle-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is left to remove
	defer tmp.Close()
	now := env.Now().UTC()
	var extra map[string][]byte
	if trail {
		events, err := auditTrail(ctx, svc, auditTopic, v, id)
		if err != nil {
			return fmt.Errorf("reading the audit trail (nothing was exported): %w", err)
		}
		extra = map[string][]byte{ledger.BundleAuditTrail: events}
	}
	e, err := ledger.Export(ctx, ledger.Reader{Bucket: b, Prefix: prefix}, verifier, v, id, viewer, now, extra, tmp)
	switch {
	case errors.Is(err, ledger.ErrNotIndexed):
		return fmt.Errorf("%v (%w)", err, errNotFound)
	case errors.Is(err, ledger.ErrNotInLog):
		return fmt.Errorf("%s is indexed but not yet in the evidence log (is the ledger running?): %w", query, err)
	case err != nil:
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	st2, err := tmp.Stat()
	if err != nil {
		return err
	}
	rep, err := ledger.VerifyBundle(tmp, st2.Size(), verifier)
	if err != nil {
		return fmt.Errorf("the bundle does not verify (nothing was exported): %w", err)
	}
	ev := contract.AuditEvent{Viewer: viewer, Role: contract.RoleOperator, At: now, Action: contract.AuditExport, Vendor: v, VerificationID: id,
		BizNo: e.BizNo, Record: true, IdentityUnmasked: true}
	for _, o := range rep.Objects {
		ev.LinkedKeys = append(ev.LinkedKeys, o.Key)
	}
	if err := alog.Record(ctx, ev); err != nil {
		return fmt.Errorf("recording the export (nothing was exported): %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s (%d bytes)\n%s", out, st2.Size(), rep)
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

// auditTrail reads every event on topic about verification v:id (a view of
// it, or a search whose answer listed it), oldest first, as JSON.
func auditTrail(ctx context.Context, svc ops.ServiceFlags, topic string, v contract.Vendor, id string) ([]byte, error) {
	parts, err := bus.PartitionCount(ctx, svc.Kafka, topic)
	if err != nil {
		return nil, err
	}
	key := contract.Key(v, id)
	events := []contract.AuditEvent{}
	for p := range parts {
		var bad error
		if err := bus.ReadRange(ctx, svc.Kafka, topic, p, -1, func(m contract.Message) {
			var e contract.AuditEvent
			if err := json.Unmarshal(m.Value, &e); err != nil {
				bad = fmt.Errorf("%s/%d@%d: %w", topic, p, m.Offset, err)
				return
			}
			if (e.Vendor == v && e.VerificationID == id) || slices.Contains(e.Verifications, key) {
				events = append(events, e)
			}
		}); err != nil {
			return nil, err
		}
		if bad != nil {
			return nil, bad
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.Before(events[j].At) })
	return json.MarshalIndent(events, "", "  ")
}
