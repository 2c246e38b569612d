package harvester

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/clock"
)

// Dead-letter write retries: the partition waits for its dead letter (its
// offset must not pass an event that is nowhere), so the write is retried
// until it is acknowledged or the harvester shuts down.
const (
	deadLetterRetryMin = 100 * time.Millisecond
	deadLetterRetryMax = 5 * time.Second
	deadLetterLogEvery = 30 * time.Second // at most one log line per message this often
)

// deadLetterer writes dead letters with back-off, counting every failed
// write and logging them at most every deadLetterLogEvery.
type deadLetterer struct {
	w     Publisher
	now   clock.Now
	after func(time.Duration) <-chan time.Time // the back-off's wait (time.After; tests inject)
	log   *slog.Logger
	errs  prometheus.Counter
}

func newDeadLetterer(w Publisher, now clock.Now, log *slog.Logger, m *Metrics) *deadLetterer {
	return &deadLetterer{w: w, now: now, after: time.After, log: log, errs: m.deadLetterErrors}
}

// write writes m, retrying until it is acknowledged (true) or ctx ends
// (false).
func (d *deadLetterer) write(ctx context.Context, m kafka.Message) bool {
	wait := deadLetterRetryMin
	failures := 0
	var logged time.Time
	for {
		err := d.w.WriteMessages(ctx, m)
		if err == nil {
			if failures > 0 {
				d.log.Info("dead letter written after failed tries", "failures", failures)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		failures++
		d.errs.Inc()
		if now := d.now(); failures == 1 || now.Sub(logged) >= deadLetterLogEvery {
			d.log.Warn("dead-letter write failed; the partition waits and retries", "failures", failures,
				"retry_in", wait.String(), "error", err.Error())
			logged = now
		}
		select {
		case <-ctx.Done():
			return false
		case <-d.after(wait):
		}
		wait = min(wait*2, deadLetterRetryMax)
	}
}
