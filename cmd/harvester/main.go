// Command harvester turns verification events into vendor calls at the
// right moment, deadline first, and publishes what the vendors answer.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	oklog "github.com/oklog/run"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/harvester"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

type options struct {
	svc                                        ops.ServiceFlags
	megviiURL, baiduURL                        string
	megvii, baidu                              harvester.VendorLimits
	shutdownGrace, startupWait                 time.Duration
	maxUnregistered                            int
	run                                        harvester.Config // cluster, logger and the engine's callers, store and metrics set at start
	s3                                         objstore.S3Config
	createBucket                               bool
	megviiKey, megviiSecret, baiduKey, baiduSK config.Secret
}

func parse(args []string, getenv func(string) string, help io.Writer) (*options, error) {
	fs := config.NewFlagSet("harvester", `Consumes verification events as a consumer group and harvests every verification inside
its vendor window: Megvii get_result once a final callback arrived (or once, just before the
window closes, without one); Baidu getall, detail and media/query once the user finished (or
after a poll past the token window). Due work runs deadline first within each vendor's
concurrency and QPS limits, which adapt to the vendors' rate-limit answers. Pending
verifications live in a compacted state topic co-partitioned with the events topic, so a
restart, a rebalance or a SIGKILL loses none. Every vendor answer is kept byte for byte: a large
one (and every Megvii get_result answer) is stored in the object store first, under a key ending
with its SHA-256, and the raw topic carries its reference (with the bytes too when small); every
verification ends with exactly one terminal envelope there.`)
	o := &options{run: harvester.DefaultRunConfig(), shutdownGrace: 90 * time.Second, startupWait: 2 * time.Minute}
	r, e := &o.run, &o.run.Engine
	p := &e.Policy
	o.megvii, o.baidu = e.Limits[contract.Megvii], e.Limits[contract.Baidu]
	o.maxUnregistered = e.MaxUnregistered
	o.svc.Register(fs, "127.0.0.1:9102")
	fs.StringVar(&r.GroupID, "group-id", "faceharvest-harvester", "Kafka consumer group")
	fs.StringVar(&r.EventsTopic, "events-topic", contract.DefaultEventsTopic, "topic of verification events")
	fs.StringVar(&r.StateTopic, "state-topic", "faceid.harvester.state", "compacted topic of pending verifications; as many partitions as the events topic")
	fs.StringVar(&r.RawTopic, "raw-topic", contract.DefaultRawTopic, "topic of raw vendor answers (inline when small, else by reference to the object store) and terminal envelopes")
	fs.StringVar(&r.DLQTopic, "dlq-topic", contract.DefaultDLQTopic, "topic of undecodable events")
	fs.StringVar(&o.megviiURL, "megvii-base-url", megvii.DefaultBaseURL, "Megvii API root")
	fs.StringVar(&o.baiduURL, "baidu-base-url", baidu.DefaultBaseURL, "Baidu API root")
	fs.DurationVar(&p.MegviiRetention, "megvii-retention", p.MegviiRetention, "how long get_result answers after the token is issued (document 000: one day; 002: three months)")
	fs.IntVar(&p.MegviiCallBudget, "megvii-call-budget", p.MegviiCallBudget, "get_result calls that return data per verification (document 000: one)")
	fs.DurationVar(&p.MegviiLastChance, "megvii-last-chance", p.MegviiLastChance, "without a final callback, call get_result this long before the window closes")
	fs.DurationVar(&p.BaiduTokenWindow, "baidu-token-window", p.BaiduTokenWindow, "how long a verify_token can start a verification")
	fs.DurationVar(&p.BaiduRetention, "baidu-retention", p.BaiduRetention, "how long Baidu's query endpoints answer after verification")
	fs.DurationVar(&p.BaiduMediaRetention, "baidu-media-retention", p.BaiduMediaRetention, "how long Baidu's media URLs work after verification")
	fs.DurationVar(&p.BaiduPollDelay, "baidu-poll-delay", p.BaiduPollDelay, "without a completion, poll getall this long after the token window")
	fs.BoolVar(&p.BaiduDetail, "baidu-detail", p.BaiduDetail, "also call result/detail (ID-card images)")
	fs.BoolVar(&p.BaiduMedia, "baidu-media", p.BaiduMedia, "also call result/media/query (videos, images); video recording is off unless Baidu enabled it for the account (001: 视频录制功能默认不开启), and the record then says media_recording not_recorded; false skips the call (not_queried)")
	fs.DurationVar(&p.BaiduQPSLimitGrace, "baidu-qps-limit-grace", p.BaiduQPSLimitGrace, "error 18 (QPS limit) is rate limiting at first; answered this long for a verification without another answer, it is an account fault (001: persistent 18 means the paid APIs are not enabled or their free quota is spent): the vendor is paused for --account-pause and the fault counted; 0 never")
	fs.IntVar(&p.BaiduTokenInvalidFaults, "baidu-token-invalid-faults", p.BaiduTokenInvalidFaults, "\"Token无效或者已过期\" inside a token's data window is what Baidu also answers for an access_token of another application (001's FAQ): after a retry with a fresh access_token it is retried later for that verification; this many verifications in a row answered so, with no other Baidu answer between, are an account fault (vendor paused, fault counted, verifications kept); 0: never")
	fs.DurationVar(&p.RetryMin, "retry-min", p.RetryMin, "first retry after a retryable failure, doubling")
	fs.DurationVar(&p.RetryMax, "retry-max", p.RetryMax, "longest pause between retries")
	fs.IntVar(&o.megvii.Concurrency, "megvii-concurrency", o.megvii.Concurrency, "Megvii calls in flight at most (adapts down on CONCURRENCY_LIMIT_EXCEEDED)")
	fs.Float64Var(&o.megvii.QPS, "megvii-qps", o.megvii.QPS, "Megvii calls per second at most; 0 = unlimited")
	fs.IntVar(&o.baidu.Concurrency, "baidu-concurrency", o.baidu.Concurrency, "Baidu calls in flight at most (adapts down on errors 4 and 18)")
	fs.Float64Var(&o.baidu.QPS, "baidu-qps", o.baidu.QPS, "Baidu calls per second at most; 0 = unlimited")
	fs.DurationVar(&e.AccountWait, "account-pause", e.AccountWait, "pause of a vendor after a credential, authorization or quota fault")
	fs.DurationVar(&e.CallTimeout, "call-timeout", e.CallTimeout, "one vendor call at most, and the only timeout of a call (a Megvii answer cut short after it was served spends the call budget)")
	fs.DurationVar(&e.IntentGrace, "intent-grace", e.IntentGrace, "a one-shot call found unsettled at restore is resolved (raw topic, then the bucket, searched for its answer) once this old; keep it above --call-timeout plus storing and publishing the answer")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", o.shutdownGrace, "on SIGTERM, how long calls in flight may take to finish and be recorded")
	fs.DurationVar(&e.ClosedRetention, "closed-retention", e.ClosedRetention, "how long a closed verification's marker stays in the state topic; keep it above the events topic's retention")
	fs.IntVar(&e.InlineMax, "raw-inline-max-bytes", e.InlineMax, "answers below this many bytes travel inline on the raw topic (also stored when one-shot: Megvii get_result); larger ones are stored in the object store and the raw topic carries their reference (key, size, SHA-256)")
	fs.IntVar(&r.MinRawMessageBytes, "min-raw-message-bytes", r.MinRawMessageBytes, "refuse to start unless the raw topic's max.message.bytes is at least this (the largest raw message is an inline answer under --raw-inline-max-bytes with its headers); -1 skips the check")
	fs.IntVar(&o.maxUnregistered, "max-unregistered", o.maxUnregistered, "Baidu verifications known only from a landing (no token registration yet) kept per process; none is called until its registration arrives, past the limit new ones are dropped and counted (0 keeps none)")
	fs.DurationVar(&r.SessionTimeout, "session-timeout", r.SessionTimeout, "consumer-group session timeout: how soon a dead replica's partitions move to another")
	fs.DurationVar(&r.RebalanceTimeout, "rebalance-timeout", r.RebalanceTimeout, "consumer-group rebalance timeout")
	fs.DurationVar(&o.startupWait, "startup-wait", o.startupWait, "how long to wait at start for the brokers, topics and bucket")
	s3f := objstore.RegisterFlags(fs, objstore.FlagsFor{Writes: true, Bucket: "bucket the vendors' answers are stored in before their reference is published (the archiver's, which reads them)",
		Credentials: "The harvester writes answers (raw/v1/...), lists that prefix and reads objects' attributes there and under index/v1/by-id/ (the evidence index: an event of a verification already archived starts nothing)."})
	fs.Secret("FACEHARVEST_MEGVII_API_KEY", "Megvii api_key (required)")
	fs.Secret("FACEHARVEST_MEGVII_API_SECRET", "Megvii api_secret; with a comma-separated list, the first is used for calls (required)")
	fs.Secret("FACEHARVEST_BAIDU_API_KEY", "Baidu API Key (client_id) (required)")
	fs.Secret("FACEHARVEST_BAIDU_SECRET_KEY", "Baidu Secret Key (client_secret) (required)")
	if err := fs.Parse(args, getenv, help); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if o.maxUnregistered < 0 {
		return nil, fmt.Errorf("--max-unregistered must be at least 0")
	}
	if e.InlineMax <= 0 {
		return nil, fmt.Errorf("--raw-inline-max-bytes must be positive")
	}
	if r.MinRawMessageBytes >= 0 && r.MinRawMessageBytes < e.InlineMax+rawHeaderRoom {
		return nil, fmt.Errorf("--min-raw-message-bytes (%d) must leave room for an inline answer of --raw-inline-max-bytes (%d) and its headers (%d bytes)", r.MinRawMessageBytes, e.InlineMax, rawHeaderRoom)
	}
	if e.IntentGrace <= e.CallTimeout {
		return nil, fmt.Errorf("--intent-grace (%s) must be above --call-timeout (%s): a restored call is resolved only once the previous owner's call and its record are over", e.IntentGrace, e.CallTimeout)
	}
	e.MaxUnregistered = o.maxUnregistered
	e.Limits = map[contract.Vendor]harvester.VendorLimits{contract.Megvii: o.megvii, contract.Baidu: o.baidu}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		env string
		dst *config.Secret
	}{{"FACEHARVEST_MEGVII_API_KEY", &o.megviiKey}, {"FACEHARVEST_MEGVII_API_SECRET", &o.megviiSecret},
		{"FACEHARVEST_BAIDU_API_KEY", &o.baiduKey}, {"FACEHARVEST_BAIDU_SECRET_KEY", &o.baiduSK}} {
		l, err := config.LoadSecretList(getenv, nil, s.env)
		if err != nil {
			return nil, err
		}
		if len(l) == 0 {
			return nil, fmt.Errorf("%s (or %s_FILE) must be set", s.env, s.env)
		}
		*s.dst = l[0]
	}
	var err error
	if o.s3, err = s3f.Config(getenv); err != nil {
		return nil, err
	}
	o.createBucket = s3f.CreateBucket()
	if err = o.svc.Validate(getenv); err != nil {
		return nil, err
	}
	return o, nil
}

