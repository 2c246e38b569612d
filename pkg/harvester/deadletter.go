package harvester

import (
	"log/slog"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// Dead-letter write retries: the partition waits for its dead letter (its
// offset must not pass an event that is nowhere), so the write is retried
// until it is acknowledged or the harvester shuts down.
const (
	deadLetterRetryMin = 100 * time.Millisecond
	deadLetterRetryMax = 5 * time.Second
	deadLetterLogEvery = 30 * time.Second // at most one log line per message this often
)

// newDeadLetters returns the harvester's dead-letter writer (the shared one
// of pkg/bus), counting into the harvester's metrics. Dead letters stay
// inline: the harvester has no object store (storing its payloads would
// need the archiver's store settings and credentials in the harvester).
// wait is the back-off's wait (retry.Sleep; tests inject).
func newDeadLetters(w bus.Publisher, now clock.Now, log *slog.Logger, m *Metrics, wait retry.Wait) *bus.DeadLetters {
	return bus.NewDeadLetters(bus.DeadLetterConfig{Writer: w, Now: now, Logger: log, LogEvery: deadLetterLogEvery,
		Retry:   retry.Policy{Backoff: retry.Backoff{Min: deadLetterRetryMin, Max: deadLetterRetryMax}, Wait: wait},
		Written: m.deadLetters, WriteErrors: m.deadLetterErrors})
}
