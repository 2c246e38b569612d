// Package cli is the operator command faceharvest: show and find a
// verification's evidence from the store's index, replay records from the
// store, list and redrive dead letters. cmd/faceharvest only calls Main.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

// Env is what the command reads from its process.
type Env struct {
	Args           []string
	Getenv         func(string) string
	Stdout, Stderr io.Writer
	// StderrIsTerminal turns replay's progress line on without --progress.
	StderrIsTerminal bool
	Now              func() time.Time
}

const usage = `Usage: faceharvest <command> [flags]

The operator command: finds any verification's evidence in the store, months later, from the
store's index alone; replays records from the store; shows and redrives dead letters.

Commands:
  show <vendor>:<id>          the record, its timeline, problems and presigned links to its evidence
  find --biz-no X             the same for every verification of a biz_no
  replay --from-store         re-derive records from the evidence documents and publish them again
  dlq list                    the dead letters on the dead-letter topic, with their reasons
  dlq redrive --offset P/O    send chosen dead letters back to their source topic, once
  export <vendor>:<id>        write a verification's evidence bundle (zip) with its proof from the evidence log
  verify <bundle.zip>         check a bundle offline against the log's public key
  ledger check                compare the evidence log with the index: entries missing, repeated, changed; leaves without objects

Run faceharvest <command> --help for a command's flags (each also an environment variable).
`

// Main runs the command and returns the process's exit code: 0, 1 for a
// failure, 2 for bad usage, 3 when nothing was found.
func Main(env Env) int {
	if env.Now == nil {
		env.Now = time.Now
	}
	args := env.Args
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "show":
		err = show(ctx, env, args[1:], false)
	case "find":
		err = show(ctx, env, args[1:], true)
	case "replay":
		err = replay(ctx, env, args[1:])
	case "export":
		err = export(ctx, env, args[1:])
	case "verify":
		err = verify(ctx, env, args[1:])
	case "ledger":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprint(env.Stderr, "faceharvest ledger: want check\n")
			return 2
		}
		err = ledgerCheck(ctx, env, args[2:])
	case "dlq":
		if len(args) < 2 || (args[1] != "list" && args[1] != "redrive") {
			if len(args) >= 2 && (args[1] == "--help" || args[1] == "-h") {
				fmt.Fprint(env.Stdout, "Usage: faceharvest dlq list|redrive [flags]\n\nRun faceharvest dlq list --help or faceharvest dlq redrive --help.\n")
				return 0
			}
			fmt.Fprint(env.Stderr, "faceharvest dlq: want list or redrive\n")
			return 2
		}
		if args[1] == "list" {
			err = dlqList(ctx, env, args[2:])
		} else {
			err = dlqRedrive(ctx, env, args[2:])
		}
	case "--version", "version":
		return config.ExitCode("faceharvest", env.Stderr, parseOnly(env, "faceharvest", "", []string{"--version"}))
	default:
		fmt.Fprintf(env.Stderr, "faceharvest: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errNotFound):
		fmt.Fprintf(env.Stderr, "faceharvest %s: %v\n", args[0], err)
		return 3
	case errors.Is(err, config.ErrHelp), errors.Is(err, config.ErrVersion), errors.Is(err, errUsage):
		return config.ExitCode("faceharvest "+args[0], env.Stderr, err)
	default:
		fmt.Fprintf(env.Stderr, "faceharvest %s: %v\n", args[0], err)
		return 1
	}
}

var (
	errNotFound = errors.New("not found")
	errUsage    = errors.New("usage")
)

func parseOnly(env Env, name, synopsis string, args []string) error {
	fs := config.NewFlagSet(name, synopsis)
	return fs.Parse(args, env.Getenv, env.Stdout)
}

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

// storeFlags are the object store's flags, as the archiver names them.
type storeFlags struct{ s3 *objstore.S3Flags }

func (f *storeFlags) register(fs *config.FlagSet) {
	f.s3 = objstore.RegisterFlags(fs, objstore.FlagsFor{Bucket: "bucket the archiver writes the evidence to",
		Credentials: "Reading needs s3:GetObject and s3:ListBucket; the links are signed with these credentials"})
}

func (f *storeFlags) open(getenv func(string) string) (*objstore.S3, error) {
	c, err := f.s3.Config(getenv)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return objstore.NewS3(c)
}

