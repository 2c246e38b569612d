// Command ledger is the evidence log's integrator: it consumes the leaves
// topic that archivers append final index entries to, extends the tiled
// Merkle log in the bucket and signs a checkpoint per batch. `ledger keygen`
// makes the log's key pair.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	oklog "github.com/oklog/run"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ledger"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

// SigningKeyEnv holds the log's signing key (or, with _FILE, a file of it).
const SigningKeyEnv = config.EnvPrefix + "LEDGER_SIGNING_KEY"

type options struct {
	svc              ops.ServiceFlags
	s3               objstore.S3Config
	createBucket     bool
	startupWait      time.Duration
	prefix           string
	checkpointsTopic string
	signingKey       config.Secret
	tsaCert          string
	in               ledger.IntegratorConfig
}

func parse(args []string, getenv func(string) string, help io.Writer) (*options, error) {
	fs := config.NewFlagSet("ledger", `The evidence log's integrator. Archivers append every final index entry (index/v1/by-id/...)
to the leaves topic (one partition: its order is the log's) once the entry is stored. This
process, one active member of its consumer group, reads each entry from the bucket, makes its bytes
a leaf of an append-only Merkle tree (RFC 6962 hashing) stored in the bucket under --prefix as a
static tiled log (C2SP tlog-tiles: tile/<L>/<N>, tile/entries/<N>, checkpoint), and writes a
checkpoint signed with the log's Ed25519 key (C2SP signed note) per batch: at least every
--batch-size leaves and --checkpoint-interval after a leaf arrives. Each batch is first claimed
under <prefix>sequence/<old size> with a conditional create, so a crash anywhere resumes with the
same leaves and a second integrator can never fork the log; an entry appended twice is one leaf.
Offsets are committed only after the batch's checkpoint is stored and published. With --tsa-url
each checkpoint is also time-stamped by an RFC 3161 authority (the token stored beside it); an
authority that fails is counted and the next checkpoint tried: the log never waits on it.

  ledger keygen --origin NAME   prints a new signing key (keep it secret) and its public key`)
	o := &options{in: ledger.DefaultIntegratorConfig(), startupWait: 2 * time.Minute}
	in := &o.in
	o.svc.Register(fs, "127.0.0.1:9105")
	fs.StringVar(&in.GroupID, "group-id", in.GroupID, "Kafka consumer group (one member integrates: the leaves topic has one partition)")
	fs.StringVar(&in.LeavesTopic, "ledger-topic", in.LeavesTopic, "topic the archivers append leaves to (one partition; the archivers' --ledger-topic)")
	fs.StringVar(&o.checkpointsTopic, "ledger-checkpoints-topic", contract.DefaultLedgerCheckpointsTopic, "topic each signed checkpoint is published to (empty: none)")
	s3f := objstore.RegisterFlags(fs, objstore.FlagsFor{Writes: true, Bucket: "bucket of the index and the log",
		Credentials: "Needs s3:GetObject, s3:PutObject and s3:ListBucket on the bucket"})
	fs.StringVar(&o.prefix, "prefix", ledger.DefaultPrefix, "where the log lives in the bucket")
	fs.IntVar(&in.BatchSize, "batch-size", in.BatchSize, "most leaves per checkpoint")
	fs.DurationVar(&in.Interval, "checkpoint-interval", in.Interval, "longest a leaf waits for its checkpoint")
	fs.StringVar(&in.TSA.URL, "tsa-url", "", "RFC 3161 time-stamping authority: each checkpoint's SHA-256 is time-stamped and the token stored at <prefix>timestamp/<tree size> (empty: none)")
	fs.DurationVar(&in.TSATimeout, "tsa-timeout", in.TSATimeout, "longest wait for one time stamp (a checkpoint the TSA fails is published unstamped and counted)")
	fs.StringVar(&o.tsaCert, "tsa-cert", "", "PEM file of the TSA's certificate or root: each token is checked against it before it is stored")
	fs.DurationVar(&o.startupWait, "startup-wait", o.startupWait, "how long to wait at start for the brokers, topics and bucket")
	fs.DurationVar(&in.SessionTimeout, "session-timeout", in.SessionTimeout, "consumer-group session timeout (a standby takes over this long after the active member dies)")
	fs.DurationVar(&in.RebalanceTimeout, "rebalance-timeout", in.RebalanceTimeout, "consumer-group rebalance timeout")
	fs.Secret(SigningKeyEnv, "the log's Ed25519 signing key in signed-note form (PRIVATE+KEY+<origin>+<hash>+<key>, from `ledger keygen`); the origin names the log in its checkpoints")
	if err := fs.Parse(args, getenv, help); err != nil {
		return nil, err
	}
	o.createBucket = s3f.CreateBucket()
	var err error
	if o.s3, err = s3f.Config(getenv); err != nil {
		return nil, err
	}
	if in.BatchSize <= 0 || in.Interval <= 0 {
		return nil, errors.New("--batch-size and --checkpoint-interval must be positive")
	}
	if !strings.HasSuffix(o.prefix, "/") {
		return nil, errors.New("--prefix must end with /")
	}
	if in.TSA.URL != "" && !strings.HasPrefix(in.TSA.URL, "https://") && !strings.HasPrefix(in.TSA.URL, "http://") {
		return nil, errors.New("--tsa-url must be an http(s) URL")
	}
	if o.tsaCert != "" {
		if in.TSA.URL == "" {
			return nil, errors.New("--tsa-cert needs --tsa-url")
		}
		if in.TSACertificates, err = ledger.LoadTSACertificates(o.tsaCert); err != nil {
			return nil, fmt.Errorf("--tsa-cert: %w", err)
		}
	}
	if o.signingKey, err = config.LoadSecret(getenv, nil, SigningKeyEnv); err != nil {
		return nil, err
	}
	if o.signingKey.Empty() {
		return nil, fmt.Errorf("%s (or %s_FILE) is required: make one with `ledger keygen`", SigningKeyEnv, SigningKeyEnv)
	}
	return o, o.svc.Validate(getenv)
}

