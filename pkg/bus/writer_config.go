package bus

import "time"

// DefaultWriterConfig returns the writer settings' defaults (no cluster,
// no topic): the flags take theirs from it, and NewWriter fills a zero
// field from it.
func DefaultWriterConfig() WriterConfig {
	return WriterConfig{BatchTimeout: 2 * time.Millisecond, BatchSize: 1000, BatchBytes: 1 << 20, MaxAttempts: 3}
}
