package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// Offsets finds the offset below which every message read is done: the one
// a partition may commit. Messages may finish in any order; the commit only
// moves over a run of finished ones. Safe for concurrent use.
type Offsets struct {
	mu   sync.Mutex
	read []int64 // read, not yet committable, in order
	done map[int64]bool
	next int64 // -1 until the first message is done
	// waits carries the offsets that are done when their channel closes, in
	// read order, to the one goroutine (waitLoop) that waits on them. Its
	// capacity bounds how far reading runs ahead of durability.
	waits chan pendingDone
}

type pendingDone struct {
	offset int64
	done   <-chan struct{}
}

// NewOffsets returns a tracker letting up to maxWaiting offsets wait on
// DoneWhen (4096 when not positive).
func NewOffsets(maxWaiting int) *Offsets {
	if maxWaiting <= 0 {
		maxWaiting = 4096
	}
	return &Offsets{done: map[int64]bool{}, next: -1, waits: make(chan pendingDone, maxWaiting)}
}

func (o *Offsets) add(off int64) {
	o.mu.Lock()
	o.read = append(o.read, off)
	o.mu.Unlock()
}

// Done marks off finished.
func (o *Offsets) Done(off int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done[off] = true
	for len(o.read) > 0 && o.done[o.read[0]] {
		delete(o.done, o.read[0])
		o.next = o.read[0] + 1
		o.read = o.read[1:]
	}
}

// DoneWhen marks off finished once ch is closed (a write acknowledged). It
// blocks while too many such offsets wait (back-pressure on the reader), or
// until ctx ends (false: off stays unfinished).
func (o *Offsets) DoneWhen(ctx context.Context, off int64, ch <-chan struct{}) bool {
	select {
	case <-ch:
		o.Done(off)
		return true
	default:
	}
	select {
	case o.waits <- pendingDone{off, ch}:
		return true
	case <-ctx.Done():
		return false
	}
}

// waitLoop finishes DoneWhen's offsets as their channels close, until ctx
// ends (an offset not durable by then is never committed) or stop.
func (o *Offsets) waitLoop(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			// Drain what is already durable; the rest stays uncommitted.
			for {
				select {
				case w := <-o.waits:
					select {
					case <-w.done:
						o.Done(w.offset)
					default:
						return
					}
				default:
					return
				}
			}
		case w := <-o.waits:
			select {
			case <-w.done:
				o.Done(w.offset)
			case <-ctx.Done():
				return
			case <-stop: // not durable yet: never committed
				return
			}
		}
	}
}

// Committable is the next offset to commit (-1 when none).
func (o *Offsets) Committable() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.next
}

// PartitionConfig configures one assigned partition's consumer. Start from
// DefaultPartitionConfig and set the partition's fields: a zero MaxBytes,
// CommitInterval or LagEvery is refused (Validate), not defaulted.
type PartitionConfig struct {
	Cluster   Cluster
	Topic     string
	Partition int
	Offset    int64 // the committed offset; negative for none (the partition's start)
	MaxBytes  int   // largest fetch
	// CommitInterval is how often done offsets are committed.
	CommitInterval time.Duration
	// Commit commits next (the offset after the last done message); nil
	// uses Generation.
	Commit     func(next int64) error
	Generation *Generation
	// Offsets tracks what is done: given when other goroutines finish
	// messages (NewOffsets(4096) when nil).
	Offsets  *Offsets
	Lag      *prometheus.GaugeVec // the partition's lag, every LagEvery; nil for none
	LagEvery time.Duration
	Logger   *slog.Logger
	// Tick, when set, runs before each periodic commit.
	Tick func()
	// Drain, when set, runs once reading has stopped and before the last
	// commit: where handlers still working finish.
	Drain func()
}

// DefaultPartitionConfig returns a partition consumer's defaults (16 MiB
// fetches, commits every 200 ms, lag every 5 s; no cluster, topic or
// partition): the components' defaults take theirs from it.
func DefaultPartitionConfig() PartitionConfig {
	return PartitionConfig{MaxBytes: 16 << 20, CommitInterval: 200 * time.Millisecond, LagEvery: 5 * time.Second}
}

