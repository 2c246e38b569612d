package ledger

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// Writer publishes messages synchronously (acks=all): a bus.NewWriter.
type Writer interface {
	WriteMessages(ctx context.Context, msgs ...contract.Message) error
}

// IntegratorConfig configures an Integrator. Kafka, Log, Store and Metrics
// are required; zero sizes and durations take DefaultIntegratorConfig's.
type IntegratorConfig struct {
	Kafka                            bus.Cluster
	GroupID                          string
	LeavesTopic                      string
	SessionTimeout, RebalanceTimeout time.Duration
	Log                              *Log
	// Store is where the index entries are read (the log's bucket).
	Store objstore.Bucket
	// BatchSize is the most leaves one checkpoint adds; Interval the
	// longest a leaf waits for its checkpoint.
	BatchSize int
	Interval  time.Duration
	// Checkpoints, when set, publishes each new signed checkpoint.
	Checkpoints Writer
	Source      string // ce_source of published checkpoints
	// TSA, when its URL is set, time-stamps each new checkpoint (RFC
	// 3161); the token is stored at Reader.TimestampKey. A TSA that fails
	// is counted and the next checkpoint tried: the log never waits on it.
	TSA TSA
	// TSATimeout bounds one time-stamp request.
	TSATimeout time.Duration
	// TSACertificates, when set, check each token before it is stored
	// (a TSA answering with another certificate is counted as untrusted).
	TSACertificates []*x509.Certificate
	RetryMin        time.Duration
	RetryMax        time.Duration
	Now             clock.Now
	Metrics         *Metrics
	Logger          *slog.Logger
}

// DefaultIntegratorConfig returns the integrator's defaults.
func DefaultIntegratorConfig() IntegratorConfig {
	g := bus.DefaultGroupConfig()
	return IntegratorConfig{GroupID: "faceharvest-ledger", LeavesTopic: contract.DefaultLedgerLeavesTopic, BatchSize: 1024, Interval: 5 * time.Second,
		SessionTimeout: g.SessionTimeout, RebalanceTimeout: g.RebalanceTimeout, Source: "/ledger", TSATimeout: 10 * time.Second, RetryMin: 200 * time.Millisecond, RetryMax: 10 * time.Second}
}

// Integrator consumes the leaves topic and extends the log. The topic has
// one partition and the integrators one consumer group, so one member
// integrates at a time; the log's claims keep a stale one from forking it.
type Integrator struct {
	cfg IntegratorConfig
	m   *Metrics
	log *slog.Logger
	// mu serializes batches: a topic of several partitions (a
	// misconfiguration, warned about) gives a member several batchers, and
	// the Log is not safe for concurrent use.
	mu sync.Mutex
}

// NewIntegrator returns an integrator.
func NewIntegrator(cfg IntegratorConfig) (*Integrator, error) {
	def := DefaultIntegratorConfig()
	if cfg.Log == nil || cfg.Store == nil || cfg.Metrics == nil || len(cfg.Kafka.Brokers) == 0 {
		return nil, errors.New("ledger integrator: brokers, a log, a store and metrics are required")
	}
	if cfg.GroupID == "" {
		cfg.GroupID = def.GroupID
	}
	if cfg.LeavesTopic == "" {
		cfg.LeavesTopic = def.LeavesTopic
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = def.BatchSize
	}
	if cfg.Interval <= 0 {
		cfg.Interval = def.Interval
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = def.RetryMin
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = def.RetryMax
	}
	if cfg.Source == "" {
		cfg.Source = def.Source
	}
	if cfg.TSATimeout <= 0 {
		cfg.TSATimeout = def.TSATimeout
	}
	if cfg.Now == nil {
		cfg.Now = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cp, _ := cfg.Log.Checkpoint()
	cfg.Metrics.size.Set(float64(cp.Size))
	in := &Integrator{cfg: cfg, m: cfg.Metrics, log: cfg.Logger}
	cfg.Log.stale = func(stored, ours int64) {
		in.m.staleCheckpoints.Inc()
		in.log.Warn("checkpoint not stored: the stored one is of a larger tree (this integrator was stale)", "stored_tree_size", stored, "tree_size", ours)
	}
	return in, nil
}

// Run consumes the leaves topic until ctx ends.
func (in *Integrator) Run(ctx context.Context) error {
	return bus.ConsumeGroup(ctx, bus.GroupConfig{Cluster: in.cfg.Kafka, GroupID: in.cfg.GroupID, Topic: in.cfg.LeavesTopic,
		SessionTimeout: in.cfg.SessionTimeout, RebalanceTimeout: in.cfg.RebalanceTimeout, Logger: in.log}, in.runPartition)
}

func (in *Integrator) policy(what string) retry.Policy {
	return retry.Policy{Backoff: retry.Backoff{Min: in.cfg.RetryMin, Max: in.cfg.RetryMax}, OnFailure: func(try int, err error, _ time.Duration) {
		in.m.appendFailures.Inc()
		if try == 1 || try%10 == 0 {
			in.log.Warn(what+" failed; retrying", "try", try, "error", err.Error())
		}
	}}
}

func permanentIfDone(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return retry.Permanent(ctx.Err())
	}
	return err
}

