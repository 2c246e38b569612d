// Command auditor serves the audit page: a read-only web UI over the
// evidence store for compliance and support staff, every view of which is
// recorded on the audit topic before it is shown.
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

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/audit/web"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ledger"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

// SessionKeyEnv holds the keys that sign login sessions.
const SessionKeyEnv = config.EnvPrefix + "AUDITOR_SESSION_KEY"

// ProxySecretEnv names the trusted proxy's shared secret(s).
const ProxySecretEnv = config.EnvPrefix + "AUDITOR_PROXY_SECRET"

type options struct {
	svc                          ops.ServiceFlags
	listen, topic, tokensFile    string
	proxyCIDRs                   string
	shutdownGrace, shutdownDelay time.Duration
	s3                           objstore.S3Config
	writer                       bus.WriterConfig // Cluster and Topic set at start
	cfg                          web.Config       // Finder, Recorder, Tokens, keys, registry and logger set at start
	sessionKeys                  []config.Secret
	logKey, ledgerPrefix         string
	bundleTrail                  bool
}

func parse(args []string, getenv func(string) string, help io.Writer) (*options, error) {
	fs := config.NewFlagSet("auditor", `The audit page: a read-only web UI over the evidence store, for compliance and support staff.
  GET  /                          search form
  GET  /search?q=...              by <vendor>:<id> (answered with its page), an id alone or a biz_no
  GET  /v/<vendor>/<id>           the record: outcome, scores against thresholds, masked identity,
                                  attempts, media, timeline, problems
  GET  /v/<vendor>/<id>/identity  the same with the identity unmasked (role identity)
  GET  /v/<vendor>/<id>/media/<n> the record's n-th media object, streamed from the store
  GET  /v/<vendor>/<id>/evidence  the evidence document (role identity)
  POST /v/<vendor>/<id>/bundle    the evidence bundle, as faceharvest export writes it (role identity,
                                  with --log-key; posted from the page itself)
  GET, POST /login; POST /logout  a login form that opens a session with a bearer token
Every request is authenticated: a bearer token of --tokens-file (Authorization: Bearer), a
session opened with one (an HttpOnly, SameSite=Strict cookie, HMAC-signed with
`+SessionKeyEnv+`), or --trusted-proxy-header from --trusted-proxy-cidrs with the proxy's shared secret; otherwise 401 (with the
login form) and nothing else happens. Every view of a verification (a page, its identity, each
media object, its evidence, a search's list, a bundle exported) is one audit event on --audit-topic,
written with acks=all before anything is shown; a view whose event cannot be written is answered 503.
/metrics, /healthz and /readyz are served on --metrics-addr.`)
	o := &options{writer: bus.DefaultWriterConfig(), cfg: web.DefaultConfig(), shutdownGrace: 20 * time.Second, ledgerPrefix: ledger.DefaultPrefix, bundleTrail: true}
	c := &o.cfg
	o.svc.Register(fs, "127.0.0.1:9104")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8090", "address serving the audit page")
	fs.StringVar(&o.topic, "audit-topic", contract.DefaultAuditTopic, "topic of audit events (one per view, keyed by viewer)")
	fs.StringVar(&o.tokensFile, "tokens-file", "", "file of bearer tokens, one \"token role name\" per line (role viewer or identity; name is who audit events say looked); read again when it changes (required)")
	fs.DurationVar(&c.SessionTTL, "session-ttl", c.SessionTTL, "how long a login session lasts")
	fs.BoolVar(&c.SecureCookie, "cookie-secure", true, "mark the session cookie Secure (sent over https only); false only for plain-http development on loopback")
	fs.StringVar(&c.PublicURL, "public-url", "", "the page's external origin (https://audit.example.com): login and logout forms must come from it; empty: the request's Host")
	fs.StringVar(&c.ProxyUserHeader, "trusted-proxy-header", "", "header in which an authenticating proxy names the user (e.g. X-Forwarded-User), believed only from --trusted-proxy-cidrs; empty: no proxy is trusted")
	fs.StringVar(&c.ProxyRoleHeader, "trusted-proxy-role-header", "", "header in which the proxy gives the user's role (viewer or identity; viewer when absent)")
	fs.StringVar(&o.proxyCIDRs, "trusted-proxy-cidrs", "", "comma-separated CIDR prefixes (or addresses) of the authenticating proxies")
	fs.IntVar(&c.MaxSearchResults, "max-search-results", c.MaxSearchResults, "verifications a search lists at most")
	s3f := objstore.RegisterFlags(fs, objstore.FlagsFor{Bucket: "bucket of media and evidence documents (read only)",
		Credentials: "Reading needs s3:GetObject and s3:ListBucket; give the page read-only keys"})
	fs.StringVar(&o.logKey, "log-key", "", "the evidence log's public key (<origin>+<hash>+<key>, as `ledger keygen` printed it): the record page offers its evidence bundle to the identity role; empty: no bundle is offered")
	fs.StringVar(&o.ledgerPrefix, "ledger-prefix", o.ledgerPrefix, "where the evidence log lives in the bucket")
	fs.StringVar(&c.BundleDir, "bundle-dir", "", "directory a bundle is built and checked in before it is sent (a writable volume; empty: the system's temporary directory)")
	fs.BoolVar(&o.bundleTrail, "bundle-audit-trail", o.bundleTrail, "include the verification's audit trail (its events on --audit-topic) in a bundle, as faceharvest export does; reads the whole topic per export")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", o.shutdownGrace, "on SIGTERM, how long requests in flight (a video streaming) may take to finish")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, how long to keep serving with /readyz failing before stopping (lets load balancers notice)")
	fs.Secret(ProxySecretEnv, fmt.Sprintf("shared secret(s) (at least %d bytes each; comma-separated for rotation, any verifies) the authenticating proxy sends in the %s header: its user and role headers are believed only with one, from --trusted-proxy-cidrs (required with --trusted-proxy-header)", web.MinSessionKeyLen, web.ProxySecretHeader))
	fs.Secret(SessionKeyEnv, fmt.Sprintf("keys (at least %d bytes each) that sign login sessions; comma-separated for rotation: the first signs, any verifies (required; replicas share them)", web.MinSessionKeyLen))
	if err := fs.Parse(args, getenv, help); err != nil {
		return nil, err
	}
	var err error
	if o.s3, err = s3f.Config(getenv); err != nil {
		return nil, err
	}
	if o.sessionKeys, err = config.LoadSecretList(getenv, nil, SessionKeyEnv); err != nil {
		return nil, err
	}
	switch {
	case len(o.sessionKeys) == 0:
		return nil, fmt.Errorf("no session key (%s or %s_FILE)", SessionKeyEnv, SessionKeyEnv)
	case o.tokensFile == "":
		return nil, errors.New("--tokens-file is required")
	case c.SessionTTL <= 0 || c.MaxSearchResults <= 0:
		return nil, errors.New("--session-ttl and --max-search-results must be positive")
	case o.shutdownDelay < 0:
		return nil, errors.New("--shutdown-delay must not be negative")
	}
	for _, k := range o.sessionKeys {
		if len(k.Reveal()) < web.MinSessionKeyLen {
			return nil, fmt.Errorf("%s: each key must be at least %d bytes", SessionKeyEnv, web.MinSessionKeyLen)
		}
		c.SessionKeys = append(c.SessionKeys, []byte(k.Reveal()))
	}
	if c.ProxyCIDRs, err = archiver.ParseCIDRs(o.proxyCIDRs); err != nil {
		return nil, fmt.Errorf("--trusted-proxy-cidrs: %w", err)
	}
	if (c.ProxyUserHeader == "") != (len(c.ProxyCIDRs) == 0) {
		return nil, errors.New("--trusted-proxy-header and --trusted-proxy-cidrs go together")
	}
	if c.ProxyRoleHeader != "" && c.ProxyUserHeader == "" {
		return nil, errors.New("--trusted-proxy-role-header needs --trusted-proxy-header")
	}
	proxySecrets, err := config.LoadSecretList(getenv, nil, ProxySecretEnv)
	if err != nil {
		return nil, err
	}
	if c.ProxyUserHeader != "" && len(proxySecrets) == 0 {
		return nil, fmt.Errorf("--trusted-proxy-header needs the proxy's shared secret (%s or %s_FILE): an address alone does not authenticate the proxy", ProxySecretEnv, ProxySecretEnv)
	}
	for _, k := range proxySecrets {
		if len(k.Reveal()) < web.MinSessionKeyLen {
			return nil, fmt.Errorf("%s: each secret must be at least %d bytes", ProxySecretEnv, web.MinSessionKeyLen)
		}
		c.ProxySecrets = append(c.ProxySecrets, []byte(k.Reveal()))
	}
	return o, o.svc.Validate(getenv)
}