func keygen(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := config.NewFlagSet("ledger keygen", "Prints a new signing key for the log (line 1: keep it secret, give it as "+SigningKeyEnv+") and its public key (line 2: publish it; faceharvest verify --log-key takes it).")
	origin := fs.String("origin", "", "the log's name in its checkpoints, e.g. evidence.example.com/faceharvest")
	if err := fs.Parse(args, getenv, stdout); err != nil {
		return config.ExitCode("ledger keygen", stderr, err)
	}
	if *origin == "" {
		fmt.Fprintln(stderr, "ledger keygen: --origin is required")
		return 2
	}
	skey, vkey, err := ledger.GenerateKey(*origin)
	if err != nil {
		fmt.Fprintf(stderr, "ledger keygen: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "%s\n%s\n", skey, vkey)
	return 0
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "keygen" {
		return keygen(args[1:], getenv, stdout, stderr)
	}
	o, err := parse(args, getenv, stdout)
	if err != nil {
		return config.ExitCode("ledger", stderr, err)
	}
	log := o.svc.Logger(stderr)
	signer, verifier, vkey, err := ledger.KeyPair(o.signingKey.Reveal())
	if err != nil {
		fmt.Fprintf(stderr, "ledger: %s: %v\n", SigningKeyEnv, err)
		return 2
	}
	reg := ops.NewRegistry()
	s3b, err := objstore.NewS3(o.s3)
	if err != nil {
		fmt.Fprintf(stderr, "ledger: %v\n", err)
		return 2
	}
	store := objstore.Instrument(s3b, reg, "ledger")
	kc := o.svc.Kafka
	topics := []string{o.in.LeavesTopic}
	if o.checkpointsTopic != "" {
		topics = append(topics, o.checkpointsTopic)
	}
	kafkaReady := func(ctx context.Context) error { return bus.CheckTopics(ctx, kc, topics...) }
	storeReady := func(ctx context.Context) error {
		_, err := s3b.Attributes(ctx, o.prefix+"checkpoint")
		if errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		return err
	}
	metrics := ledger.NewMetrics(reg)
	mln, err := net.Listen("tcp", o.svc.MetricsAddr)
	if err != nil {
		fmt.Fprintf(stderr, "ledger: --metrics-addr: %v\n", err)
		return 1
	}
	opsSrv := ops.NewServer(ops.Mux(reg, o.svc.Readiness(ops.Check{Name: "kafka", Fn: kafkaReady}, ops.Check{Name: "store", Fn: storeReady})), log)

	integrate := func(ctx context.Context) error {
		var in *ledger.Integrator
		var cw *bus.Writer
		err := ops.Await(ctx, log, o.startupWait, "Kafka, the topics and the bucket", func(sctx context.Context) error {
			if err := s3b.CheckCredentials(sctx); err != nil {
				return err
			}
			if o.createBucket {
				if err := s3b.EnsureBucket(sctx); err != nil {
					return err
				}
			}
			if err := s3b.Check(sctx); err != nil {
				return err
			}
			if err := kafkaReady(sctx); err != nil {
				return err
			}
			if n, err := bus.PartitionCount(sctx, kc, o.in.LeavesTopic); err != nil {
				return err
			} else if n != 1 {
				log.Warn("the leaves topic should have one partition: its order is the log's", "topic", o.in.LeavesTopic, "partitions", n)
			}
			l, err := ledger.Open(sctx, ledger.Config{Bucket: store, Prefix: o.prefix, Signer: signer, Verifier: verifier})
			if err != nil {
				return err
			}
			cfg := o.in
			cfg.Kafka, cfg.Log, cfg.Store, cfg.Metrics, cfg.Logger = kc, l, store, metrics, log
			if o.checkpointsTopic != "" {
				cw = bus.NewWriter(bus.WriterConfig{Cluster: kc, Topic: o.checkpointsTopic})
				cfg.Checkpoints = cw
			}
			in, err = ledger.NewIntegrator(cfg)
			return err
		})
		if err != nil {
			return err
		}
		if cw != nil {
			defer cw.Close()
			reg.MustRegister(bus.NewWriterCollector(cw, "ledger"))
		}
		log.Info("ledger started", "group", o.in.GroupID, "leaves", o.in.LeavesTopic, "bucket", o.s3.Bucket, "prefix", o.prefix, "public_key", vkey, "tsa", o.in.TSA.URL)
		return in.Run(ctx)
	}

	var g oklog.Group
	g.Add(ops.SignalActor(os.Interrupt, syscall.SIGTERM))
	work, stop, drained := ops.ContextActor(integrate, 0, nil)
	g.Add(work, stop)
	g.Add(ops.ServeActor(opsSrv, mln, time.Second, drained))
	return ops.ExitCode(log, "ledger", g.Run())
}