// runPartition integrates one assigned partition: messages are batched by
// one goroutine and their offsets finished once their checkpoint is
// written.
func (in *Integrator) runPartition(ctx context.Context, gen *bus.Generation, p int, offset int64) {
	if p != 0 {
		in.log.Warn("the leaves topic has more than one partition: the log's order is then the order integrated, still one chain", "partition", p)
	}
	// The previous owner may have claimed a batch and died: finish it
	// before anything else.
	in.mu.Lock()
	err := retry.Do(ctx, in.policy("loading the log"), func(int) error { return permanentIfDone(ctx, in.cfg.Log.Reload(ctx)) })
	in.mu.Unlock()
	if err != nil {
		return
	}
	in.mu.Lock()
	cp, _ := in.cfg.Log.Checkpoint()
	in.mu.Unlock()
	in.m.size.Set(float64(cp.Size))
	in.log.Info("integrating", "partition", p, "offset", offset, "tree_size", cp.Size)
	ch := make(chan contract.Message, in.cfg.BatchSize)
	done := make(chan struct{})
	o := bus.NewOffsets(in.cfg.BatchSize * 2)
	go func() {
		defer close(done)
		in.batch(ctx, ch, o)
	}()
	part := bus.DefaultPartitionConfig()
	part.Cluster, part.Topic, part.Partition, part.Offset, part.Generation = in.cfg.Kafka, in.cfg.LeavesTopic, p, offset, gen
	part.Offsets, part.Lag, part.Logger, part.Drain = o, in.m.lag, in.log, func() { close(ch); <-done }
	if _, err := bus.ConsumePartition(ctx, part,
		func(ctx context.Context, m contract.Message, _ *bus.Offsets) bool {
			select {
			case ch <- m:
				return true
			case <-ctx.Done():
				return false
			}
		}); err != nil {
		in.log.Error("partition not consumed", "partition", p, "error", err.Error())
	}
}

