package harvester

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// KafkaStateStore keeps states in the compacted state topic.
type KafkaStateStore struct{ W *bus.Writer }

// NewKafkaStateStore returns a store writing to topic with acks=all, each
// record to the partition of the events it came from.
func NewKafkaStateStore(cl bus.Cluster, topic string) *KafkaStateStore {
	return &KafkaStateStore{W: bus.NewWriter(bus.WriterConfig{Cluster: cl, Topic: topic, ByPartition: true})}
}

// Save implements StateStore.
func (s *KafkaStateStore) Save(ctx context.Context, partition int, key string, r *StateRecord) error {
	m := contract.Message{Partition: partition, Key: []byte(key)}
	if r != nil {
		m.Value = MarshalRecord(r)
	}
	return s.W.WriteMessages(ctx, m)
}

// KafkaRecorder finds a key's messages in the raw topic.
type KafkaRecorder struct {
	Cluster    bus.Cluster
	Topic      string
	Partitions int
}

// NewKafkaRecorder reads the raw topic's partition count.
func NewKafkaRecorder(ctx context.Context, cl bus.Cluster, topic string) (*KafkaRecorder, error) {
	n, err := bus.PartitionCount(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	return &KafkaRecorder{Cluster: cl, Topic: topic, Partitions: n}, nil
}

// Mark implements Recorder.
func (r *KafkaRecorder) Mark(ctx context.Context, key string) (int, int64, error) {
	p := bus.PartitionOf([]byte(key), r.Partitions)
	_, end, err := bus.PartitionBounds(ctx, r.Cluster, r.Topic, p)
	return p, end, err
}

// Find implements Recorder: it reads the partition from offset to its end.
func (r *KafkaRecorder) Find(ctx context.Context, key string, partition int, offset int64, ids []string) ([]contract.Message, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []contract.Message
	err := bus.ReadRange(ctx, r.Cluster, r.Topic, partition, offset, func(m contract.Message) {
		if string(m.Key) != key {
			return
		}
		for _, h := range m.Headers {
			if h.Key == contract.HeaderID && want[string(h.Value)] {
				out = append(out, m)
			}
		}
	})
	return out, err
}

// Config configures a Harvester. Zero fields take DefaultRunConfig's
// values, except the engine's: Engine must pass Validate (start from
// DefaultConfig).
type Config struct {
	Kafka                                       bus.Cluster
	GroupID                                     string
	EventsTopic, StateTopic, RawTopic, DLQTopic string
	Engine                                      EngineConfig // Store, Raw and Recorder are filled in by New
	CommitInterval                              time.Duration
	SessionTimeout, RebalanceTimeout            time.Duration // consumer group timeouts
	// MinRawMessageBytes is the smallest max.message.bytes of the raw topic
	// the harvester accepts at start: answers of Engine.InlineMax bytes or
	// more go by reference, so the largest raw message is a little above
	// InlineMax; negative skips the check.
	MinRawMessageBytes int
	Logger             *slog.Logger
}

// DefaultRunConfig returns the consumer's defaults (no cluster, group or
// topics; the engine's DefaultConfig): the flags take theirs from it, and
// New fills a zero field from it. The commit interval and the group's
// timeouts are pkg/bus's.
func DefaultRunConfig() Config {
	group, part := bus.DefaultGroupConfig(), bus.DefaultPartitionConfig()
	return Config{
		Engine:             DefaultConfig(),
		CommitInterval:     part.CommitInterval,
		SessionTimeout:     group.SessionTimeout,
		RebalanceTimeout:   group.RebalanceTimeout,
		MinRawMessageBytes: 256 << 10,
	}
}

// Harvester is the consumer-group process: it restores each assigned
// partition's state, feeds its events to the engine and commits offsets only
// once the state they produced is acknowledged.
type Harvester struct {
	cfg   Config
	eng   *Engine
	store *KafkaStateStore
	raw   *bus.Writer
	dlq   *bus.Writer
	dl    *bus.DeadLetters // writes to dlq
	log   *slog.Logger
	start startup
}

// New checks the topics (events and state co-partitioned) and returns a
// Harvester.
func New(ctx context.Context, cfg Config) (*Harvester, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	def := DefaultRunConfig()
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = def.CommitInterval
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = def.SessionTimeout
	}
	if cfg.RebalanceTimeout <= 0 {
		cfg.RebalanceTimeout = def.RebalanceTimeout
	}
	if cfg.MinRawMessageBytes == 0 {
		cfg.MinRawMessageBytes = def.MinRawMessageBytes
	}
	if err := cfg.Engine.Validate(); err != nil {
		return nil, err
	}
	if cfg.Engine.Answers == nil {
		return nil, fmt.Errorf("no object store for the vendors' answers: large answers go to the raw topic by reference")
	}
	ne, err := bus.PartitionCount(ctx, cfg.Kafka, cfg.EventsTopic)
	if err != nil {
		return nil, err
	}
	ns, err := bus.PartitionCount(ctx, cfg.Kafka, cfg.StateTopic)
	if err != nil {
		return nil, err
	}
	if ne != ns {
		return nil, fmt.Errorf("the state topic %q has %d partitions and the events topic %q %d: they must be co-partitioned (equal counts)", cfg.StateTopic, ns, cfg.EventsTopic, ne)
	}
	for _, t := range []string{cfg.RawTopic, cfg.DLQTopic} {
		if _, err := bus.PartitionCount(ctx, cfg.Kafka, t); err != nil {
			return nil, err
		}
	}
	if err := checkTopicSettings(ctx, cfg); err != nil {
		return nil, err
	}
	rec, err := NewKafkaRecorder(ctx, cfg.Kafka, cfg.RawTopic)
	if err != nil {
		return nil, err
	}
	h := &Harvester{cfg: cfg, log: cfg.Logger,
		store: NewKafkaStateStore(cfg.Kafka, cfg.StateTopic),
		raw:   bus.NewWriter(bus.WriterConfig{Cluster: cfg.Kafka, Topic: cfg.RawTopic}),
		dlq:   bus.NewWriter(bus.WriterConfig{Cluster: cfg.Kafka, Topic: cfg.DLQTopic})}
	ec := cfg.Engine
	ec.Store, ec.Raw, ec.Recorder, ec.Logger = h.store, h.raw, rec, cfg.Logger
	h.eng = NewEngine(ec)
	h.dl = newDeadLetters(h.dlq, h.eng.now, h.log, h.eng.m, retry.Sleep)
	return h, nil
}

