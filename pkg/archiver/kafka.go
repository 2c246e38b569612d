package archiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// RunConfig configures the consumer-group process around an Archiver.
// DefaultRunConfig has its defaults; Validate checks it.
type RunConfig struct {
	Kafka                            bus.Cluster
	GroupID                          string
	RawTopic, ResultsTopic, DLQTopic string
	Workers                          int // concurrent verifications per partition
	CommitInterval                   time.Duration
	// HoldLimit is how long an answer kept only in memory may hold its offset
	// back waiting for its terminal before its part is stored anyway.
	HoldLimit time.Duration
	// DrainTimeout is how long messages being handled when a partition is
	// revoked (shutdown or rebalance) may take to finish; messages queued
	// behind them are left to the next owner.
	DrainTimeout                     time.Duration
	SessionTimeout, RebalanceTimeout time.Duration
	// DLQPayload says where dead letters' payloads go: inline or the
	// archiver's store, leaving a reference in the dead letter.
	DLQPayload bus.DeadLetterPayloadMode
	Logger     *slog.Logger
}

// Runner consumes the raw topic as a consumer group. Messages of one
// verification are handled in order by one worker; different verifications
// run concurrently; an offset is committed only once it and every earlier
// one are done (archived, published and acknowledged, or dead-lettered).
type Runner struct {
	cfg     RunConfig
	a       *Archiver
	results *bus.Writer
	dlq     *bus.Writer
	dl      *bus.DeadLetters // writes to dlq
	log     *slog.Logger
}

// NewRunner checks that the topics exist and returns a Runner. cfg's
// settings are used as they are: start from DefaultRunConfig (a zero
// setting is an error, not a default).
func NewRunner(ctx context.Context, cfg RunConfig, a *Archiver) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := bus.CheckTopics(ctx, cfg.Kafka, cfg.RawTopic, cfg.ResultsTopic, cfg.DLQTopic); err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, a: a, log: cfg.Logger,
		results: bus.NewWriter(bus.WriterConfig{Cluster: cfg.Kafka, Topic: cfg.ResultsTopic}),
		dlq:     bus.NewWriter(bus.WriterConfig{Cluster: cfg.Kafka, Topic: cfg.DLQTopic})}
	r.dl = newDeadLetters(r.dlq, cfg.DLQPayload, a, cfg.Logger)
	return r, nil
}

// Writers returns the writers, for metrics.
func (r *Runner) Writers() []*bus.Writer { return []*bus.Writer{r.results, r.dlq} }

// Run consumes until ctx ends. Messages being handled then get DrainTimeout
// to finish; whatever does not finish is left uncommitted (archiving is
// idempotent, and the partition's next owner redoes it).
func (r *Runner) Run(ctx context.Context) error {
	defer func() {
		_ = r.results.Close()
		_ = r.dlq.Close()
	}()
	return bus.ConsumeGroup(ctx, bus.GroupConfig{Cluster: r.cfg.Kafka, GroupID: r.cfg.GroupID, Topic: r.cfg.RawTopic,
		SessionTimeout: r.cfg.SessionTimeout, RebalanceTimeout: r.cfg.RebalanceTimeout, Logger: r.log}, r.runPartition)
}

// held is an answer whose part is only in memory: its offset is finished
// when its verification's record is published (or its part stored).
type held struct {
	offset int64
	part   *Part
	since  time.Time
}

// partition is one assigned partition's bookkeeping.
type partition struct {
	p    int
	tr   *bus.Offsets
	mu   sync.Mutex
	held map[string][]held // by message key
}

func (pt *partition) hold(key string, h held) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.held[key] = append(pt.held[key], h)
}

// release finishes the held offsets of key.
func (pt *partition) release(key string) {
	pt.mu.Lock()
	hs := pt.held[key]
	delete(pt.held, key)
	pt.mu.Unlock()
	for _, h := range hs {
		pt.tr.Done(h.offset)
	}
}

// persist stores the parts of key held in memory, then releases them: for a
// terminal that cannot be used, and for answers held too long.
func (r *Runner) persist(ctx context.Context, pt *partition, key string) bool {
	pt.mu.Lock()
	hs := append([]held(nil), pt.held[key]...)
	pt.mu.Unlock()
	for _, h := range hs {
		if r.a.Persist(ctx, h.part) != nil {
			return false
		}
	}
	pt.release(key)
	return true
}

