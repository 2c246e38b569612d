package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// PartitionCount returns how many partitions topic has (an error when the
// topic does not exist).
func PartitionCount(ctx context.Context, cl Cluster, topic string) (int, error) {
	md, err := cl.Client(10*time.Second).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name == topic && t.Error == nil && len(t.Partitions) > 0 {
			return len(t.Partitions), nil
		}
	}
	return 0, fmt.Errorf("topic %q does not exist", topic)
}

// PartitionOf returns the partition of key among partitions, as a writer
// built by NewWriter (murmur2) chooses it.
func PartitionOf(key []byte, partitions int) int {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: key}, ps...)
}

// PartitionBounds returns a partition's first offset and its end (the
// offset the next message will have).
func PartitionBounds(ctx context.Context, cl Cluster, topic string, p int) (first, end int64, err error) {
	resp, err := cl.Client(10*time.Second).ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p)}}})
	if err != nil {
		return 0, 0, err
	}
	for _, po := range resp.Topics[topic] {
		if po.Partition == p {
			if po.Error != nil {
				return 0, 0, po.Error
			}
			return po.FirstOffset, po.LastOffset, nil
		}
	}
	return 0, 0, fmt.Errorf("no offset for %s/%d", topic, p)
}

// rangeFetchWait bounds one fetch of ReadRange: long enough for the largest
// raw-topic message (64 MiB) on a busy broker, since a fetch that ends
// first reads as records missing.
const rangeFetchWait = 30 * time.Second

// ReadRange calls fn for every message of a partition from offset (or its
// start, when earlier or negative) to the end it had when the read began,
// fetching up to maxBytes at a time (at least the topic's largest message).
func ReadRange(ctx context.Context, cl Cluster, topic string, p int, offset int64, maxBytes int, fn func(contract.Message)) error {
	first, end, err := PartitionBounds(ctx, cl, topic, p)
	if err != nil {
		return err
	}
	if offset < first {
		offset = first
	}
	if offset >= end {
		return nil
	}
	rd := cl.Reader(kafka.ReaderConfig{Topic: topic, Partition: p, MinBytes: 1, MaxBytes: maxBytes, MaxWait: 100 * time.Millisecond})
	defer rd.Close()
	if err := rd.SetOffset(offset); err != nil {
		return err
	}
	next := offset
	for {
		fctx, cancel := context.WithTimeout(ctx, rangeFetchWait)
		m, err := rd.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// Nothing came: the records up to end may be gone (retention,
			// compaction). Done if nothing readable remains below end.
			first, _, oerr := PartitionBounds(ctx, cl, topic, p)
			if oerr != nil {
				return oerr
			}
			if max(next, first) >= end {
				return nil
			}
			return fmt.Errorf("reading %s/%d: no record between %d and %d within %s", topic, p, max(next, first), end, rangeFetchWait)
		}
		fn(FromKafka(m))
		next = m.Offset + 1
		if next >= end {
			return nil
		}
	}
}

// Follow calls fn for every message of a partition from offset (its start
// when earlier or negative) on, waiting for new ones, until ctx ends or
// reading fails; it returns nil once ctx ends.
func Follow(ctx context.Context, cl Cluster, topic string, p int, offset int64, maxBytes int, fn func(contract.Message)) error {
	rd := cl.Reader(kafka.ReaderConfig{Topic: topic, Partition: p, MinBytes: 1, MaxBytes: maxBytes, MaxWait: 250 * time.Millisecond})
	defer rd.Close()
	if offset < 0 {
		offset = kafka.FirstOffset
	}
	if err := rd.SetOffset(offset); err != nil {
		return err
	}
	for {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading %s/%d: %w", topic, p, err)
		}
		fn(FromKafka(m))
	}
}