// checkTopicSettings refuses topics whose settings break the laws: a state
// topic that is not compacted loses pending verifications to retention; a
// raw topic that refuses inline answers stalls every verification behind one.
func checkTopicSettings(ctx context.Context, cfg Config) error {
	st, err := bus.TopicSettings(ctx, cfg.Kafka, cfg.StateTopic, "cleanup.policy")
	if err != nil {
		return err
	}
	if !strings.Contains(st["cleanup.policy"], "compact") {
		return fmt.Errorf("the state topic %q has cleanup.policy=%q: it must be compact, or retention deletes pending verifications (see deploy/k8s/topics)", cfg.StateTopic, st["cleanup.policy"])
	}
	min := cfg.MinRawMessageBytes
	if min < 0 {
		return nil
	}
	raw, err := bus.TopicSettings(ctx, cfg.Kafka, cfg.RawTopic, "max.message.bytes")
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(raw["max.message.bytes"]); err != nil || n < min {
		return fmt.Errorf("the raw topic %q has max.message.bytes=%q: answers below %d bytes travel inline, set at least %d (see deploy/k8s/topics)", cfg.RawTopic, raw["max.message.bytes"], cfg.Engine.InlineMax, min)
	}
	return nil
}

// Engine returns the engine (tests).
func (h *Harvester) Engine() *Engine { return h.eng }

// Writers returns the writers, for metrics.
func (h *Harvester) Writers() []*bus.Writer { return []*bus.Writer{h.store.W, h.raw, h.dlq} }

// Run consumes until ctx ends, then drains: calls in flight finish and are
// recorded, offsets are committed, writers flushed.
func (h *Harvester) Run(ctx context.Context) error {
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engDone := make(chan struct{})
	go func() { _ = h.eng.Run(engCtx); close(engDone) }()
	defer func() {
		stopEngine()
		<-engDone
		_ = h.store.W.Close()
		_ = h.raw.Close()
		_ = h.dlq.Close()
	}()
	return bus.ConsumeGroup(ctx, bus.GroupConfig{Cluster: h.cfg.Kafka, GroupID: h.cfg.GroupID, Topic: h.cfg.EventsTopic,
		SessionTimeout: h.cfg.SessionTimeout, RebalanceTimeout: h.cfg.RebalanceTimeout, Logger: h.log,
		Joined: func(gen *bus.Generation) { h.start.joined(gen.ID, len(gen.Partitions)) }}, h.runPartition)
}

