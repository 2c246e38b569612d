// Command ingest is faceharvest's front door: Megvii callbacks, Baidu
// completion redirects and token registrations become events on Kafka,
// answered only once the broker acknowledged them.
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

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

type options struct {
	svc                          ops.ServiceFlags
	listen, topic                string
	shutdownGrace, shutdownDelay time.Duration
	writer                       bus.WriterConfig // Cluster and Topic set at start
	cfg                          ingest.Config
}

func parse(args []string, getenv func(string) string, help io.Writer) (*options, error) {
	fs := config.NewFlagSet("ingest", `faceharvest's front door. Serves:
  POST /v1/callbacks/megvii          Megvii notify_url and return_url (form or JSON data + sign)
  GET  /v1/callbacks/baidu/success   Baidu H5 success landing (?verify_token=...&sig=..., signed)
  GET  /v1/callbacks/baidu/failure   Baidu H5 failure landing (signed)
  POST /v1/tokens                    token registration by the customer's back end (Bearer token);
                                     each Baidu entry is answered its signed success_url and
                                     failure_url, the pages to put into Baidu's H5 URL
A landing whose sig is missing or wrong (HMAC-SHA256 with a landing key over the page kind
and the verify_token) is answered 401 and publishes nothing; HEAD never publishes.
Each becomes an event on the events topic (CloudEvents headers, key <vendor>:<id>, stable
ce_id); a request is answered 2xx only after the broker acknowledged it with acks=all,
and 503 with Retry-After when it did not in time (the event may have been stored: retrying
is safe, the ce_id is stable) or when --max-inflight requests are already being served.`)
	o := &options{cfg: ingest.DefaultConfig(), writer: bus.DefaultWriterConfig(), shutdownGrace: 20 * time.Second}
	c := &o.cfg
	o.svc.Register(fs, "127.0.0.1:9101")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8028", "address for callbacks and the token API (Megvii calls only ports 443, 5000, 16003, 8883 and 8028)")
	fs.StringVar(&c.PublicURL, "public-url", "", "ingest's external base URL, e.g. https://kyc.example.com: the signed Baidu landing URLs start with it (required)")
	fs.StringVar(&o.topic, "events-topic", contract.DefaultEventsTopic, "topic events are published to")
	fs.DurationVar(&c.PublishTimeout, "publish-timeout", c.PublishTimeout, "how long a request waits for the broker's acknowledgement before answering 503 (requests starting within 10 ms share one deadline)")
	fs.DurationVar(&c.RetryAfter, "retry-after", c.RetryAfter, "Retry-After sent with 503 answers")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest request body accepted (413 beyond)")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most token registrations in one request")
	fs.IntVar(&c.MaxInFlight, "max-inflight", c.MaxInFlight, "most requests served at once; beyond, 503 with Retry-After at once (memory held by bodies is at most this times --max-body-bytes)")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "largest request line and headers accepted (431 beyond)")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "how long a client may take to send the request line and headers")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "how long a client may take to send the whole request, body included")
	fs.DurationVar(&c.MaxTokenAge, "max-token-age", c.MaxTokenAge, "oldest issued_at accepted by the token API")
	fs.DurationVar(&c.MaxClockSkew, "max-clock-skew", c.MaxClockSkew, "how far in the future an issued_at may be")
	fs.StringVar(&c.BaiduSuccessRedirect, "baidu-success-redirect", "", "page the browser is sent to after a Baidu success landing (empty: a short page)")
	fs.StringVar(&c.BaiduFailureRedirect, "baidu-failure-redirect", "", "page the browser is sent to after a Baidu failure landing (empty: a short page)")
	fs.DurationVar(&o.writer.BatchTimeout, "kafka-batch-timeout", o.writer.BatchTimeout, "how long a partial batch waits for concurrent requests to join it")
	fs.IntVar(&o.writer.BatchSize, "kafka-batch-size", o.writer.BatchSize, "most messages in one produce batch")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, keep accepting and serving requests this long while /readyz answers 503 (and answers close their connections), so that endpoints, proxies and load balancers stop routing to this process first; then stop accepting and drain (Kubernetes: about 10 s; the pod's termination grace must exceed it plus --shutdown-grace)")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", o.shutdownGrace, "on SIGTERM, after --shutdown-delay, how long in-flight requests may take to finish")
	fs.Secret("FACEHARVEST_MEGVII_API_SECRET", "Megvii API secret(s) that sign callbacks; comma-separated to accept several during rotation (required)")
	fs.Secret("FACEHARVEST_INGEST_TOKENS", "bearer tokens accepted by POST /v1/tokens, comma-separated (required)")
	fs.Secret("FACEHARVEST_LANDING_KEY", fmt.Sprintf("keys (at least %d bytes each) that sign Baidu landing URLs; comma-separated for rotation: the first signs, any verifies (required)", ingest.MinLandingKeyLen))
	if err := fs.Parse(args, getenv, help); err != nil {
		return nil, err
	}
	var err error
	if c.MegviiSecrets, err = config.LoadSecretList(getenv, nil, "FACEHARVEST_MEGVII_API_SECRET"); err != nil {
		return nil, err
	}
	if c.BearerTokens, err = config.LoadSecretList(getenv, nil, "FACEHARVEST_INGEST_TOKENS"); err != nil {
		return nil, err
	}
	if c.LandingKeys, err = config.LoadSecretList(getenv, nil, "FACEHARVEST_LANDING_KEY"); err != nil {
		return nil, err
	}
	// The library refuses landings without keys; the service, which always
	// serves them, refuses to start.
	if len(c.LandingKeys) == 0 {
		return nil, errors.New("no landing key to sign Baidu landing URLs with (FACEHARVEST_LANDING_KEY or FACEHARVEST_LANDING_KEY_FILE)")
	}
	if o.shutdownDelay < 0 {
		return nil, errors.New("--shutdown-delay must not be negative")
	}
	if c.PublicURL == "" {
		return nil, errors.New("--public-url (FACEHARVEST_PUBLIC_URL) is required: the signed landing URLs start with it")
	}
	if err = o.svc.Validate(getenv); err != nil {
		return nil, err
	}
	return o, nil
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parse(args, getenv, stdout)
	if err != nil {
		return config.ExitCode("ingest", stderr, err)
	}
	log := o.svc.Logger(stderr)
	kc := o.svc.Kafka
	reg := ops.NewRegistry()
	o.writer.Cluster, o.writer.Topic = kc, o.topic
	w := bus.NewWriter(o.writer)
	reg.MustRegister(bus.NewWriterCollector(w, "ingest"))
	o.cfg.Registry, o.cfg.Logger = reg, log
	srv, err := ingest.New(o.cfg, w)
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintf(stderr, "ingest: --listen: %v\n", err)
		return 1
	}
	mln, err := net.Listen("tcp", o.svc.MetricsAddr)
	if err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "ingest: --metrics-addr: %v\n", err)
		return 1
	}
	ready := o.svc.Readiness(ops.Check{Name: "kafka", Fn: func(ctx context.Context) error { return bus.CheckTopics(ctx, kc, o.topic) }})
	opsMux := ops.Mux(reg, ready)
	httpSrv := srv.HTTPServer(log)

	var g oklog.Group
	sigRun, sigStop := ops.SignalActor(os.Interrupt, syscall.SIGTERM)
	g.Add(ops.DelayStop(sigRun, sigStop, o.shutdownDelay, func() {
		ready.Drain()
		httpSrv.SetKeepAlivesEnabled(false) // clients reconnect, to pods that stay
		log.Info("draining: /readyz fails, requests are still served", "for", o.shutdownDelay.String())
	}))
	g.Add(ops.ServeActor(httpSrv, ln, o.shutdownGrace, nil))
	g.Add(ops.ServeActor(ops.NewServer(opsMux, log), mln, time.Second, nil))
	log.Info("ingest listening", "listen", ln.Addr().String(), "metrics", mln.Addr().String(), "topic", o.topic, "brokers", kc.Brokers, "tls", kc.TLS != nil, "sasl", kc.SASL != nil)
	err = g.Run()
	// Every request has been answered; flush whatever the writer still holds.
	if cerr := w.Close(); cerr != nil {
		log.Warn("closing the Kafka writer", "error", cerr.Error())
	}
	return ops.ExitCode(log, "ingest", err)
}