// persistOld stores and releases the answers held longer than HoldLimit.
func (r *Runner) persistOld(ctx context.Context, pt *partition) {
	pt.mu.Lock()
	var old []string
	for k, hs := range pt.held {
		if len(hs) > 0 && time.Since(hs[0].since) > r.cfg.HoldLimit {
			old = append(old, k)
		}
	}
	pt.mu.Unlock()
	for _, k := range old {
		if !r.persist(ctx, pt, k) {
			return
		}
	}
}

func (r *Runner) runPartition(ctx context.Context, gen *bus.Generation, p int, offset int64) {
	r.log.Info("partition assigned", "partition", p, "offset", offset)
	pt := &partition{p: p, tr: bus.NewOffsets(0), held: map[string][]held{}}
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(r.cfg.DrainTimeout, stopWork) })
	defer stopDrain()
	shards := make([]chan contract.Message, r.cfg.Workers)
	var wg sync.WaitGroup
	for i := range shards {
		shards[i] = make(chan contract.Message, 16)
		wg.Add(1)
		go func(ch <-chan contract.Message) {
			defer wg.Done()
			for m := range ch {
				if ctx.Err() != nil {
					continue // abandoned: not committed, redone by the next owner
				}
				if r.handle(work, pt, m) {
					pt.tr.Done(m.Offset)
				}
			}
		}(shards[i])
	}
	part := bus.DefaultPartitionConfig()
	part.Cluster, part.Topic, part.Partition, part.Offset, part.Generation = r.cfg.Kafka, r.cfg.RawTopic, p, offset, gen
	part.MaxBytes, part.Offsets, part.CommitInterval, part.Lag, part.Logger = 64<<20, pt.tr, r.cfg.CommitInterval, r.a.m.lag, r.log
	part.Tick = func() { r.persistOld(work, pt) }
	part.Drain = func() {
		for _, ch := range shards {
			close(ch)
		}
		wg.Wait()
	}
	last, err := bus.ConsumePartition(ctx, part,
		func(ctx context.Context, m contract.Message, _ *bus.Offsets) bool {
			h := fnv.New32a()
			h.Write(m.Key)
			select {
			case shards[h.Sum32()%uint32(len(shards))] <- m:
				return true
			case <-ctx.Done():
				return false
			}
		})
	// Answers still held were not committed: the partition's next owner
	// re-reads them, so their parts need not stay in this memory.
	pt.mu.Lock()
	for _, hs := range pt.held {
		for _, h := range hs {
			r.a.forget(h.part)
		}
	}
	pt.mu.Unlock()
	if err != nil {
		r.log.Error("partition not consumed", "partition", p, "error", err.Error())
	}
	r.log.Info("partition released", "partition", p, "committed", last)
}

// handle archives one raw-topic message. It reports true when the message is
// done; false when ctx ended first, or when an answer is held in memory
// until its terminal (pt.release finishes it then).
func (r *Runner) handle(ctx context.Context, pt *partition, m contract.Message) bool {
	p := pt.p
	env, err := contract.FromMessage(m)
	if err != nil {
		return r.deadLetter(ctx, p, m, "bad_envelope", err.Error())
	}
	switch env.Type {
	case contract.TypeVendorResponse:
		resp, err := contract.ParseResponse(m)
		if err != nil {
			return r.deadLetter(ctx, p, m, "bad_response", err.Error())
		}
		if string(m.Key) != contract.Key(resp.Vendor, resp.VerificationID) {
			return r.deadLetter(ctx, p, m, "bad_key", "key does not match the response's vendor and verification id")
		}
		if bad, err := r.a.loadAnswer(ctx, &resp); bad != nil {
			return r.deadLetter(ctx, p, m, "raw_mismatch", bad.Error())
		} else if err != nil {
			r.unfinished(ctx, p, m, err)
			return false
		}
		part, err := r.a.ArchiveResponse(ctx, env.ID, resp)
		if err != nil {
			r.unfinished(ctx, p, m, err)
			return false
		}
		if !part.Durable() {
			pt.hold(string(m.Key), held{offset: m.Offset, part: part, since: time.Now()})
			return false
		}
		return true
	case contract.TypeHarvestTerminal:
		t, reason := decodeTerminal(m)
		if reason != "" {
			// Its answers' evidence must not depend on a terminal that
			// never comes: store what is held, then dead-letter.
			return r.persist(ctx, pt, string(m.Key)) && r.deadLetter(ctx, p, m, "bad_terminal", reason)
		}
		f, err := r.a.finish(ctx, t, m.Value)
		var bad errRecord
		if errors.As(err, &bad) {
			return r.persist(ctx, pt, string(m.Key)) && r.deadLetter(ctx, p, m, "bad_terminal", bad.Error())
		}
		if err != nil {
			r.unfinished(ctx, p, m, err)
			return false
		}
		rec := f.rec
		if !r.write(ctx, r.results, f.Message(r.a.cfg.Source)) {
			return false
		}
		// The evidence document holds the answers now: their offsets may go.
		pt.release(string(m.Key))
		r.a.m.records.WithLabelValues(string(rec.Vendor), rec.Outcome).Inc()
		r.a.m.recordLag.Observe(max(0, r.a.cfg.Now().Sub(t.DecidedAt).Seconds()))
		return true
	default:
		return r.deadLetter(ctx, p, m, "unknown_type", "unknown type "+strconv.Quote(env.Type))
	}
}

