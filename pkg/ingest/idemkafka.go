package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/bus"
)

// DefaultIdempotencyTopic is where the issuing routes keep their
// idempotency records (compacted; ingest's own state, read by no one else).
const DefaultIdempotencyTopic = "faceid.ingest.idempotency"

// KafkaIdempotencyLog appends idempotency records through a writer whose
// topic is the idempotency topic (acks=all, keys partitioned by murmur2).
type KafkaIdempotencyLog struct{ Writer Publisher }

// Append writes one record and returns once the broker acknowledged it.
func (l KafkaIdempotencyLog) Append(ctx context.Context, key string, value []byte) error {
	return l.Writer.WriteMessages(ctx, kafka.Message{Key: []byte(key), Value: value})
}

// TailIdempotency reads every partition of topic from its start into d
// until ctx ends, and marks d ready once each partition was read up to the
// end it had when the reading started. A failure (the broker away) is
// logged and the reading starts over after a pause; it returns nil once
// ctx ends.
func TailIdempotency(ctx context.Context, cl bus.Cluster, topic string, d *Idempotency, log *slog.Logger) error {
	pause := 500 * time.Millisecond
	for {
		err := tailOnce(ctx, cl, topic, d)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("reading the idempotency topic failed; starting over", "topic", topic, "error", err.Error(), "pause", pause.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Second)
	}
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
	rd := cl.Reader(kafka.ReaderConfig{Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond})
	defer rd.Close()
	if err := rd.SetOffset(kafka.FirstOffset); err != nil {
		return err
	}
	signalled := false
	if end <= 0 {
		caught <- p
		signalled = true
	}
	for {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading %s partition %d: %w", topic, p, err)
		}
		if m.Value != nil { // a tombstone forgets nothing we hold: entries expire
			d.Apply(string(m.Key), m.Value)
		}
		if !signalled && m.Offset+1 >= end {
			caught <- p
			signalled = true
		}
	}
}

// endOffsets returns each partition's end offset (the next offset to be
// written).
func endOffsets(ctx context.Context, cl bus.Cluster, topic string) (map[int]int64, error) {
	c := cl.Client(10 * time.Second)
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("idempotency topic %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) == 0 {
		e := errors.New("not found")
		if len(md.Topics) == 1 && md.Topics[0].Error != nil {
			e = md.Topics[0].Error
		}
		return nil, fmt.Errorf("idempotency topic %s: %w", topic, e)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("idempotency topic %s offsets: %w", topic, err)
	}
	ends := map[int]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("idempotency topic %s partition %d offsets: %w", topic, po.Partition, po.Error)
		}
		ends[po.Partition] = po.LastOffset
		if po.FirstOffset >= po.LastOffset {
			ends[po.Partition] = 0 // nothing to read back
		}
	}
	reqs = reqs[:len(reqs)/2]
	if len(ends) != len(reqs) {
		return nil, fmt.Errorf("idempotency topic %s: offsets for %d of %d partitions", topic, len(ends), len(reqs))
	}
	return ends, nil
}