func show(ctx context.Context, env Env, args []string, byBizNo bool) error {
	name, synopsis := "faceharvest show", `Shows one verification, <vendor>:<id> (megvii or baidu), from the store's index
(index/v1/by-id/): its record as stored (identity masked as published), its timeline (issued,
completed, harvested, decided, archived, the vendor's window left at harvest), its problems, and a
presigned GET link to its record and each stored image and video. The evidence document and the
ID-card images hold the unmasked identity: they are linked only with --identity (and the event
says identity_unmasked), else listed as withheld. The links
need no credentials and expire after --url-expiry: whoever holds one can read the object until then,
so keep them short and do not paste them into tickets. Each display is first recorded as one event
on --audit-topic (acks=all): who (--viewer), which verification, the objects linked and when the
links expire; when the event cannot be written nothing is printed (exit 1). Exit 3 when the
verification is not indexed.`
	if byBizNo {
		name, synopsis = "faceharvest find", `Shows every verification of a biz_no (the customer's reference, both vendors), oldest decision
first, from the store's index (index/v1/by-biz-no/<sha256 of biz_no>/), each as faceharvest show
does, recorded first as one event on --audit-topic naming them all. Exit 3 when none is indexed.`
	}
	fs := config.NewFlagSet(name, synopsis)
	if !byBizNo {
		fs = config.NewFlagSet(name+" <vendor>:<id>", synopsis)
	}
	var svc ops.ServiceFlags
	svc.RegisterKafka(fs)
	var st storeFlags
	st.register(fs)
	var bizNo, output, viewer, auditTopic string
	var expiry time.Duration
	var identity bool
	if byBizNo {
		fs.StringVar(&bizNo, "biz-no", "", "the biz_no to find (required)")
	}
	fs.StringVar(&output, "output", "text", "text (for people) or json (for scripts: an array of views, each with the record as stored)")
	fs.DurationVar(&expiry, "url-expiry", 15*time.Minute, "how long the presigned links work (at most 168h)")
	fs.StringVar(&viewer, "viewer", "", "who is looking (a person's name or e-mail, not a shared account): the viewer of the audit event (required)")
	fs.BoolVar(&identity, "identity", false, "also link the evidence document and the ID-card images, which hold or show the unmasked name and ID number (the audit event says identity_unmasked)")
	fs.StringVar(&auditTopic, "audit-topic", contract.DefaultAuditTopic, "topic of audit events (one per display, keyed by viewer)")
	var query string
	if !byBizNo && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		query, args = args[0], args[1:] // show <vendor>:<id> [flags]
	}
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return err
	}
	if output != "text" && output != "json" {
		return usageErr("--output %q: want text or json", output)
	}
	if expiry <= 0 || expiry > 7*24*time.Hour {
		return usageErr("--url-expiry %s: want more than 0 and at most 168h", expiry)
	}
	if err := svc.Validate(env.Getenv); err != nil {
		return err
	}
	if viewer = strings.TrimSpace(viewer); viewer == "" {
		return usageErr("want --viewer (or %sVIEWER): who is looking, for the audit event", config.EnvPrefix)
	}
	if byBizNo {
		if bizNo == "" {
			return usageErr("want --biz-no")
		}
		if !contract.PlainText(bizNo) {
			return usageErr("--biz-no: UTF-8 text without control characters (no biz_no holds one)")
		}
		query = "biz_no:" + bizNo
	} else if query == "" {
		return usageErr("want faceharvest show <vendor>:<id> [flags]")
	}
	var v contract.Vendor
	var id string
	if !byBizNo {
		var err error
		if v, id, err = audit.ParseKey(query); err != nil {
			return usageErr("%v", err)
		}
	}
	b, err := st.open(env.Getenv)
	if err != nil {
		return err
	}
	// The audit topic is checked before the store is read: a display that
	// cannot be recorded is not made.
	if err := bus.CheckTopics(ctx, svc.Kafka, auditTopic); err != nil {
		return fmt.Errorf("the audit topic (nothing was shown): %w", err)
	}
	w := bus.NewWriter(bus.WriterConfig{Cluster: svc.Kafka, Topic: auditTopic})
	defer w.Close()
	alog, err := audit.NewLog(audit.LogConfig{Writer: w, Via: "faceharvest", Now: env.Now})
	if err != nil {
		return err
	}
	store := audit.NewStore(b)
	var vs []audit.Verification
	if byBizNo {
		if vs, _, err = store.ByBizNo(ctx, bizNo, 0); errors.Is(err, audit.ErrMissing) {
			return fmt.Errorf("biz_no %q: %v (%w)", bizNo, err, errNotFound)
		} else if err != nil {
			return err
		}
	} else {
		one, err := store.Get(ctx, v, id)
		if errors.Is(err, audit.ErrMissing) {
			return fmt.Errorf("%v (%w)", err, errNotFound)
		}
		if errors.Is(err, audit.ErrNotFound) {
			return fmt.Errorf("%s: %w in the index", query, errNotFound)
		}
		if err != nil {
			return err
		}
		vs = append(vs, one)
	}
	if len(vs) == 0 {
		return fmt.Errorf("biz_no %q: %w in the index", bizNo, errNotFound)
	}
	now := env.Now()
	views := make([]audit.View, 0, len(vs))
	shown := audit.Shown{Viewer: viewer, Command: strings.TrimPrefix(name, "faceharvest "), BizNo: bizNo, At: now.UTC(), LinkExpiry: now.Add(expiry).UTC().Truncate(time.Second)}
	if !byBizNo {
		shown.BizNo = vs[0].Record.BizNo
	}
	for _, x := range vs {
		view, err := audit.NewView(ctx, x, b, expiry, now, identity)
		if err != nil {
			return err
		}
		views = append(views, view)
		shown.Add(view)
	}
	if err := alog.Record(ctx, shown.Event()); err != nil {
		return fmt.Errorf("recording the display (nothing was shown): %w", err)
	}
	if output == "json" {
		return audit.WriteJSON(env.Stdout, views)
	}
	return audit.WriteText(env.Stdout, views)
}

