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
	if args[0] == "--version" || args[0] == "version" {
		return config.ExitCode("faceharvest", env.Stderr, parseOnly(env, "faceharvest", "", []string{"--version"}))
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "faceharvest: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return exitCode(env, args[0], cmd(ctx, env, args[1:]))
}

// command runs one of the command's subcommands with its arguments.
type command func(ctx context.Context, env Env, args []string) error

var commands = map[string]command{
	"show":   func(ctx context.Context, env Env, args []string) error { return show(ctx, env, args, false) },
	"find":   func(ctx context.Context, env Env, args []string) error { return show(ctx, env, args, true) },
	"replay": replay,
	"export": export,
	"verify": verify,
	"ledger": func(ctx context.Context, env Env, args []string) error {
		if len(args) < 1 || args[0] != "check" {
			return badSubcommand("faceharvest ledger: want check\n")
		}
		return ledgerCheck(ctx, env, args[1:])
	},
	"dlq": dlq,
}

func dlq(ctx context.Context, env Env, args []string) error {
	switch {
	case len(args) >= 1 && args[0] == "list":
		return dlqList(ctx, env, args[1:])
	case len(args) >= 1 && args[0] == "redrive":
		return dlqRedrive(ctx, env, args[1:])
	case len(args) >= 1 && (args[0] == "--help" || args[0] == "-h"):
		fmt.Fprint(env.Stdout, "Usage: faceharvest dlq list|redrive [flags]\n\nRun faceharvest dlq list --help or faceharvest dlq redrive --help.\n")
		return nil
	}
	return badSubcommand("faceharvest dlq: want list or redrive\n")
}

// badSubcommand is a subcommand that does not exist: its message is
// printed as it is, exit 2.
type badSubcommand string

func (b badSubcommand) Error() string { return string(b) }

// exitCode says how the subcommand name ended: 0, 3 for errNotFound, 2
// for bad usage, else 1, printing why.
func exitCode(env Env, name string, err error) int {
	var bad badSubcommand
	switch {
	case err == nil:
		return 0
	case errors.As(err, &bad):
		fmt.Fprint(env.Stderr, string(bad))
		return 2
	case errors.Is(err, errNotFound):
		fmt.Fprintf(env.Stderr, "faceharvest %s: %v\n", name, err)
		return 3
	case errors.Is(err, config.ErrHelp), errors.Is(err, config.ErrVersion), errors.Is(err, errUsage):
		return config.ExitCode("faceharvest "+name, env.Stderr, err)
	default:
		fmt.Fprintf(env.Stderr, "faceharvest %s: %v\n", name, err)
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

// showOptions are show's and find's flags and arguments.
type showOptions struct {
	name, query                       string
	byBizNo                           bool
	svc                               ops.ServiceFlags
	st                                storeFlags
	bizNo, output, viewer, auditTopic string
	expiry                            time.Duration
	identity                          bool
	vendor                            contract.Vendor
	id                                string
}

func show(ctx context.Context, env Env, args []string, byBizNo bool) error {
	o, err := parseShow(env, args, byBizNo)
	if err != nil {
		return err
	}
	b, err := o.st.open(env.Getenv)
	if err != nil {
		return err
	}
	// The audit topic is checked before the store is read: a display that
	// cannot be recorded is not made.
	if err := bus.CheckTopics(ctx, o.svc.Kafka, o.auditTopic); err != nil {
		return fmt.Errorf("the audit topic (nothing was shown): %w", err)
	}
	w := bus.NewWriter(bus.WriterConfig{Cluster: o.svc.Kafka, Topic: o.auditTopic})
	defer w.Close()
	alog, err := audit.NewLog(audit.LogConfig{Writer: w, Via: "faceharvest", Now: env.Now})
	if err != nil {
		return err
	}
	vs, err := o.find(ctx, audit.NewStore(b))
	if err != nil {
		return err
	}
	return o.display(ctx, env, b, alog, vs)
}

func parseShow(env Env, args []string, byBizNo bool) (*showOptions, error) {
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
	o := &showOptions{name: name, byBizNo: byBizNo}
	o.svc.RegisterKafka(fs)
	o.st.register(fs)
	if byBizNo {
		fs.StringVar(&o.bizNo, "biz-no", "", "the biz_no to find (required)")
	}
	fs.StringVar(&o.output, "output", "text", "text (for people) or json (for scripts: an array of views, each with the record as stored)")
	fs.DurationVar(&o.expiry, "url-expiry", 15*time.Minute, "how long the presigned links work (at most 168h)")
	fs.StringVar(&o.viewer, "viewer", "", "who is looking (a person's name or e-mail, not a shared account): the viewer of the audit event (required)")
	fs.BoolVar(&o.identity, "identity", false, "also link the evidence document and the ID-card images, which hold or show the unmasked name and ID number (the audit event says identity_unmasked)")
	fs.StringVar(&o.auditTopic, "audit-topic", contract.DefaultAuditTopic, "topic of audit events (one per display, keyed by viewer)")
	if !byBizNo && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.query, args = args[0], args[1:] // show <vendor>:<id> [flags]
	}
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return nil, err
	}
	return o, o.validate(env.Getenv)
}

