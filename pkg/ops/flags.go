package ops

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
)

// ServiceFlags are the flags every Kafka-connected service shares.
type ServiceFlags struct {
	Brokers     []string // parsed --kafka-brokers
	MetricsAddr string
	Level       slog.Level
	brokers     string
	logLevel    string
}

// Register adds --kafka-brokers, --metrics-addr and --log-level.
func (f *ServiceFlags) Register(fs *config.FlagSet, metricsAddr string) {
	fs.StringVar(&f.brokers, "kafka-brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers (host:port)")
	fs.StringVar(&f.MetricsAddr, "metrics-addr", metricsAddr, "address serving /metrics, /healthz and /readyz")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// Validate parses what Register bound; call it after parsing.
func (f *ServiceFlags) Validate() error {
	var err error
	if f.Level, err = config.ParseLevel(f.logLevel); err != nil {
		return err
	}
	if f.Brokers, err = bus.SplitBrokers(f.brokers); err != nil {
		return fmt.Errorf("--kafka-brokers: %w", err)
	}
	return nil
}

// Logger returns the JSON logger at the chosen level.
func (f *ServiceFlags) Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: f.Level}))
}