func replay(ctx context.Context, env Env, args []string) error {
	fs := config.NewFlagSet("faceharvest replay", `Re-derives the record of every indexed verification from its evidence document in the store, with
the archiver's own code, and publishes it to --to-topic as the archiver does: when the evidence and
the code give the published record, the same bytes under the same ce_id (after faceid.results lost
its records, a replay reproduces them exactly); after a schema change or a fix, a record that differs
is a correction, counted and published under a ce_id of its own derived from its content (the stored
record and the index are not changed: the first record stays final in the store). Verifications are walked in index-key order (index/v1/by-id/<vendor>/<id>.json), in
batches each acknowledged by all in-sync replicas (acks=all) before the next. Bounded by --limit,
resumable from the last key published (--resume-after, or --checkpoint FILE which is read at start
and rewritten after each batch), and safe to run twice: a deduplicating consumer sees nothing new.
Progress goes to stderr when it is a terminal, or with --progress; a summary (JSON) to stdout.`)
	var svc ops.ServiceFlags
	svc.RegisterKafka(fs)
	var st storeFlags
	st.register(fs)
	var fromStore, unmask, progress bool
	var since, vendor, topic, resumeAfter, checkpoint, source string
	var limit int
	fs.BoolVar(&fromStore, "from-store", false, "read the evidence documents from the store (required: the only source so far)")
	fs.StringVar(&topic, "to-topic", "", "topic to publish the records to, e.g. "+contract.DefaultResultsTopic+" (required)")
	fs.StringVar(&since, "since", "", "only verifications decided at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z) or this long ago (e.g. 720h)")
	fs.StringVar(&vendor, "vendor", "", "only this vendor's verifications: megvii or baidu (default: both)")
	fs.IntVar(&limit, "limit", 0, "publish at most this many records (0: all)")
	fs.StringVar(&resumeAfter, "resume-after", "", "skip index keys up to and including this one (the \"last\" of an earlier run's summary)")
	fs.StringVar(&checkpoint, "checkpoint", "", "file holding the last index key published: read at start (when it exists, it wins over --resume-after) and rewritten after each acknowledged batch")
	fs.BoolVar(&unmask, "unmask-identity", false, "re-derive full names and ID numbers, as an archiver run with --unmask-identity does; set it as the archiver has it, or the records differ")
	fs.StringVar(&source, "source", archiver.DefaultConfig().Source, "ce_source of the records (the archiver's)")
	fs.BoolVar(&progress, "progress", false, "show a progress line on stderr even when it is not a terminal")
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return err
	}
	if err := svc.Validate(env.Getenv); err != nil {
		return err
	}
	if !fromStore {
		return usageErr("--from-store is required")
	}
	if topic == "" {
		return usageErr("--to-topic is required")
	}
	if limit < 0 {
		return usageErr("--limit must not be negative")
	}
	cfg := audit.ReplayConfig{Limit: limit, ResumeAfter: resumeAfter, Unmask: unmask, Source: source}
	switch vendor {
	case "":
	case string(contract.Megvii), string(contract.Baidu):
		cfg.Vendors = []contract.Vendor{contract.Vendor(vendor)}
	default:
		return usageErr("--vendor %q: want megvii or baidu", vendor)
	}
	if since != "" {
		if d, err := time.ParseDuration(since); err == nil {
			cfg.Since = env.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, since); err == nil {
			cfg.Since = t
		} else {
			return usageErr("--since %q: want an RFC 3339 time or a duration", since)
		}
	}
	if checkpoint != "" {
		if b, err := os.ReadFile(checkpoint); err == nil {
			cfg.ResumeAfter = strings.TrimSpace(string(b))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--checkpoint: %w", err)
		}
	}
	b, err := st.open(env.Getenv)
	if err != nil {
		return err
	}
	if err := bus.CheckTopics(ctx, svc.Kafka, topic); err != nil {
		return err
	}
	w := bus.NewWriter(bus.WriterConfig{Cluster: svc.Kafka, Topic: topic, BatchBytes: 16 << 20})
	defer w.Close()
	show := progress || env.StderrIsTerminal
	cfg.Progress = func(p audit.ReplayProgress) {
		if checkpoint != "" && p.Last != "" {
			if err := writeFileAtomic(checkpoint, []byte(p.Last+"\n")); err != nil {
				fmt.Fprintf(env.Stderr, "faceharvest replay: checkpoint: %v\n", err)
			}
		}
		if show {
			fmt.Fprintf(env.Stderr, "\rreplay: %d/%d read, %d published, %d changed, %d skipped", p.Seen, p.Total, p.Published, p.Changed, p.Skipped)
		}
	}
	pr, err := audit.NewStore(b).Replay(ctx, cfg, func(ctx context.Context, es []contract.Envelope) error {
		ms := make([]contract.Message, len(es))
		for i, e := range es {
			ms[i] = e.Message()
		}
		return w.WriteMessages(ctx, ms...)
	})
	if show {
		fmt.Fprintln(env.Stderr)
	}
	enc := json.NewEncoder(env.Stdout)
	if eerr := enc.Encode(pr); eerr != nil && err == nil {
		err = eerr
	}
	return err
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