func (o *showOptions) validate(getenv func(string) string) error {
	if o.output != "text" && o.output != "json" {
		return usageErr("--output %q: want text or json", o.output)
	}
	if o.expiry <= 0 || o.expiry > 7*24*time.Hour {
		return usageErr("--url-expiry %s: want more than 0 and at most 168h", o.expiry)
	}
	if err := o.svc.Validate(getenv); err != nil {
		return err
	}
	if o.viewer = strings.TrimSpace(o.viewer); o.viewer == "" {
		return usageErr("want --viewer (or %sVIEWER): who is looking, for the audit event", config.EnvPrefix)
	}
	if o.byBizNo {
		if o.bizNo == "" {
			return usageErr("want --biz-no")
		}
		if !contract.PlainText(o.bizNo) {
			return usageErr("--biz-no: UTF-8 text without control characters (no biz_no holds one)")
		}
		o.query = "biz_no:" + o.bizNo
		return nil
	}
	if o.query == "" {
		return usageErr("want faceharvest show <vendor>:<id> [flags]")
	}
	var err error
	if o.vendor, o.id, err = audit.ParseKey(o.query); err != nil {
		return usageErr("%v", err)
	}
	return nil
}

// find reads the verifications to show: the biz_no's, or the one by id.
func (o *showOptions) find(ctx context.Context, store *audit.Store) ([]audit.Verification, error) {
	if o.byBizNo {
		vs, _, err := store.ByBizNo(ctx, o.bizNo, 0)
		switch {
		case errors.Is(err, audit.ErrMissing):
			return nil, fmt.Errorf("biz_no %q: %v (%w)", o.bizNo, err, errNotFound)
		case err != nil:
			return nil, err
		case len(vs) == 0:
			return nil, fmt.Errorf("biz_no %q: %w in the index", o.bizNo, errNotFound)
		}
		return vs, nil
	}
	one, err := store.Get(ctx, o.vendor, o.id)
	switch {
	case errors.Is(err, audit.ErrMissing):
		return nil, fmt.Errorf("%v (%w)", err, errNotFound)
	case errors.Is(err, audit.ErrNotFound):
		return nil, fmt.Errorf("%s: %w in the index", o.query, errNotFound)
	case err != nil:
		return nil, err
	}
	return []audit.Verification{one}, nil
}

// display records the display of vs, then prints it.
func (o *showOptions) display(ctx context.Context, env Env, b *objstore.S3, alog *audit.Log, vs []audit.Verification) error {
	now := env.Now()
	views := make([]audit.View, 0, len(vs))
	shown := audit.Shown{Viewer: o.viewer, Command: strings.TrimPrefix(o.name, "faceharvest "), BizNo: o.bizNo, At: now.UTC(), LinkExpiry: now.Add(o.expiry).UTC().Truncate(time.Second)}
	if !o.byBizNo {
		shown.BizNo = vs[0].Record.BizNo
	}
	for _, x := range vs {
		view, err := audit.NewView(ctx, x, b, o.expiry, now, o.identity)
		if err != nil {
			return err
		}
		views = append(views, view)
		shown.Add(view)
	}
	if err := alog.Record(ctx, shown.Event()); err != nil {
		return fmt.Errorf("recording the display (nothing was shown): %w", err)
	}
	if o.output == "json" {
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
