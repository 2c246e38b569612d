// Command archiver stores the evidence of every harvested verification in
// S3-compatible storage and publishes one normalized record per verification.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	oklog "github.com/oklog/run"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

type options struct {
	svc          ops.ServiceFlags
	s3           objstore.S3Config
	createBucket bool
	startupWait  time.Duration
	mediaCIDRs   string
	dlqPayload   string
	ledgerTopic  string
	media        archiver.MediaPolicy
	cfg          archiver.Config    // store, client, metrics and logger set at start
	run          archiver.RunConfig // cluster and logger set at start
}

func parse(args []string, getenv func(string) string, help io.Writer) (*options, error) {
	fs := config.NewFlagSet("archiver", `Consumes the raw topic as a consumer group. Every image in a vendor answer (Megvii data URIs,
Baidu base64) and every media link (Baidu videos and images, downloaded streaming through a
spool file) is stored in the object store under a content-addressed key
<vendor>/<yyyy>/<mm>/<dd>/media/<sha256>.<ext>; each answer with links, with its blobs replaced
by object references, is stored under <vendor>/responses/ (answers without links are kept in memory,
their offsets uncommitted, until their record is published); each verification's evidence document under
<vendor>/<yyyy>/<mm>/<dd>/evidence/<id>.json, the record beside it under records/<id>.json and
index entries naming both and the media, index/v1/by-biz-no/<sha256 of biz_no>/<vendor>/<id>.json
then index/v1/by-id/<vendor>/<id>.json. Then one normalized record per
verification (schema faceharvest.record.v1) goes to the results topic. Keys that exist are not
written again, so re-processing after a crash writes nothing new and publishes the same record with
the same ce_id; a verification harvested again later (a replayed callback or landing) publishes its
stored record again and keeps the new evidence beside the first. Store outages and an unusable
spool directory are retried without end (the latter fails /readyz); nothing is skipped.`)
	o := &options{cfg: archiver.DefaultConfig(), run: archiver.DefaultRunConfig(), startupWait: 2 * time.Minute}
	c, r := &o.cfg, &o.run
	o.svc.Register(fs, "127.0.0.1:9103")
	fs.StringVar(&r.GroupID, "group-id", r.GroupID, "Kafka consumer group")
	fs.StringVar(&r.RawTopic, "raw-topic", r.RawTopic, "topic of raw vendor answers and terminal envelopes")
	fs.StringVar(&r.ResultsTopic, "results-topic", r.ResultsTopic, "topic of normalized records")
	fs.StringVar(&r.DLQTopic, "dlq-topic", r.DLQTopic, "topic of raw messages that cannot be archived, with the reason in a header")
	fs.StringVar(&o.ledgerTopic, "ledger-topic", contract.DefaultLedgerLeavesTopic, "topic (one partition) each final index entry is appended to as a leaf of the evidence log, before its record is published (empty: no ledger)")
	s3f := objstore.RegisterFlags(fs, objstore.FlagsFor{Writes: true, Bucket: "bucket for media and evidence documents",
		Credentials: "With no credentials at all nothing is sent: the archiver refuses to start and /readyz fails"})
	fs.StringVar(&c.SpoolDir, "spool-dir", "", "directory for downloads in progress (a 200 MB video is spooled here, never held in memory); empty: the system's temporary directory ($TMPDIR or /tmp)")
	fs.Int64Var(&c.MaxImageBytes, "max-image-bytes", c.MaxImageBytes, "largest embedded image accepted, in bytes")
	fs.Int64Var(&c.MaxMediaBytes, "max-media-bytes", c.MaxMediaBytes, "largest downloaded image or video accepted, in bytes")
	fs.IntVar(&c.DownloadTries, "download-tries", c.DownloadTries, "tries per media link on transport errors, 5xx and 429 (403/404/410 mean the link expired)")
	fs.DurationVar(&c.DownloadTimeout, "download-timeout", c.DownloadTimeout, "one download at most")
	fs.IntVar(&c.MediaParallel, "media-parallel", c.MediaParallel, "media items of one answer fetched and stored at once")
	fs.StringVar(&o.mediaCIDRs, "media-allowed-cidrs", "", "comma-separated CIDR prefixes (or addresses) that media downloads may connect to although they are not public. By default every loopback, private (RFC 1918, fc00::/7), link-local, metadata (169.254.169.254, fd00:ec2::254), CGNAT, multicast and reserved address is refused; the address is checked at every dial (so redirects and DNS answers are covered) and a refused link is recorded as refused. Downloads use no proxy, send no Referer and follow at most 3 redirects. Development: 127.0.0.0/8,::1")
	fs.BoolVar(&o.media.AllowHTTP, "media-allow-http", false, "also download plain http media links (default: https only; development simulators serve http)")
	fs.StringVar(&o.dlqPayload, "dlq-payload", string(r.DLQPayload), "where a dead letter's payload goes: inline (in the dead letter, for the DLQ topic's retention) or store (in the bucket under dlq/<topic>/<partition>/<offset>; the dead letter's value becomes a reference (key, size, SHA-256), its key also in the faceharvest_dlq_payload_ref header: raw answers carry ID numbers and images, which then stay in the store under its encryption and retention instead of the topic)")
	fs.IntVar(&r.Workers, "workers", r.Workers, "verifications archived concurrently per assigned partition")
	fs.DurationVar(&r.HoldLimit, "hold-limit", r.HoldLimit, "an answer without links is kept in memory, its offset uncommitted, until its record is published; after this long without its terminal its part is stored instead")
	fs.BoolVar(&c.Unmask, "unmask-identity", c.Unmask, "publish full names and ID numbers in records (default: masked; the evidence document always has them)")
	fs.DurationVar(&r.DrainTimeout, "shutdown-grace", r.DrainTimeout, "on SIGTERM or a rebalance, how long verifications being archived may take to finish (keep it below --rebalance-timeout)")
	fs.DurationVar(&o.startupWait, "startup-wait", o.startupWait, "how long to wait at start for the brokers, topics and bucket")
	fs.DurationVar(&r.SessionTimeout, "session-timeout", r.SessionTimeout, "consumer-group session timeout")
	fs.DurationVar(&r.RebalanceTimeout, "rebalance-timeout", r.RebalanceTimeout, "consumer-group rebalance timeout")
	if err := fs.Parse(args, getenv, help); err != nil {
		return nil, err
	}
	var err error
	if o.s3, err = s3f.Config(getenv); err != nil {
		return nil, err
	}
	o.createBucket = s3f.CreateBucket()
	if r.DLQPayload, err = bus.ParseDeadLetterPayloadMode(o.dlqPayload); err != nil {
		return nil, fmt.Errorf("--dlq-payload: %w", err)
	}
	if o.media.AllowedCIDRs, err = archiver.ParseCIDRs(o.mediaCIDRs); err != nil {
		return nil, fmt.Errorf("--media-allowed-cidrs: %w", err)
	}
	if c.SpoolDir == "" { // as --help says
		c.SpoolDir = os.TempDir()
	}
	if err := errors.Join(flagErrors(c.Validate()), flagErrors(r.Validate())); err != nil {
		return nil, err
	}
	if st, err := os.Stat(c.SpoolDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--spool-dir %q is not a directory", c.SpoolDir)
	}
	return o, o.svc.Validate(getenv)
}