type dlqFlags struct {
	svc   ops.ServiceFlags
	topic string
	out   string
}

func (f *dlqFlags) register(fs *config.FlagSet) {
	f.svc.RegisterKafka(fs)
	fs.StringVar(&f.topic, "dlq-topic", contract.DefaultDLQTopic, "the dead-letter topic")
	fs.StringVar(&f.out, "output", "text", "text (for people) or json (for scripts)")
}

type dlqRow struct {
	Partition  int       `json:"partition"`
	Offset     int64     `json:"offset"`
	Time       time.Time `json:"time"`
	Key        string    `json:"key"`
	Reason     string    `json:"reason"`
	Source     string    `json:"source"`
	Size       int       `json:"size"`
	Truncated  string    `json:"truncated_from,omitempty"`
	PayloadRef string    `json:"payload_ref,omitempty"`
	Redriven   bool      `json:"redriven"`
}

func rows(ds []bus.DeadLetter) []dlqRow {
	out := make([]dlqRow, 0, len(ds))
	for _, d := range ds {
		out = append(out, dlqRow{d.Partition, d.Offset, d.Time.UTC(), d.Key, d.Reason, d.Source, d.Size, d.Truncated, d.PayloadRef, d.Redriven})
	}
	return out
}

func writeRows(w io.Writer, format string, rs []dlqRow) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	fmt.Fprintf(w, "%-5s %-10s %-8s %-9s %-40s %-32s %s\n", "PART", "OFFSET", "SIZE", "REDRIVEN", "SOURCE", "KEY", "REASON")
	for _, r := range rs {
		size := strconv.Itoa(r.Size)
		if r.Truncated != "" {
			size += " (cut from " + r.Truncated + ")"
		}
		if r.PayloadRef != "" {
			size += " (payload in the store)"
		}
		fmt.Fprintf(w, "%-5d %-10d %-8s %-9t %-40s %-32s %s\n", r.Partition, r.Offset, size, r.Redriven, r.Source, r.Key, r.Reason)
	}
	return nil
}

