package ops

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
)

// KafkaPasswordEnv holds the SASL password (or, with _FILE, names a file
// holding it).
const KafkaPasswordEnv = config.EnvPrefix + "KAFKA_SASL_PASSWORD"

// ServiceFlags are the flags every Kafka-connected service shares.
type ServiceFlags struct {
	Kafka       bus.Cluster // from --kafka-brokers, --kafka-tls* and --kafka-sasl-*
	MetricsAddr string
	Level       slog.Level
	// ReadinessTolerance is how long a dependency check may fail without a
	// break before /readyz fails (see Readiness).
	ReadinessTolerance time.Duration
	brokers            string
	logLevel           string
	security           bus.Security
}

// Register adds --kafka-brokers, the Kafka security flags, --metrics-addr,
// --readiness-tolerance and --log-level.
func (f *ServiceFlags) Register(fs *config.FlagSet, metricsAddr string) {
	f.RegisterKafka(fs)
	fs.StringVar(&f.MetricsAddr, "metrics-addr", metricsAddr, "address serving /metrics, /healthz and /readyz")
	fs.DurationVar(&f.ReadinessTolerance, "readiness-tolerance", time.Minute, "how long a dependency (brokers, topics, store) may fail without a break before /readyz fails; every replica sees a broker hiccup at once, so a shorter one leaves them all ready (and answering 503 with Retry-After themselves); a process that never reached its dependencies is not ready (0: fail at once)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// RegisterKafka adds --kafka-brokers and the Kafka security flags only, for
// a command that serves nothing (the operator command); Validate reads them
// the same way, and the log level stays info.
func (f *ServiceFlags) RegisterKafka(fs *config.FlagSet) {
	f.logLevel = "info"
	fs.StringVar(&f.brokers, "kafka-brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers (host:port)")
	fs.BoolVar(&f.security.TLS, "kafka-tls", false, "connect to Kafka over TLS, verifying the brokers against the system's CAs (implied by the other --kafka-tls-* flags)")
	fs.StringVar(&f.security.CAFile, "kafka-tls-ca-file", "", "PEM file of the CAs that sign the brokers' certificates (instead of the system's)")
	fs.StringVar(&f.security.CertFile, "kafka-tls-cert-file", "", "PEM client certificate for mutual TLS (with --kafka-tls-key-file)")
	fs.StringVar(&f.security.KeyFile, "kafka-tls-key-file", "", "PEM private key of --kafka-tls-cert-file")
	fs.StringVar(&f.security.ServerName, "kafka-tls-server-name", "", "name to verify in the brokers' certificates (default: each broker's host)")
	fs.StringVar(&f.security.SASLMechanism, "kafka-sasl-mechanism", "", "SASL authentication to Kafka: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none); the password comes from "+KafkaPasswordEnv)
	fs.StringVar(&f.security.SASLUsername, "kafka-sasl-username", "", "SASL username")
	fs.Secret(KafkaPasswordEnv, "SASL password for --kafka-sasl-username (PLAIN sends it as is: use it only with TLS)")
}

// Validate parses what Register bound and reads the SASL password through
// getenv (or the file its _FILE variable names); call it after parsing.
func (f *ServiceFlags) Validate(getenv func(string) string) error {
	var err error
	if f.Level, err = config.ParseLevel(f.logLevel); err != nil {
		return err
	}
	if f.ReadinessTolerance < 0 {
		return fmt.Errorf("--readiness-tolerance must not be negative")
	}
	brokers, err := bus.SplitBrokers(f.brokers)
	if err != nil {
		return fmt.Errorf("--kafka-brokers: %w", err)
	}
	if f.security.SASLPassword, err = config.LoadSecret(getenv, nil, KafkaPasswordEnv); err != nil {
		return err
	}
	if f.Kafka, err = f.security.Cluster(brokers); err != nil {
		return fmt.Errorf("kafka security flags: %w", err)
	}
	return nil
}

// Logger returns the JSON logger at the chosen level.
func (f *ServiceFlags) Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: f.Level}))
}

// Readiness returns the /readyz of the service's checks with
// --readiness-tolerance.
func (f *ServiceFlags) Readiness(checks ...Check) *Readiness {
	return NewReadiness(f.ReadinessTolerance, time.Now, checks...)
}

// Listen opens the TCP listener of a service's own --listen on addr, then
// that of --metrics-addr; when the second fails the first is closed. The
// error names the flag whose address could not be listened on.
func (f *ServiceFlags) Listen(addr string) (ln, metrics net.Listener, err error) {
	if ln, err = net.Listen("tcp", addr); err != nil {
		return nil, nil, fmt.Errorf("--listen: %w", err)
	}
	if metrics, err = net.Listen("tcp", f.MetricsAddr); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	return ln, metrics, nil
}