// exporter builds the bundles the page offers: none without --log-key.
func (o *options) exporter(b objstore.Bucket) (*audit.Exporter, error) {
	if o.logKey == "" {
		return nil, nil
	}
	v, err := ledger.NewVerifier(o.logKey)
	if err != nil {
		return nil, fmt.Errorf("--log-key: %w", err)
	}
	x := &audit.Exporter{Log: ledger.Reader{Bucket: b, Prefix: o.ledgerPrefix}, Key: v}
	if o.bundleTrail {
		kc, topic := o.svc.Kafka, o.topic
		x.Trail = func(ctx context.Context, v contract.Vendor, id string) ([]byte, error) {
			return audit.ReadTrail(ctx, kc, topic, v, id)
		}
	}
	return x, nil
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parse(args, getenv, stdout)
	if err != nil {
		return config.ExitCode("auditor", stderr, err)
	}
	log := o.svc.Logger(stderr)
	reg := ops.NewRegistry()
	kc := o.svc.Kafka
	s3b, err := objstore.NewS3(o.s3)
	if err != nil {
		fmt.Fprintf(stderr, "auditor: %v\n", err)
		return 2
	}
	tokens, err := web.LoadTokens(o.tokensFile, nil, log)
	if err != nil {
		fmt.Fprintf(stderr, "auditor: %v\n", err)
		return 2
	}
	o.writer.Cluster, o.writer.Topic = kc, o.topic
	w := bus.NewWriter(o.writer)
	reg.MustRegister(bus.NewWriterCollector(w, "auditor"))
	alog, err := audit.NewLog(audit.LogConfig{Writer: w, Via: "auditor", Registry: reg})
	if err != nil {
		fmt.Fprintf(stderr, "auditor: %v\n", err)
		return 2
	}
	cfg := o.cfg
	store := objstore.Instrument(s3b, reg, "auditor")
	cfg.Finder = audit.NewStore(store)
	cfg.Recorder, cfg.Tokens, cfg.Registry, cfg.Logger = alog, tokens, reg, log
	if cfg.Bundles, err = o.exporter(store); err != nil {
		fmt.Fprintf(stderr, "auditor: %v\n", err)
		return 2
	}
	page, err := web.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "auditor: %v\n", err)
		return 2
	}
	ln, mln, err := o.svc.Listen(o.listen)
	if err != nil {
		fmt.Fprintf(stderr, "auditor: %v\n", err)
		return 1
	}
	storeReady := func(ctx context.Context) error {
		if err := s3b.CheckCredentials(ctx); err != nil {
			return err
		}
		return s3b.Check(ctx)
	}
	ready := o.svc.Readiness(ops.Check{Name: "kafka", Fn: func(ctx context.Context) error { return bus.CheckTopics(ctx, kc, o.topic) }},
		ops.Check{Name: "store", Fn: storeReady})
	httpSrv := page.HTTPServer()

	var g oklog.Group
	sigRun, sigStop := ops.SignalActor(os.Interrupt, syscall.SIGTERM)
	g.Add(ops.DelayStop(sigRun, sigStop, o.shutdownDelay, func() {
		ready.Drain()
		httpSrv.SetKeepAlivesEnabled(false)
		log.Info("draining: /readyz fails, requests are still served", "for", o.shutdownDelay.String())
	}))
	g.Add(ops.ServeActor(httpSrv, ln, o.shutdownGrace, nil))
	g.Add(ops.ServeActor(ops.NewServer(ops.Mux(reg, ready), log), mln, time.Second, nil))
	log.Info("auditor listening", "listen", ln.Addr().String(), "metrics", mln.Addr().String(), "topic", o.topic, "bucket", o.s3.Bucket,
		"brokers", kc.Brokers, "trusted_proxy", o.cfg.ProxyUserHeader != "")
	err = g.Run()
	if cerr := w.Close(); cerr != nil {
		log.Warn("closing the Kafka writer", "error", cerr.Error())
	}
	return ops.ExitCode(log, "auditor", err)
}