func dlqList(ctx context.Context, env Env, args []string) error {
	fs := config.NewFlagSet("faceharvest dlq list", `Lists the dead letters on the dead-letter topic (every partition, from its start to its end when
the command began): partition and offset, size (and the original size of a value that was cut, or that
the payload is in the store), whether it was redriven, its source (topic/partition/offset), its key
and its reason (faceharvest_dlq_reason). Markers that redrive wrote are not listed.`)
	var f dlqFlags
	f.register(fs)
	var reason string
	fs.StringVar(&reason, "reason", "", "only dead letters whose reason contains this text")
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return err
	}
	if err := f.svc.Validate(env.Getenv); err != nil {
		return err
	}
	if f.out != "text" && f.out != "json" {
		return usageErr("--output %q: want text or json", f.out)
	}
	ds, err := bus.ReadDeadLetters(ctx, f.svc.Kafka, f.topic)
	if err != nil {
		return err
	}
	var keep []bus.DeadLetter
	for _, d := range ds {
		if reason == "" || strings.Contains(d.Reason, reason) {
			keep = append(keep, d)
		}
	}
	return writeRows(env.Stdout, f.out, rows(keep))
}

func dlqRedrive(ctx context.Context, env Env, args []string) error {
	fs := config.NewFlagSet("faceharvest dlq redrive", `Sends chosen dead letters back to their source topic (from faceharvest_dlq_source), once: the key,
the payload (fetched from the store and checked against its SHA-256 when it was stored out of line,
--dlq-payload store) and the original headers, without the dead-letter headers. After each send a
marker (header faceharvest_dlq_redriven: <partition>/<offset>) is written to the dead-letter topic;
a dead letter with a marker is never sent again, so running redrive twice sends nothing twice. A
crash between the send and its marker sends it once more on the next run, with the same ce_id, on
which the pipeline's consumers deduplicate. A dead letter whose value was cut and whose payload was
not stored is refused. Choose by --offset or --reason; prints what was sent.`)
	var f dlqFlags
	f.register(fs)
	var st storeFlags
	st.register(fs)
	var offsets, reason string
	var dryRun bool
	fs.StringVar(&offsets, "offset", "", "comma-separated dead letters to send back, each <partition>/<offset> (or <offset> on a one-partition topic)")
	fs.StringVar(&reason, "reason", "", "send back the dead letters whose reason contains this text")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would be sent, send nothing")
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return err
	}
	if err := f.svc.Validate(env.Getenv); err != nil {
		return err
	}
	if (offsets == "") == (reason == "") {
		return usageErr("want --offset or --reason (one of them)")
	}
	ds, err := bus.ReadDeadLetters(ctx, f.svc.Kafka, f.topic)
	if err != nil {
		return err
	}
	parts := map[int]bool{}
	for _, d := range ds {
		parts[d.Partition] = true
	}
	want := map[string]bool{}
	for _, o := range strings.Split(offsets, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if !strings.Contains(o, "/") {
			if len(parts) > 1 {
				return usageErr("--offset %s: the topic has several partitions; write <partition>/<offset>", o)
			}
			p := 0
			for k := range parts {
				p = k
			}
			o = strconv.Itoa(p) + "/" + o
		}
		want[o] = true
	}
	var chosen []bus.DeadLetter
	for _, d := range ds {
		id := strconv.Itoa(d.Partition) + "/" + strconv.FormatInt(d.Offset, 10)
		if want[id] || (reason != "" && strings.Contains(d.Reason, reason)) {
			chosen = append(chosen, d)
			delete(want, id)
		}
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for k := range want {
			missing = append(missing, k)
		}
		sort.Strings(missing)
		return fmt.Errorf("no dead letter at %s: %w", strings.Join(missing, ", "), errNotFound)
	}
	if dryRun {
		return writeRows(env.Stdout, f.out, rows(chosen))
	}
	var store bus.PayloadBucket
	for _, d := range chosen {
		if d.PayloadRef != "" && !d.Redriven {
			b, err := st.open(env.Getenv)
			if err != nil {
				return err
			}
			store = b
			break
		}
	}
	writers := map[string]*bus.Writer{}
	defer func() {
		for _, w := range writers {
			w.Close()
		}
	}()
	send := func(ctx context.Context, topic string, m contract.Message) error {
		w := writers[topic]
		if w == nil {
			w = bus.NewWriter(bus.WriterConfig{Cluster: f.svc.Kafka, Topic: topic, BatchBytes: 16 << 20})
			writers[topic] = w
		}
		return w.WriteMessages(ctx, m)
	}
	var sent []bus.DeadLetter
	for _, d := range chosen {
		if d.Redriven {
			fmt.Fprintf(env.Stderr, "faceharvest dlq redrive: %d/%d was redriven before; not sent again\n", d.Partition, d.Offset)
			continue
		}
		if err := bus.Redrive(ctx, d, store, send, f.topic); err != nil {
			return err
		}
		sent = append(sent, d)
	}
	return writeRows(env.Stdout, f.out, rows(sent))
}
