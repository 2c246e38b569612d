package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// DefaultIdempotencyTopic is where the issuing routes keep their
// idempotency records (compacted; ingest's own state, read by no one else).
const DefaultIdempotencyTopic = "faceid.ingest.idempotency"

// KafkaIdempotencyLog appends idempotency records through a writer whose
// topic is the idempotency topic (acks=all, keys partitioned by murmur2).
type KafkaIdempotencyLog struct{ Writer Publisher }

// Append writes one record and returns once the broker acknowledged it.
func (l KafkaIdempotencyLog) Append(ctx context.Context, key string, value []byte) error {
	return l.Writer.WriteMessages(ctx, contract.Message{Key: []byte(key), Value: value})
}

// TailIdempotency reads every partition of topic from its start into d
// until ctx ends, and marks d ready once each partition was read up to the
// end it had when the reading started. A failure (the broker away) is
// logged and the reading starts over after a pause; it returns nil once
// ctx ends.
func TailIdempotency(ctx context.Context, cl bus.Cluster, topic string, d *Idempotency, log *slog.Logger) error {
	policy := retry.Policy{Backoff: retry.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second},
		OnFailure: func(_ int, err error, next time.Duration) {
			log.Warn("reading the idempotency topic failed; starting over", "topic", topic, "error", err.Error(), "pause", next.String())
		}}
	retry.Do(ctx, policy, func(int) error {
		if err := tailOnce(ctx, cl, topic, d); ctx.Err() == nil {
			return err
		}
		return nil
	})
	return nil
}

func tailOnce(ctx context.Context, cl bus.Cluster, topic string, d *Idempotency) error {
	ends, err := endOffsets(ctx, cl, topic)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	caught := make(chan int, len(ends))
	errs := make(chan error, len(ends))
	for p, end := range ends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- tailPartition(ctx, cl, topic, p, end, d, caught)
		}()
	}
	go func() {
		for range ends {
			select {
			case <-caught:
			case <-ctx.Done():
				return
			}
		}
		d.SetReady()
	}()
	err = <-errs
	cancel()
	wg.Wait()
	return err
}

func tailPartition(ctx context.Context, cl bus.Cluster, topic string, p int, end int64, d *Idempotency, caught chan<- int) error {
	signalled := false
	if end <= 0 {
		caught <- p
		signalled = true
	}
	err := bus.Follow(ctx, cl, topic, p, -1, 4<<20, func(m contract.Message) {
		if m.Value != nil { // a tombstone forgets nothing we hold: entries expire
			d.Apply(string(m.Key), m.Value)
		}
		if !signalled && m.Offset+1 >= end {
			caught <- p
			signalled = true
		}
	})
	if err == nil {
		return ctx.Err()
	}
	return err
}

// endOffsets returns each partition's end offset (the next offset to be
// written), 0 for a partition with nothing to read back.
func endOffsets(ctx context.Context, cl bus.Cluster, topic string) (map[int]int64, error) {
	n, err := bus.PartitionCount(ctx, cl, topic)
	if err != nil {
		return nil, fmt.Errorf("idempotency topic: %w", err)
	}
	ends := map[int]int64{}
	for p := range n {
		first, end, err := bus.PartitionBounds(ctx, cl, topic, p)
		if err != nil {
			return nil, fmt.Errorf("idempotency topic %s partition %d offsets: %w", topic, p, err)
		}
		if first >= end {
			end = 0 // nothing to read back
		}
		ends[p] = end
	}
	return ends, nil
}
