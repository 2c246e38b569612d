package bus

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// adminWait bounds one admin request of PartitionCount and PartitionBounds:
// a busy broker (or machine) answered a metadata request in more than 10 s.
const adminWait = 30 * time.Second

// PartitionCount returns how many partitions topic has (an error when the
// topic does not exist).
func PartitionCount(ctx context.Context, cl Cluster, topic string) (int, error) {
	md, err := cl.Client(adminWait).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
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
	resp, err := cl.Client(adminWait).ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p)}}})
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

// How ReadRange reads. kafka-go's reader gives a fetch's answer MaxWait to
// begin arriving, and a broker writes nothing of an answer before it has
// built all of it: a fetch of tens of MiB on a busy broker (the embedded one
// builds 10 MiB in about 4 s under the race detector) timed out at its first
// byte, was closed and asked again, and never got an answer. ReadRange
// therefore fetches little at a time (a record larger than a fetch still
// comes whole: the broker returns a first batch larger than the limit),
// waits generously for each answer, and decides that records are missing
// only when none has come for rangeStall while the partition's bounds say
// they are there. Variables so that the tests can shorten them.
var (
	rangeFetchBytes = 1 << 20
	// rangeAnswerWait is how long a fetch's answer may take to begin, and
	// each record of it to arrive, before the connection is dropped and the
	// fetch asked again (it is also the broker's MaxWait, spent only when
	// nothing is left to read).
	rangeAnswerWait = 30 * time.Second
	// rangeCheckEvery: while no record comes, the partition's bounds are
	// looked at this often (records below the end may have been deleted).
	rangeCheckEvery = 5 * time.Second
	// rangeStall: no record for this long while the bounds say records are
	// there is an error.
	rangeStall = 2 * time.Minute
)

// ReadRange calls fn for every message of a partition from offset (or its
// start, when earlier or negative) to the end it had when the read began.
// It fetches 1 MiB at a time, whatever the size of the partition's records:
// a larger record still comes whole. It waits for a slow broker as long as records keep coming, and
// fails when none came for two minutes while the partition's bounds say
// they are there, or when ctx ends.
func ReadRange(ctx context.Context, cl Cluster, topic string, p int, offset int64, fn func(contract.Message)) error {
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
	var lastErr atomic.Value // the reader's last complaint, for the error
	rd, closeConns := cl.closingReader(kafka.ReaderConfig{Topic: topic, Partition: p, MinBytes: 1, MaxBytes: rangeFetchBytes,
		MaxWait: rangeAnswerWait, ReadBatchTimeout: rangeAnswerWait,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) { lastErr.Store(fmt.Sprintf(f, a...)) })})
	defer func() {
		// Dropping the connections first ends a read blocked on a slow
		// broker now rather than at its deadline.
		closeConns()
		_ = rd.Close()
	}()
	if err := rd.SetOffset(offset); err != nil {
		return err
	}
	next, progress := offset, time.Now()
	for {
		fctx, cancel := context.WithTimeout(ctx, rangeCheckEvery)
		m, err := rd.FetchMessage(fctx)
		if err != nil && fctx.Err() == nil {
			// The reader's own error (a refusal from the broker): noted,
			// and the interval waited out rather than asked again at once.
			lastErr.Store(err.Error())
			<-fctx.Done()
		}
		cancel()
		if err == nil {
			if m.Offset >= end {
				return nil // what was below end is gone; this came after
			}
			fn(FromKafka(m))
			next, progress = m.Offset+1, time.Now()
			if next >= end {
				return nil
			}
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Nothing came for a while: the records up to end may be gone
		// (retention, compaction). Done if nothing readable remains below
		// end; otherwise the broker is slow, and waited for until rangeStall.
		first, _, berr := PartitionBounds(ctx, cl, topic, p)
		if berr == nil && max(next, first) >= end {
			return nil
		}
		if stalled := time.Since(progress); stalled >= rangeStall {
			why := "the partition holds them"
			if berr != nil {
				why = "its bounds unknown: " + berr.Error()
			}
			if e, _ := lastErr.Load().(string); e != "" {
				why += "; last reader error: " + e
			}
			return fmt.Errorf("reading %s/%d: no record between %d and %d for %s (%s)", topic, p, max(next, first), end, stalled.Round(time.Second), why)
		}
	}
}

// Follow calls fn for every message of a partition from offset (its start
// when earlier or negative) on, waiting for new ones, until ctx ends or
// reading fails; it returns nil once ctx ends.
func Follow(ctx context.Context, cl Cluster, topic string, p int, offset int64, maxBytes int, fn func(contract.Message)) error {
	// As ConsumePartition's: a generous wait for each answer, and the
	// connections dropped on the way out.
	rd, closeConns := cl.closingReader(kafka.ReaderConfig{Topic: topic, Partition: p, MinBytes: 1, MaxBytes: maxBytes, MaxWait: rangeAnswerWait, ReadBatchTimeout: rangeAnswerWait})
	defer func() {
		closeConns()
		_ = rd.Close()
	}()
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