// batch collects leaves until BatchSize or Interval after the first, and
// integrates them.
func (in *Integrator) batch(ctx context.Context, ch <-chan contract.Message, o *bus.Offsets) {
	var pending []contract.Message
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() bool {
		timer.Stop()
		if len(pending) == 0 {
			return true
		}
		if err := in.integrate(ctx, pending); err != nil {
			return false // ctx ended: the offsets stay uncommitted
		}
		for _, m := range pending {
			o.Done(m.Offset)
		}
		pending = pending[:0]
		return true
	}
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			pending = append(pending, m)
			if len(pending) == 1 {
				timer.Reset(in.cfg.Interval)
			}
			if len(pending) >= in.cfg.BatchSize && !flush() {
				return
			}
		case <-timer.C:
			if !flush() {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// integrate appends the entries that msgs name, then publishes the
// checkpoint. It returns an error only when ctx ended.
func (in *Integrator) integrate(ctx context.Context, msgs []contract.Message) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	start := in.cfg.Now()
	read := make([]timedLeaf, len(msgs))
	usable := make([]bool, len(msgs))
	if err := parallel(len(msgs), storeWorkers, func(i int) error {
		var err error
		read[i], usable[i], err = in.entry(ctx, msgs[i])
		return err
	}); err != nil {
		return err
	}
	var leaves []Leaf
	var indexed []time.Time
	for i, lf := range read {
		if usable[i] {
			leaves = append(leaves, lf.Leaf)
			indexed = append(indexed, lf.at)
		}
	}
	before, _ := in.cfg.Log.Checkpoint()
	var n int
	err := retry.Do(ctx, in.policy("extending the log"), func(int) error {
		var err error
		n, err = in.cfg.Log.Append(ctx, leaves)
		if err != nil && ctx.Err() == nil {
			// A stale view (another integrator, a half-written batch):
			// read the log again before the next try.
			if rerr := in.cfg.Log.Reload(ctx); rerr != nil {
				return rerr
			}
		}
		return permanentIfDone(ctx, err)
	})
	if err != nil {
		return err
	}
	cp, signed := in.cfg.Log.Checkpoint()
	in.m.leaves.Add(float64(n))
	in.m.repeats.Add(float64(len(leaves) - n))
	in.m.batchSeconds.Observe(in.cfg.Now().Sub(start).Seconds())
	if cp == before {
		return nil
	}
	now := in.cfg.Now()
	for _, at := range indexed {
		in.m.delay.Observe(max(0, now.Sub(at).Seconds()))
	}
	in.m.checkpoints.Inc()
	in.m.size.Set(float64(cp.Size))
	in.m.checkpointTime.Set(float64(now.Unix()))
	in.log.Info("checkpoint", "tree_size", cp.Size, "leaves", n)
	if in.cfg.TSA.URL != "" {
		in.stamp(ctx, cp, signed)
	}
	if in.cfg.Checkpoints == nil {
		return nil
	}
	env := contract.Envelope{ID: contract.EventID("ledger-checkpoint", cp.Origin, fmt.Sprint(cp.Size)), Source: in.cfg.Source, Type: contract.TypeLedgerCheckpoint,
		Time: now, ContentType: contract.ContentTypeCheckpoint, Key: cp.Origin, Value: signed}
	return retry.Do(ctx, in.policy("publishing the checkpoint"), func(int) error {
		return permanentIfDone(ctx, in.cfg.Checkpoints.WriteMessages(ctx, env.Message()))
	})
}

// stamp asks the TSA for the checkpoint's time-stamp token and stores it.
// A failure is counted and logged, not retried: the next checkpoint is
// stamped in its turn (and proves, by consistency, every earlier tree).
func (in *Integrator) stamp(ctx context.Context, cp Checkpoint, signed []byte) {
	sctx, cancel := context.WithTimeout(ctx, in.cfg.TSATimeout)
	defer cancel()
	reason, err := StampCheckpoint(sctx, in.cfg.TSA, in.cfg.TSACertificates, in.cfg.Log.Reader(), cp.Size, signed)
	if err != nil {
		if ctx.Err() == nil {
			in.m.timestampFailures.WithLabelValues(reason).Inc()
			in.log.Warn("checkpoint not time-stamped; the next one will be", "tree_size", cp.Size, "reason", reason, "error", err.Error())
		}
		return
	}
	in.m.timestamps.Inc()
	in.m.timestampTime.Set(float64(in.cfg.Now().Unix()))
}

type timedLeaf struct {
	Leaf
	at time.Time
}

// entry reads the index entry a leaf message names. false: the message is
// skipped (counted and logged: ledger check reports the entry if it
// exists); an error only when ctx ended.
func (in *Integrator) entry(ctx context.Context, m contract.Message) (timedLeaf, bool, error) {
	env, err := contract.FromMessage(m)
	var l contract.LedgerLeaf
	if err == nil {
		l, err = contract.ParseLedgerLeaf(env.Value)
	}
	if err != nil {
		in.m.entryErrors.WithLabelValues("bad_message").Inc()
		in.log.Error("not a leaf message; skipped", "offset", m.Offset, "error", err.Error())
		return timedLeaf{}, false, nil
	}
	var body []byte
	err = retry.Do(ctx, in.policy("reading an index entry"), func(int) error {
		var err error
		body, err = getLimited(ctx, in.cfg.Store, l.IndexKey, maxEntry)
		if errors.Is(err, objstore.ErrNotFound) || errors.Is(err, errTooLarge) {
			return retry.Permanent(err)
		}
		return permanentIfDone(ctx, err)
	})
	switch {
	case ctx.Err() != nil:
		return timedLeaf{}, false, ctx.Err()
	case errors.Is(err, objstore.ErrNotFound):
		in.m.entryErrors.WithLabelValues("missing").Inc()
		in.log.Error("leaf names an index entry that is not in the store; skipped", "key", l.IndexKey)
		return timedLeaf{}, false, nil
	case err != nil:
		in.m.entryErrors.WithLabelValues("unreadable").Inc()
		in.log.Error("index entry unreadable; skipped", "key", l.IndexKey, "error", err.Error())
		return timedLeaf{}, false, nil
	}
	if _, err := archiver.ParseIndexEntry(body); err != nil {
		in.m.entryErrors.WithLabelValues("unreadable").Inc()
		in.log.Error("not an index entry; skipped", "key", l.IndexKey, "error", err.Error())
		return timedLeaf{}, false, nil
	}
	if EntrySHA256(body) != l.EntrySHA256 {
		in.m.entryErrors.WithLabelValues("changed").Inc()
		in.log.Error("stored index entry differs from the one the archiver wrote; the stored bytes are the leaf", "key", l.IndexKey)
	}
	return timedLeaf{Leaf: Leaf{Key: l.IndexKey, Data: body}, at: l.IndexedAt}, true, nil
}