func (h *Harvester) runPartition(ctx context.Context, gen *bus.Generation, p int, offset int64) {
	start := time.Now()
	h.log.Info("restoring partition", "partition", p, "generation", gen.ID)
	var recs map[string]*StateRecord
	err := retry.Do(ctx, retry.Policy{Backoff: retry.Backoff{Min: time.Second, Max: time.Second},
		OnFailure: func(_ int, err error, _ time.Duration) {
			h.log.Error("restoring partition failed; retrying", "partition", p, "error", err.Error())
		}}, func(int) (err error) {
		recs, err = h.restore(ctx, p)
		return err
	})
	if err != nil {
		return // ctx ended
	}
	h.eng.m.restoreSeconds.Observe(time.Since(start).Seconds())
	pending := 0
	for _, r := range recs {
		if r.State != nil {
			pending++
		}
	}
	h.eng.m.restored.Add(float64(pending))
	h.eng.AddPartition(p, recs)
	h.start.restored(gen.ID)
	h.log.Info("partition assigned", "partition", p, "offset", offset, "restored", pending, "restore_ms", time.Since(start).Milliseconds())
	defer h.eng.RevokePartition(p)

	part := bus.DefaultPartitionConfig()
	part.Cluster, part.Topic, part.Partition, part.Offset, part.Generation = h.cfg.Kafka, h.cfg.EventsTopic, p, offset, gen
	part.CommitInterval, part.Lag, part.Logger = h.cfg.CommitInterval, h.eng.m.lag, h.log
	if _, err := bus.ConsumePartition(ctx, part,
		func(ctx context.Context, m contract.Message, o *bus.Offsets) bool {
			saved, ok := h.handle(ctx, m)
			return ok && o.DoneWhen(ctx, m.Offset, saved)
		}); err != nil {
		h.log.Error("partition not consumed", "partition", p, "error", err.Error())
	}
}

// handle decodes one event and applies it; undecodable events are
// dead-lettered (acknowledged) so they never block the partition.
func (h *Harvester) handle(ctx context.Context, m contract.Message) (<-chan struct{}, bool) {
	typ, ev, label, reason := decodeEvent(m)
	if label != "" {
		if !h.dl.Write(ctx, m, label, reason) {
			return nil, false // shutting down: the offset stays uncommitted
		}
		return closedCh, true
	}
	h.eng.m.events.WithLabelValues(typ).Inc()
	if archived, ok := h.eng.archived(ctx, ev); !ok {
		return nil, false // shutting down: the offset stays uncommitted
	} else if archived {
		return closedCh, true
	}
	if msg, ok := h.eng.callbackResponse(typ, ev); ok {
		// The signed callback is evidence: on the raw topic before the state
		// naming it is stored, so it precedes any terminal of the key.
		if !h.eng.publish(ctx, msg) {
			return nil, false // shutting down: the offset stays uncommitted
		}
	}
	return h.eng.Apply(m.Partition, typ, ev), true
}

// decodeEvent reads an events-topic message. When it cannot be used, label
// (a metric label) and reason (for people, in the dead letter) say why.
func decodeEvent(m contract.Message) (typ string, ev contract.Event, label, reason string) {
	env, err := contract.FromMessage(m)
	switch {
	case err != nil:
		return "", ev, "bad_envelope", err.Error()
	case env.Type != contract.TypeTokenRegistered && env.Type != contract.TypeMegviiCallback && env.Type != contract.TypeBaiduCompletion:
		return "", ev, "unknown_type", "unknown event type " + env.Type
	case json.Unmarshal(m.Value, &ev) != nil:
		return "", ev, "bad_value", "value is not an event"
	case ev.VerificationID == "" || ev.ReceivedAt.IsZero():
		return "", ev, "bad_value", "event lacks verification_id or received_at"
	}
	if _, err := contract.ParseVendor(string(ev.Vendor)); err != nil {
		return "", ev, "bad_value", err.Error()
	}
	if string(m.Key) != contract.Key(ev.Vendor, ev.VerificationID) {
		return "", ev, "bad_key", "key does not match the event"
	}
	return env.Type, ev, "", ""
}

// restore reads a partition of the state topic to its end. The last record
// of each key wins; values are decoded after the read, on every core.
func (h *Harvester) restore(ctx context.Context, p int) (map[string]*StateRecord, error) {
	raw := map[string][]byte{}
	// State records are small: modest fetches spare the broker from building
	// 64 MiB responses.
	err := bus.ReadRange(ctx, h.cfg.Kafka, h.cfg.StateTopic, p, -1, func(m contract.Message) {
		if m.Value == nil {
			delete(raw, string(m.Key))
			return
		}
		raw[string(m.Key)] = m.Value
	})
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	// Decoding is most of the work: every core takes a share of the keys,
	// each writing only its own slots.
	decoded := make([]*StateRecord, len(keys))
	var bad atomic.Int64
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(keys); i += workers {
				r, err := UnmarshalRecord(raw[keys[i]])
				if err != nil {
					bad.Add(1)
					continue
				}
				decoded[i] = r
			}
		}()
	}
	wg.Wait()
	recs := make(map[string]*StateRecord, len(keys))
	for i, k := range keys {
		if decoded[i] != nil {
			recs[k] = decoded[i]
		}
	}
	if n := bad.Load(); n > 0 {
		h.log.Warn("undecodable state records skipped", "partition", p, "count", n)
	}
	return recs, nil
}

// RestoreInto restores partition p into the engine, as an assignment would
// (benchmarks).
func (h *Harvester) RestoreInto(ctx context.Context, p int) error {
	recs, err := h.restore(ctx, p)
	if err != nil {
		return err
	}
	h.eng.AddPartition(p, recs)
	return nil
}