// Validate says what in cfg cannot work.
func (cfg PartitionConfig) Validate() error {
	var errs []error
	if cfg.Topic == "" {
		errs = append(errs, errors.New("no topic"))
	}
	if cfg.Partition < 0 {
		errs = append(errs, fmt.Errorf("partition %d: want 0 or more", cfg.Partition))
	}
	if cfg.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("MaxBytes %d: want more than 0 (DefaultPartitionConfig has %d)", cfg.MaxBytes, DefaultPartitionConfig().MaxBytes))
	}
	if cfg.CommitInterval <= 0 {
		errs = append(errs, fmt.Errorf("CommitInterval %s: want more than 0 (DefaultPartitionConfig has %s)", cfg.CommitInterval, DefaultPartitionConfig().CommitInterval))
	}
	if cfg.LagEvery <= 0 {
		errs = append(errs, fmt.Errorf("LagEvery %s: want more than 0 (DefaultPartitionConfig has %s)", cfg.LagEvery, DefaultPartitionConfig().LagEvery))
	}
	if cfg.Commit == nil && cfg.Generation == nil {
		errs = append(errs, errors.New("neither Commit nor Generation: nowhere to commit"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("partition consumer of %s/%d: %w", cfg.Topic, cfg.Partition, err)
	}
	return nil
}

// Handler handles one message. It marks the message finished through o
// (now, later from another goroutine, or when a write is acknowledged)
// and returns false to stop reading (ctx ended).
type Handler func(ctx context.Context, m contract.Message, o *Offsets) bool

// ConsumePartition reads a partition from its committed offset until ctx
// ends or handle returns false, committing in order what handle finished;
// it returns the last offset committed (-1 when none). A message is never
// committed before it and every earlier one are finished. A cfg that does
// not Validate is refused before anything is read (-1 and the error; Drain
// still runs).
func ConsumePartition(ctx context.Context, cfg PartitionConfig, handle Handler) (committed int64, invalid error) {
	if err := cfg.Validate(); err != nil {
		if cfg.Drain != nil {
			cfg.Drain()
		}
		return -1, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Commit == nil {
		gen, topic, p := cfg.Generation, cfg.Topic, cfg.Partition
		cfg.Commit = func(next int64) error { return gen.commit(topic, p, next) }
	}
	o := cfg.Offsets
	if o == nil {
		o = NewOffsets(0)
	}
	var last int64 = -1
	commit := func() {
		if n := o.Committable(); n > last {
			if err := cfg.Commit(n); err == nil {
				last = n
			}
		}
	}
	stop := make(chan struct{})
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); o.waitLoop(ctx, stop) }()
	go func() {
		defer loops.Done()
		t := time.NewTicker(cfg.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if cfg.Tick != nil {
					cfg.Tick()
				}
				commit()
			}
		}
	}()
	defer func() {
		if cfg.Drain != nil {
			cfg.Drain()
		}
		close(stop)
		loops.Wait()
		commit()
		committed = last
	}()
	// A fetch's answer may take long to begin on a busy broker (see
	// ReadRange): a short MaxWait would drop it and ask again forever.
	// Dropping the connections on the way out keeps the stop prompt.
	rd, closeConns := cfg.Cluster.closingReader(kafka.ReaderConfig{Topic: cfg.Topic, Partition: cfg.Partition, MinBytes: 1, MaxBytes: cfg.MaxBytes,
		MaxWait: rangeAnswerWait, ReadBatchTimeout: rangeAnswerWait})
	defer func() {
		closeConns()
		_ = rd.Close()
	}()
	offset := cfg.Offset
	if offset < 0 {
		offset = kafka.FirstOffset
	}
	if err := rd.SetOffset(offset); err != nil {
		cfg.Logger.Error("seek", "topic", cfg.Topic, "partition", cfg.Partition, "error", err.Error())
		return
	}
	if cfg.Lag != nil {
		go TrackLag(ctx, rd, cfg.Lag, cfg.Partition, cfg.LagEvery)
	}
	for {
		m, err := rd.FetchMessage(ctx)
		if err != nil {
			return
		}
		o.add(m.Offset)
		if !handle(ctx, FromKafka(m), o) {
			return
		}
	}
}
