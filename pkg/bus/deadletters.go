package bus

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/retry"
	"github.com/prometheus/client_golang/prometheus"
)

// Dead-letter headers every dead letter carries, whoever wrote it.
const (
	// HeaderDLQSource names where the message came from: topic/partition/offset.
	HeaderDLQSource = "faceharvest_dlq_source"
	// HeaderDLQReason says why: for people reading the DLQ.
	HeaderDLQReason = contract.HeaderDLQReason
)

// DeadLetterValueCap keeps dead letters under a default topic's message
// size; the source topic still holds the whole message until its retention.
const DeadLetterValueCap = 512 << 10

// Publisher is what dead letters need of a writer (a *Writer).
type Publisher interface {
	WriteMessages(ctx context.Context, msgs ...contract.Message) error
}

// DeadLetterConfig configures a DeadLetters writer. Zero values take the
// defaults noted.
type DeadLetterConfig struct {
	Writer   Publisher
	Payloads DeadLetterPayloads // where payloads go: inline unless it has a Store
	// Retry is the back-off between failed writes (100 ms doubling to 5 s);
	// its Wait is injected by tests.
	Retry retry.Policy
	// LogEvery rate-limits the failure log: at most one line per dead letter
	// this often (30 s).
	LogEvery time.Duration
	Now      func() time.Time // for LogEvery (time.Now)
	Logger   *slog.Logger
	// Written counts dead letters by label (the metric label of why);
	// WriteErrors counts failed writes. Either may be nil.
	Written     *prometheus.CounterVec
	WriteErrors prometheus.Counter
}

// DeadLetters is the one dead-letter writer: every dead letter has the
// source's key and headers, HeaderDLQReason and HeaderDLQSource, a value
// cut to DeadLetterValueCap with HeaderDLQTruncated giving the original
// length (or, with a payload store, a reference to the whole payload). The
// write is retried until acknowledged: the source offset must not be
// committed past a message that is nowhere.
type DeadLetters struct{ cfg DeadLetterConfig }

// NewDeadLetters returns a writer.
func NewDeadLetters(cfg DeadLetterConfig) *DeadLetters {
	if cfg.Retry.Min <= 0 {
		cfg.Retry.Min = 100 * time.Millisecond
	}
	if cfg.Retry.Max <= 0 {
		cfg.Retry.Max = 5 * time.Second
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &DeadLetters{cfg: cfg}
}

// Message builds the dead letter of src (without its payload moved).
func (d *DeadLetters) Message(src contract.Message, reason string) contract.Message {
	hs := append(append([]contract.Header{}, src.Headers...), contract.Header{Key: HeaderDLQReason, Value: []byte(reason)},
		contract.Header{Key: HeaderDLQSource, Value: []byte(src.Topic + "/" + strconv.Itoa(src.Partition) + "/" + strconv.FormatInt(src.Offset, 10))})
	v := src.Value
	if len(v) > DeadLetterValueCap {
		v = v[:DeadLetterValueCap]
		hs = append(hs, contract.Header{Key: HeaderDLQTruncated, Value: []byte(strconv.Itoa(len(src.Value)))})
	}
	return contract.Message{Key: src.Key, Value: v, Headers: hs}
}

// Write dead-letters src: counted under label, logged with reason, written
// (its payload stored first when so configured) and retried until
// acknowledged (true) or ctx ends (false).
func (d *DeadLetters) Write(ctx context.Context, src contract.Message, label, reason string) bool {
	if d.cfg.Written != nil {
		d.cfg.Written.WithLabelValues(label).Inc()
	}
	d.cfg.Logger.Warn("message dead-lettered", "topic", src.Topic, "partition", src.Partition, "offset", src.Offset, "label", label, "reason", reason)
	dl := d.Message(src, reason)
	failures := 0
	var logged time.Time
	p := d.cfg.Retry
	p.OnFailure = func(try int, err error, next time.Duration) {
		failures = try
		if d.cfg.WriteErrors != nil {
			d.cfg.WriteErrors.Inc()
		}
		if now := d.cfg.Now(); try == 1 || now.Sub(logged) >= d.cfg.LogEvery {
			d.cfg.Logger.Warn("dead-letter write failed; the partition waits and retries", "failures", try,
				"retry_in", next.String(), "error", err.Error())
			logged = now
		}
	}
	err := retry.Do(ctx, p, func(int) error {
		m, err := d.cfg.Payloads.Apply(ctx, src, dl)
		if err != nil {
			return err
		}
		return d.cfg.Writer.WriteMessages(ctx, m)
	})
	if err != nil {
		return false
	}
	if failures > 0 {
		d.cfg.Logger.Info("dead letter written after failed tries", "failures", failures)
	}
	return true
}
