package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// Writer is what the audit log needs of a Kafka writer: a synchronous,
// acks=all write (a bus.NewWriter writer on the audit topic).
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...contract.Message) error
}

// LogConfig configures a Log. Writer and Via are required.
type LogConfig struct {
	Writer Writer
	// Via names the tool that shows evidence (auditor, faceharvest): the
	// events' ce_source and their via field.
	Via string
	// Now stamps events without a time (clock.Real when nil).
	Now clock.Now
	// Registry, when set, receives faceharvest_<Via>_audit_events_total.
	Registry prometheus.Registerer
	// Timeout bounds one write (10 s when 0): a view waits for its record.
	Timeout time.Duration
}

// Log records views of personal data on the audit topic. A caller shows
// nothing unless Record returned nil: the audit record comes first.
type Log struct {
	w               Writer
	via             string
	now             clock.Now
	timeout         time.Duration
	written, failed prometheus.Counter
}

// NewLog returns a Log writing through cfg.Writer.
func NewLog(cfg LogConfig) (*Log, error) {
	if cfg.Writer == nil || cfg.Via == "" {
		return nil, errors.New("audit log: a writer and a via name are required")
	}
	if cfg.Now == nil {
		cfg.Now = clock.Real
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	l := &Log{w: cfg.Writer, via: cfg.Via, now: cfg.Now, timeout: cfg.Timeout}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry() // counted, never exposed
	}
	c := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_" + cfg.Via + "_audit_events_total",
		Help: "Audit events (views of personal data) by outcome: written (acknowledged by the audit topic's in-sync replicas, then shown) or failed (not written; nothing was shown)."}, []string{"outcome"})
	l.written, l.failed = c.WithLabelValues("written"), c.WithLabelValues("failed")
	return l, nil
}

// NewEventID returns a random id for one view.
func NewEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Record writes e to the audit topic and returns once the brokers
// acknowledged it. It fills in an ID, the time and Via when they are empty.
func (l *Log) Record(ctx context.Context, e contract.AuditEvent) error {
	if e.ID == "" {
		e.ID = NewEventID()
	}
	if e.At.IsZero() {
		e.At = l.now()
	}
	if e.Via == "" {
		e.Via = l.via
	}
	env, err := e.Envelope(l.via)
	if err != nil {
		l.failed.Inc()
		return fmt.Errorf("audit event: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if err := l.w.WriteMessages(ctx, env.Message()); err != nil {
		l.failed.Inc()
		return fmt.Errorf("writing the audit event: %w", err)
	}
	l.written.Inc()
	return nil
}