// rawHeaderRoom is what a raw message needs beside an inline answer: its
// headers and the record's framing.
const rawHeaderRoom = 16 << 10

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parse(args, getenv, stdout)
	if err != nil {
		return config.ExitCode("harvester", stderr, err)
	}
	log := o.svc.Logger(stderr)
	kc := o.svc.Kafka
	mc, err := megvii.New(megvii.Config{BaseURL: o.megviiURL, APIKey: o.megviiKey, APISecret: o.megviiSecret, CallTimeout: o.run.Engine.CallTimeout})
	if err != nil {
		fmt.Fprintf(stderr, "harvester: %v\n", err)
		return 2
	}
	bc, err := baidu.New(baidu.Config{BaseURL: o.baiduURL, APIKey: o.baiduKey, SecretKey: o.baiduSK})
	if err != nil {
		fmt.Fprintf(stderr, "harvester: %v\n", err)
		return 2
	}
	reg := ops.NewRegistry()
	s3b, err := objstore.NewS3(o.s3)
	if err != nil {
		fmt.Fprintf(stderr, "harvester: %v\n", err)
		return 2
	}
	mln, err := net.Listen("tcp", o.svc.MetricsAddr)
	if err != nil {
		fmt.Fprintf(stderr, "harvester: --metrics-addr: %v\n", err)
		return 1
	}
	topics := []string{o.run.EventsTopic, o.run.StateTopic, o.run.RawTopic, o.run.DLQTopic}
	ready := func(ctx context.Context) error { return bus.CheckTopics(ctx, kc, topics...) }
	var running atomic.Pointer[harvester.Harvester]
	started := func(context.Context) error {
		if hv := running.Load(); hv != nil {
			return hv.Started()
		}
		return errors.New("waiting for Kafka and the topics")
	}
	opsSrv := ops.NewServer(ops.Mux(reg, o.svc.Readiness(ops.Check{Name: "kafka", Fn: ready}, ops.Check{Name: "store", Fn: s3b.Ready}, ops.Check{Name: "started", Fn: started})), log)
	rc := o.run
	rc.Kafka, rc.Logger = kc, log
	rc.Engine.Metrics = harvester.NewMetrics(reg) // once: a retry must not register them again
	rc.Engine.Answers = objstore.Instrument(s3b, reg, "harvester")
	rc.Engine.Callers = map[contract.Vendor]harvester.Caller{contract.Megvii: harvester.MegviiCaller{Client: mc}, contract.Baidu: harvester.BaiduCaller{Client: bc}}

	// harvest waits for Kafka and the topics, then consumes until its
	// context ends; calls in flight are then recorded within --shutdown-grace.
	harvest := func(ctx context.Context) error {
		var h *harvester.Harvester
		err := ops.Await(ctx, log, o.startupWait, "Kafka, the topics and the bucket", func(sctx context.Context) error {
			if err := ready(sctx); err != nil {
				return err // Kafka first: the store is of no use without it
			}
			if err := s3b.Start(sctx, o.createBucket); err != nil {
				return err
			}
			var err error
			h, err = harvester.New(sctx, rc)
			return err
		})
		if err != nil {
			return err
		}
		for _, w := range h.Writers() {
			reg.MustRegister(bus.NewWriterCollector(w, "harvester"))
		}
		running.Store(h)
		log.Info("harvester started", "group", rc.GroupID, "events", rc.EventsTopic, "state", rc.StateTopic, "raw", rc.RawTopic, "bucket", o.s3.Bucket)
		return h.Run(ctx)
	}

	var g oklog.Group
	g.Add(ops.SignalActor(os.Interrupt, syscall.SIGTERM))
	work, stop, drained := ops.ContextActor(harvest, o.shutdownGrace, func() {
		log.Warn("shutdown grace exceeded; unfinished calls are settled by whoever restores their state")
	})
	g.Add(work, stop)
	g.Add(ops.ServeActor(opsSrv, mln, time.Second, drained)) // last: its stop waits for the drain
	return ops.ExitCode(log, "harvester", g.Run())
}