// unfinished says why a message is left unfinished (its offset, and every
// later one's, stays uncommitted) when the reason is not the end of ctx.
func (r *Runner) unfinished(ctx context.Context, p int, m contract.Message, err error) {
	if ctx.Err() == nil {
		r.a.m.unfinished.Inc()
		r.log.Error("raw message left unfinished (its partition's commits wait for a restart)", "partition", p, "offset", m.Offset, "error", err.Error())
	}
}

// decodeTerminal reads a terminal envelope; reason says why it cannot be used.
func decodeTerminal(m contract.Message) (contract.Terminal, string) {
	var t contract.Terminal
	if err := json.Unmarshal(m.Value, &t); err != nil {
		return t, "terminal is not JSON: " + err.Error()
	}
	if _, err := contract.ParseVendor(string(t.Vendor)); err != nil {
		return t, err.Error()
	}
	if t.VerificationID == "" || t.DecidedAt.IsZero() {
		return t, "terminal lacks verification_id or decided_at"
	}
	if string(m.Key) != contract.Key(t.Vendor, t.VerificationID) {
		return t, "key does not match the terminal"
	}
	switch t.Outcome {
	case contract.OutcomeHarvested, contract.OutcomeExpired, contract.OutcomeNotFound, contract.OutcomeNotVerified, contract.OutcomeLost, contract.OutcomeFailed:
	default:
		return t, fmt.Sprintf("unknown outcome %.40q", t.Outcome)
	}
	return t, ""
}

func (r *Runner) deadLetter(ctx context.Context, _ int, m contract.Message, label, reason string) bool {
	return r.dl.Write(ctx, m, label, reason)
}

// write publishes with acks=all, retrying until it is acknowledged or ctx
// ends.
func (r *Runner) write(ctx context.Context, w *bus.Writer, m contract.Message) bool {
	err := retry.Do(ctx, runnerRetry(r.a, func(try int, err error, _ time.Duration) {
		r.a.m.publishErr.Inc()
		if try == 1 || try%10 == 0 {
			r.log.Warn("publish failed; retrying", "topic", w.Topic(), "try", try, "error", err.Error())
		}
	}), func(int) error {
		err := w.WriteMessages(ctx, m)
		if errors.Is(err, context.Canceled) {
			return retry.Permanent(err)
		}
		return err
	})
	return err == nil
}

// newDeadLetters returns the archiver's dead-letter writer: the shared one
// of pkg/bus with the archiver's back-off, counting into its metrics, the
// payloads in its store when mode is PayloadStore.
func newDeadLetters(w bus.Publisher, mode bus.DeadLetterPayloadMode, a *Archiver, log *slog.Logger) *bus.DeadLetters {
	var payloads bus.DeadLetterPayloads
	if mode == bus.PayloadStore {
		payloads.Store = a.cfg.Store
	}
	return bus.NewDeadLetters(bus.DeadLetterConfig{Writer: w, Payloads: payloads, Logger: log, Now: a.cfg.Now,
		Retry: runnerRetry(a, nil), Written: a.m.deadLetters, WriteErrors: a.m.publishErr})
}

// runnerRetry is the back-off of the runner's writes: the store's
// (RetryMin doubling to RetryMax, jittered), observed by onFailure.
func runnerRetry(a *Archiver, onFailure func(try int, err error, next time.Duration)) retry.Policy {
	return retry.Policy{Backoff: retry.Backoff{Min: a.cfg.RetryMin, Max: a.cfg.RetryMax, Jitter: true}, OnFailure: onFailure}
}