// flagErrors names the flags of the settings err refuses (a
// *archiver.ConfigError); settings without a flag keep their field's name.
func flagErrors(err error) error {
	var ce *archiver.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	settingFlags := map[string]string{
		"GroupID": "--group-id", "RawTopic": "--raw-topic", "ResultsTopic": "--results-topic", "DLQTopic": "--dlq-topic",
		"SpoolDir": "--spool-dir", "MaxImageBytes": "--max-image-bytes", "MaxMediaBytes": "--max-media-bytes",
		"DownloadTries": "--download-tries", "DownloadTimeout": "--download-timeout", "MediaParallel": "--media-parallel",
		"DLQPayload": "--dlq-payload", "Workers": "--workers", "HoldLimit": "--hold-limit", "DrainTimeout": "--shutdown-grace",
		"SessionTimeout": "--session-timeout", "RebalanceTimeout": "--rebalance-timeout",
	}
	var errs []error
	for _, s := range ce.Settings {
		name := s.Field
		if f, ok := settingFlags[name]; ok {
			name = f
		}
		errs = append(errs, fmt.Errorf("%s %s", name, s.Problem))
	}
	return errors.Join(errs...)
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parse(args, getenv, stdout)
	if err != nil {
		return config.ExitCode("archiver", stderr, err)
	}
	log := o.svc.Logger(stderr)
	reg := ops.NewRegistry()
	s3b, err := objstore.NewS3(o.s3)
	if err != nil {
		fmt.Fprintf(stderr, "archiver: %v\n", err)
		return 2
	}
	store := objstore.Instrument(s3b, reg, "archiver")
	kc := o.svc.Kafka
	kafkaReady := func(ctx context.Context) error {
		topics := []string{o.run.RawTopic, o.run.ResultsTopic, o.run.DLQTopic}
		if o.ledgerTopic != "" {
			topics = append(topics, o.ledgerTopic)
		}
		return bus.CheckTopics(ctx, kc, topics...)
	}
	cfg := o.cfg
	cfg.Store, cfg.HTTP, cfg.Metrics, cfg.Logger = store, archiver.NewMediaClient(o.media), archiver.NewMetrics(reg), log
	if o.ledgerTopic != "" {
		lw := bus.NewWriter(bus.WriterConfig{Cluster: kc, Topic: o.ledgerTopic})
		defer lw.Close()
		reg.MustRegister(bus.NewWriterCollector(lw, "archiver"))
		cfg.Ledger = lw
	}
	a, err := archiver.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "archiver: %v\n", err)
		return 2
	}
	mln, err := net.Listen("tcp", o.svc.MetricsAddr)
	if err != nil {
		fmt.Fprintf(stderr, "archiver: --metrics-addr: %v\n", err)
		return 1
	}
	opsSrv := ops.NewServer(ops.Mux(reg, o.svc.Readiness(ops.Check{Name: "kafka", Fn: kafkaReady}, ops.Check{Name: "store", Fn: s3b.Ready},
		ops.Check{Name: "spool", Fn: a.Ready})), log)

	// archive waits for Kafka, the topics and the bucket, then consumes until
	// its context ends; the runner drains within --shutdown-grace itself.
	archive := func(ctx context.Context) error {
		var r *archiver.Runner
		err := ops.Await(ctx, log, o.startupWait, "Kafka, the topics and the bucket", func(sctx context.Context) error {
			if err := s3b.Start(sctx, o.createBucket); err != nil {
				return err
			}
			var err error
			rc := o.run
			rc.Kafka, rc.Logger = kc, log
			r, err = archiver.NewRunner(sctx, rc, a)
			return err
		})
		if err != nil {
			return err
		}
		for _, w := range r.Writers() {
			reg.MustRegister(bus.NewWriterCollector(w, "archiver"))
		}
		log.Info("archiver started", "group", o.run.GroupID, "raw", o.run.RawTopic, "results", o.run.ResultsTopic, "bucket", o.s3.Bucket)
		return r.Run(ctx)
	}

	var g oklog.Group
	g.Add(ops.SignalActor(os.Interrupt, syscall.SIGTERM))
	work, stop, drained := ops.ContextActor(archive, 0, nil)
	g.Add(work, stop)
	g.Add(ops.ServeActor(opsSrv, mln, time.Second, drained)) // last: its stop waits for the drain
	return ops.ExitCode(log, "archiver", g.Run())
}
