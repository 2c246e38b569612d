// Command ingest is faceharvest's front door: Megvii callbacks, Baidu
// completion redirects and token registrations become events on Kafka,
// answered only once the broker acknowledged them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	oklog "github.com/oklog/run"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

type options struct {
	svc                          ops.ServiceFlags
	listen, topic                string
	megviiURL, baiduURL          string
	idemTopic                    string
	idem                         ingest.IdempotencyConfig
	megviiKey, megviiSecret      config.Secret
	baiduKey, baiduSK            config.Secret
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
  POST /v1/megvii/tokens             issue a token through Megvii get_token and register it in the
                                     same request (Bearer token; needs FACEHARVEST_MEGVII_API_KEY)
  POST /v1/baidu/tokens              issue a verify_token through Baidu verifyToken/generate (and
                                     idcard/submit or uploadMatchImage) and register it (Bearer
                                     token; needs FACEHARVEST_BAIDU_API_KEY and _SECRET_KEY)
  POST /v1/callbacks/megvii/return   the signed Megvii return_url landing of issued tokens
An issued token is answered only once its registration event was acknowledged (else 503,
and no token is given out); an Idempotency-Key header makes a retry return the same token
without a second vendor call (state kept on --idempotency-topic, read whole by every replica).
Vendor rate limits are answered 429 with Retry-After, vendor faults 502.
A landing whose sig is missing, wrong or stale is answered 401 and publishes nothing.
Each becomes an event on the events topic (CloudEvents headers, key <vendor>:<id>, stable
ce_id); a request is answered 2xx only after the broker acknowledged it with acks=all,
and 503 with Retry-After when it did not in time (the event may have been stored: retrying
is safe, the ce_id is stable). Load is shed with 503 and Retry-After before a body is read
(nothing taken) beyond --max-inflight or --max-publish-wait. Details: docs/design/ingest.md.`)
	o := &options{cfg: ingest.DefaultConfig(), writer: bus.DefaultWriterConfig(), shutdownGrace: 20 * time.Second, idem: ingest.DefaultIdempotencyConfig()}
	c := &o.cfg
	o.svc.Register(fs, "127.0.0.1:9101")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8028", "address for callbacks and the token API (Megvii calls ports 443, 5000, 16003, 8883, 8028 only)")
	fs.StringVar(&c.PublicURL, "public-url", "", "ingest's external base URL, e.g. https://kyc.example.com; landing URLs start with it (required)")
	fs.StringVar(&o.topic, "events-topic", contract.DefaultEventsTopic, "topic events are published to")
	fs.StringVar(&o.megviiURL, "megvii-base-url", megvii.DefaultBaseURL, "Megvii API root, for issuing tokens (get_token) and the H5 URL (/faceid/lite/do)")
	fs.StringVar(&o.baiduURL, "baidu-base-url", baidu.DefaultBaseURL, "Baidu API root, for issuing tokens")
	fs.StringVar(&c.BaiduH5URL, "baidu-h5-url", c.BaiduH5URL, "the Baidu H5 page issued tokens send users to")
	fs.StringVar(&o.idemTopic, "idempotency-topic", ingest.DefaultIdempotencyTopic, "compacted topic of the issuing routes' Idempotency-Key state (read whole by every replica)")
	fs.DurationVar(&o.idem.TTL, "idempotency-ttl", o.idem.TTL, "how long a retry with the same Idempotency-Key gets the same answer")
	fs.IntVar(&o.idem.MaxEntries, "idempotency-max-keys", o.idem.MaxEntries, "most Idempotency-Keys kept in memory by each replica (the oldest are forgotten first)")
	fs.DurationVar(&o.idem.ClaimTimeout, "idempotency-claim-timeout", o.idem.ClaimTimeout, "how long a request in progress holds its Idempotency-Key (409 for others) if it never finishes")
	fs.Float64Var(&c.IssueRate, "issue-rate", c.IssueRate, "issuing requests a second per caller (bearer token), sustained; beyond, 429 with Retry-After")
	fs.IntVar(&c.IssueBurst, "issue-burst", c.IssueBurst, "issuing requests each caller may make at once before --issue-rate applies")
	fs.IntVar(&c.FailedTokenBurst, "failed-token-burst", c.FailedTokenBurst, "wrong bearer tokens allowed per client address before 429, refilled per --failed-token-every")
	fs.DurationVar(&c.FailedTokenEvery, "failed-token-every", c.FailedTokenEvery, "how often one more wrong bearer token is allowed per client address")
	fs.IntVar(&c.MaxIssuing, "max-issuing", c.MaxIssuing, "most issuing requests in progress at once; beyond, 503 with Retry-After")
	fs.DurationVar(&c.VendorTimeout, "vendor-timeout", c.VendorTimeout, "bounds an issuing request's vendor calls")
	fs.DurationVar(&c.PublishTimeout, "publish-timeout", c.PublishTimeout, "how long a request waits for the broker's acknowledgement before answering 503")
	fs.DurationVar(&c.RetryAfter, "retry-after", c.RetryAfter, "Retry-After sent with 503 answers")
	fs.DurationVar(&c.MaxPublishWait, "max-publish-wait", c.MaxPublishWait, "once a publish has waited this long, shed all but Megvii callbacks (503); below --publish-timeout")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest body of the token API and the issuing routes (413 beyond)")
	fs.Int64Var(&c.MaxCallbackBytes, "max-callback-bytes", c.MaxCallbackBytes, "largest Megvii callback or return body (413 beyond; read before its signature is checked)")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "most connections open at once, idle keep-alive ones included; beyond, they wait to be accepted")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "how long a keep-alive connection may stay idle before ingest closes it")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most token registrations in one request")
	fs.IntVar(&c.MaxInFlight, "max-inflight", c.MaxInFlight, "most requests served at once; beyond, 503 with Retry-After at once")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", c.MaxHeaderBytes, "largest request line and headers accepted (431 beyond)")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", c.ReadHeaderTimeout, "how long a client may take to send the request line and headers")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "how long a client may take to send the whole request, body included")
	fs.DurationVar(&c.MaxTokenAge, "max-token-age", c.MaxTokenAge, "oldest issued_at accepted by the token API")
	fs.DurationVar(&c.MaxClockSkew, "max-clock-skew", c.MaxClockSkew, "how far in the future an issued_at may be")
	fs.DurationVar(&c.MaxLandingAge, "max-landing-age", c.MaxLandingAge, "oldest signed landing URL accepted, by the issue time signed into it (401 stale beyond)")
	fs.StringVar(&c.BaiduSuccessRedirect, "baidu-success-redirect", "", "page the browser is sent to after a Baidu success landing (empty: a short page)")
	fs.StringVar(&c.BaiduFailureRedirect, "baidu-failure-redirect", "", "page the browser is sent to after a Baidu failure landing (empty: a short page)")
	fs.DurationVar(&o.writer.BatchTimeout, "kafka-batch-timeout", o.writer.BatchTimeout, "how long a partial batch waits for concurrent requests to join it")
	fs.IntVar(&o.writer.BatchSize, "kafka-batch-size", o.writer.BatchSize, "most messages in one produce batch")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, keep serving this long while /readyz answers 503, then drain (Kubernetes: about 10 s)")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", o.shutdownGrace, "on SIGTERM, after --shutdown-delay, how long in-flight requests may take to finish")
	fs.Secret("FACEHARVEST_MEGVII_API_SECRET", "Megvii API secret(s) that sign callbacks, comma-separated during rotation (required)")
	fs.Secret("FACEHARVEST_INGEST_TOKENS", fmt.Sprintf("bearer tokens of the token API and issuing routes, comma-separated, at least %d characters (required)", ingest.MinBearerTokenLen))
	fs.Secret("FACEHARVEST_MEGVII_API_KEY", "Megvii api_key for issuing tokens (without it POST /v1/megvii/tokens answers 404)")
	fs.Secret("FACEHARVEST_BAIDU_API_KEY", "Baidu API Key (client_id) for issuing tokens (without it POST /v1/baidu/tokens answers 404)")
	fs.Secret("FACEHARVEST_BAIDU_SECRET_KEY", "Baidu Secret Key (client_secret), with FACEHARVEST_BAIDU_API_KEY")
	fs.Secret("FACEHARVEST_LANDING_KEY", fmt.Sprintf("landing URL keys (at least %d bytes), comma-separated: the first signs, any verifies (required)", ingest.MinLandingKeyLen))
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
	for i, t := range c.BearerTokens {
		if len(t.Reveal()) < ingest.MinBearerTokenLen {
			return nil, fmt.Errorf("bearer token %d of %d is shorter than %d characters (FACEHARVEST_INGEST_TOKENS): a short token can be guessed", i+1, len(c.BearerTokens), ingest.MinBearerTokenLen)
		}
	}
	if c.LandingKeys, err = config.LoadSecretList(getenv, nil, "FACEHARVEST_LANDING_KEY"); err != nil {
		return nil, err
	}
	// The library refuses landings without keys; the service, which always
	// serves them, refuses to start.
	if len(c.LandingKeys) == 0 {
		return nil, errors.New("no landing key to sign Baidu landing URLs with (FACEHARVEST_LANDING_KEY or FACEHARVEST_LANDING_KEY_FILE)")
	}
	for _, sec := range []struct {
		env string
		dst *config.Secret
	}{{"FACEHARVEST_MEGVII_API_KEY", &o.megviiKey}, {"FACEHARVEST_BAIDU_API_KEY", &o.baiduKey}, {"FACEHARVEST_BAIDU_SECRET_KEY", &o.baiduSK}} {
		l, err := config.LoadSecretList(getenv, nil, sec.env)
		if err != nil {
			return nil, err
		}
		if len(l) > 0 {
			*sec.dst = l[0]
		}
	}
	if o.baiduKey.Empty() != o.baiduSK.Empty() {
		return nil, errors.New("FACEHARVEST_BAIDU_API_KEY and FACEHARVEST_BAIDU_SECRET_KEY: set both (to issue Baidu tokens) or neither")
	}
	if len(c.MegviiSecrets) > 0 {
		o.megviiSecret = c.MegviiSecrets[0] // get_token signs with the current secret
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
	var idemW interface{ Close() error }
	if !o.megviiKey.Empty() {
		mc, err := megvii.New(megvii.Config{BaseURL: o.megviiURL, APIKey: o.megviiKey, APISecret: o.megviiSecret})
		if err != nil {
			fmt.Fprintf(stderr, "ingest: %v\n", err)
			return 2
		}
		o.cfg.Megvii = mc
	}
	if !o.baiduKey.Empty() {
		bc, err := baidu.New(baidu.Config{BaseURL: o.baiduURL, APIKey: o.baiduKey, SecretKey: o.baiduSK})
		if err != nil {
			fmt.Fprintf(stderr, "ingest: %v\n", err)
			return 2
		}
		o.cfg.Baidu = bc
	}
	issuing := o.cfg.Megvii != nil || o.cfg.Baidu != nil
	if issuing {
		iw := bus.NewWriter(bus.WriterConfig{Cluster: kc, Topic: o.idemTopic, BatchTimeout: o.writer.BatchTimeout, BatchSize: o.writer.BatchSize})
		idemW = iw
		o.idem.BodyKeys = o.cfg.LandingKeys
		if o.cfg.Idempotency, err = ingest.NewIdempotency(o.idem, ingest.KafkaIdempotencyLog{Writer: iw}); err != nil {
			fmt.Fprintf(stderr, "ingest: %v\n", err)
			return 2
		}
	}
	srv, err := ingest.New(o.cfg, w)
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 2
	}
	ln, mln, err := o.svc.Listen(o.listen)
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 1
	}
	checks := []ops.Check{{Name: "kafka", Fn: func(ctx context.Context) error { return bus.CheckTopics(ctx, kc, o.topic) }}}
	if issuing {
		checks = append(checks, ops.Check{Name: "idempotency", Fn: func(ctx context.Context) error {
			if !o.cfg.Idempotency.Ready() {
				return errors.New("the idempotency topic is still being read")
			}
			return nil
		}})
	}
	ready := o.svc.Readiness(checks...)
	opsMux := ops.Mux(reg, ready)
	httpSrv := srv.HTTPServer(log)

	var g oklog.Group
	sigRun, sigStop := ops.SignalActor(os.Interrupt, syscall.SIGTERM)
	g.Add(ops.DelayStop(sigRun, sigStop, o.shutdownDelay, func() {
		ready.Drain()
		httpSrv.SetKeepAlivesEnabled(false) // clients reconnect, to pods that stay
		log.Info("draining: /readyz fails, requests are still served", "for", o.shutdownDelay.String())
	}))
	g.Add(ops.ServeActor(httpSrv, srv.LimitListener(ln), o.shutdownGrace, nil))
	if issuing {
		tailRun, tailStop, _ := ops.ContextActor(func(ctx context.Context) error {
			return ingest.TailIdempotency(ctx, kc, o.idemTopic, o.cfg.Idempotency, log)
		}, time.Second, nil)
		g.Add(tailRun, tailStop)
	}
	g.Add(ops.ServeActor(ops.NewServer(opsMux, log), mln, time.Second, nil))
	log.Info("ingest listening", "listen", ln.Addr().String(), "metrics", mln.Addr().String(), "topic", o.topic, "brokers", kc.Brokers, "tls", kc.TLS != nil, "sasl", kc.SASL != nil)
	err = g.Run()
	// Every request has been answered; flush whatever the writer still holds.
	if cerr := w.Close(); cerr != nil {
		log.Warn("closing the Kafka writer", "error", cerr.Error())
	}
	if idemW != nil {
		if cerr := idemW.Close(); cerr != nil {
			log.Warn("closing the idempotency writer", "error", cerr.Error())
		}
	}
	return ops.ExitCode(log, "ingest", err)
}
