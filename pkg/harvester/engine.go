package harvester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/retry"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// StateStore persists one verification's record, returning once the write
// is acknowledged; a nil record deletes the key (a tombstone).
type StateStore interface {
	Save(ctx context.Context, partition int, key string, st *StateRecord) error
}

// StateRecord is what the state topic holds for a key: the pending state, or
// a closed marker that keeps late events from starting a second harvest.
type StateRecord struct {
	State    *schedule.State `json:"state,omitempty"`
	ClosedAt *time.Time      `json:"closed_at,omitempty"`
}

// Recorder finds what a one-shot call left in the raw topic: Mark returns
// where the key's raw partition ends before the call; Find returns the
// messages of the key with one of ids from there on.
type Recorder interface {
	Mark(ctx context.Context, key string) (partition int, offset int64, err error)
	Find(ctx context.Context, key string, partition int, offset int64, ids []string) ([]contract.Message, error)
}

// Publisher writes raw-topic messages, returning once they are acknowledged.
type Publisher interface {
	WriteMessages(ctx context.Context, msgs ...contract.Message) error
}

// Bucket is the part of the object store the claim check uses
// (objstore.Bucket has it).
type Bucket interface {
	Create(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...objstore.PutOption) error
	Attributes(ctx context.Context, key string) (objstore.Attrs, error)
	Iter(ctx context.Context, prefix string, f func(key string) error, opts ...objstore.IterOption) error
}

// VendorLimits bounds calls to one vendor.
type VendorLimits struct {
	Concurrency int     // calls in flight at most (adapts downward on rate-limit answers)
	QPS         float64 // calls per second at most; 0 = unlimited
}

// EngineConfig configures an Engine.
type EngineConfig struct {
	Policy      schedule.Policy
	Callers     map[contract.Vendor]Caller
	Limits      map[contract.Vendor]VendorLimits
	AccountWait time.Duration // pause after a credential or quota fault (1 min)
	Store       StateStore
	Raw         Publisher
	Recorder    Recorder // nil: intents carry no raw position (tests)
	// Answers keeps the vendors' answers (the claim check): an answer of
	// InlineMax bytes or more, and every answer of a one-shot call, is
	// stored under contract.RawBodyRef before it is published, and the raw
	// message carries its reference (the bytes too when under InlineMax).
	// nil: every answer is published inline (tests of other parts).
	Answers Bucket
	// InlineMax: answers below it travel inline on the raw topic (64 KiB).
	InlineMax   int
	CallTimeout time.Duration // one vendor call at most (60 s)
	IntentGrace time.Duration // how old a restored intent must be before it is resolved (call timeout + 30 s)
	Now         clock.Now
	Source      string // ce_source of published envelopes
	Logger      *slog.Logger
	Metrics     *Metrics
	// FIFO orders due work by arrival instead of deadline: a baseline for
	// benchmarks, never for production.
	FIFO bool
	// ClosedRetention is how long a closed verification's marker is kept
	// before it is deleted (8 days); keep it longer than the events topic's
	// retention, or a replayed event would start a second harvest.
	ClosedRetention time.Duration
	// MaxUnregistered bounds the Baidu verifications known only from a
	// landing (no token registration yet) this engine keeps: a landing that
	// would add one more is acknowledged and dropped, counted; 0 keeps
	// none. Restored ones are kept even above it (they are durable); new
	// ones wait until below.
	MaxUnregistered int
}

// Validate refuses settings that cannot work. The engine takes a
// configuration as it is (no zero field means a default): start from
// DefaultConfig.
func (c EngineConfig) Validate() error {
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	switch {
	case c.AccountWait <= 0 || c.CallTimeout <= 0 || c.ClosedRetention <= 0:
		return errors.New("the account pause, the call timeout and the closed retention must be positive")
	case c.IntentGrace <= c.CallTimeout:
		return fmt.Errorf("the intent grace (%s) must be above the call timeout (%s): a restored call is resolved only once the previous owner's call and its record are over", c.IntentGrace, c.CallTimeout)
	case c.InlineMax <= 0:
		return errors.New("the inline maximum of raw answers must be positive")
	case c.MaxUnregistered < 0:
		return errors.New("the maximum of unregistered verifications must not be negative")
	}
	for v := range c.Callers {
		if l := c.Limits[v]; l.Concurrency < 1 || l.QPS < 0 {
			return fmt.Errorf("%s: the concurrency must be at least 1 and the QPS not negative", v)
		}
	}
	return nil
}

// DefaultMaxUnregistered is MaxUnregistered's default.
const DefaultMaxUnregistered = 10000

// Engine keeps every pending verification of the partitions this process
// owns and works through them deadline-first within each vendor's limits.
// It wires the parts that do the jobs:
//
//   - the book (this type's fields under mu): the open items, the closed
//     markers, the partitions and the counts, changed by the consumer's
//     goroutines (AddPartition, Apply, RevokePartition) and by the jobs;
//   - the queue (queue.go): the waiting and due heaps;
//   - the state writer (writer.go): write-behind saves with waiters;
//   - dispatch (dispatch.go): the loop that takes due items within the
//     vendors' limits (limiter.go) and starts a job for each;
//   - the job (job.go): one goroutine carrying an item through its calls,
//     the intent before each one-shot call, and the publication of the
//     answers and the terminal;
//   - housekeeping (sweep.go): deleting old closed markers, and the gauges.
//
// One mutex, mu, guards the book, the queue, the writer's waiters,
// housekeeping and every item's fields; no part holds it across a call, a
// publish or a store write. The limiters have their own locks.
type Engine struct {
	cfg EngineConfig
	pol schedule.Policy
	now clock.Now
	log *slog.Logger
	m   *Metrics

	mu     sync.Mutex
	items  map[string]*item
	closed map[string]closedMark
	parts  map[int]*partition
	// pending counts open verifications by vendor, kept as items come and
	// go: the gauges must not walk a million items on every event.
	pending map[contract.Vendor]int
	// unregistered counts the items whose state is Unregistered (it.unreg),
	// kept as they come and go like pending; maxUnreg bounds it for new ones.
	unregistered    int
	maxUnreg        int
	refusedUnlogged int // refused since the last log line
	lastRefusedLog  time.Time
	q               queue
	w               stateWriter
	hk              housekeeping
	ix              indexCheck // the evidence-index check's state (its own lock)

	// Set by NewEngine, then only read.
	lim   map[contract.Vendor]*limiter
	wake  chan struct{}
	ticks func() (<-chan time.Time, func()) // dispatch's ticker (every dispatchEvery)
	wait  retry.Wait                        // the publishes' back-off wait
	// revokeGrace is how long a revocation lets its jobs wait for their
	// state writes (stateWriteTimeout; tests shorten it).
	revokeGrace time.Duration
	wg          sync.WaitGroup // jobs, savers and sweeps
}

// NewEngine returns an engine; Run starts its dispatcher. cfg is taken as
// it is (it should pass Validate); only its nil clock, logger and metrics
// are the real clock, no logs and metrics on a registry of their own.
func NewEngine(cfg EngineConfig) *Engine {
	cfg = withDependencies(cfg)
	e := &Engine{maxUnreg: cfg.MaxUnregistered, cfg: cfg, pol: cfg.Policy, now: cfg.Now, log: cfg.Logger, m: cfg.Metrics,
		items: map[string]*item{}, closed: map[string]closedMark{}, pending: map[contract.Vendor]int{},
		parts: map[int]*partition{}, lim: map[contract.Vendor]*limiter{}, wake: make(chan struct{}, 1), ticks: realTicks, wait: retry.Sleep, revokeGrace: stateWriteTimeout}
	e.w = stateWriter{mu: &e.mu, wg: &e.wg, store: cfg.Store, wait: retry.Sleep, now: cfg.Now, log: cfg.Logger, m: cfg.Metrics, waiters: map[*item][]saveWaiter{}, parts: map[int32]*partSavers{}}
	var vendors []contract.Vendor
	for v := range cfg.Callers {
		l := cfg.Limits[v]
		e.lim[v] = newLimiter(l.Concurrency, l.QPS, cfg.Now())
		vendors = append(vendors, v)
	}
	e.q = newQueue(vendors, cfg.FIFO)
	return e
}

// withDependencies gives cfg's nil clock, logger and metrics theirs.
func withDependencies(cfg EngineConfig) EngineConfig {
	if cfg.Now == nil {
		cfg.Now = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return cfg
}

// AddPartition installs a partition's restored records.
func (e *Engine) AddPartition(p int, recs map[string]*StateRecord) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.parts[p] = newPartition()
	if len(e.items) == 0 && len(recs) > 0 {
		e.items = make(map[string]*item, len(recs)) // no rehashing a million entries as they come
	}
	for key, r := range recs {
		if r.ClosedAt != nil {
			e.closed[key] = closedMark{*r.ClosedAt, p}
			continue
		}
		if r.State == nil {
			continue
		}
		if !contract.IsKey(key, r.State.Vendor, r.State.ID) { // a million at a restore: not built to compare
			// Not written by a harvester: its key would not name the
			// verification it holds (the engine reads vendor and ID from keys).
			e.log.Warn("state record skipped: its key does not match its verification", "partition", p, "key", key, "verification", r.State.Key())
			continue
		}
		it := &item{key: key, part: int32(p), st: r.State, waitIdx: -1, dueIdx: -1}
		e.items[key] = it
		e.pending[it.vendor()]++
		e.setUnregLocked(it, r.State.Unregistered)
		e.placeLocked(it)
	}
	e.gaugesLocked()
	e.poke()
}

// RevokePartition stops starting work on a partition, waits for the calls in
// flight there to finish and be recorded, forgets its items, and waits for
// the state writes under way there to end: none is tried again, so nothing
// written for the partition lands after its next owner's writes. Its jobs'
// waits for state writes end after revokeGrace (30 s): a state topic that
// takes no writes does not hold the revocation (the next owner restores
// what was stored).
func (e *Engine) RevokePartition(p int) {
	e.mu.Lock()
	ps := e.parts[p]
	if ps == nil {
		e.mu.Unlock()
		return
	}
	ps.revoked = true
	var idle chan struct{}
	if ps.busy > 0 {
		ps.idle = make(chan struct{})
		idle = ps.idle
	}
	e.mu.Unlock()
	if idle != nil {
		// Its jobs' state writes get revokeGrace to land; past it (the
		// state topic does not take writes) they stop waiting.
		grace := time.AfterFunc(e.revokeGrace, ps.cancel)
		<-idle
		grace.Stop()
	}
	ps.cancel()
	e.mu.Lock()
	for k, it := range e.items {
		if int(it.part) == p {
			e.q.remove(it)
			delete(e.items, k)
			if it.closedAt == nil && it.hasState() {
				e.pending[it.vendor()]--
			}
			e.setUnregLocked(it, false)
		}
	}
	for k, c := range e.closed {
		if c.part == p {
			delete(e.closed, k)
		}
	}
	delete(e.parts, p)
	e.gaugesLocked()
	savers := e.w.endPartitionLocked(int32(p))
	e.mu.Unlock()
	savers()
}

// Apply merges an event into its verification and returns a channel closed
// once the resulting state is acknowledged by the store (at once when the
// event changes nothing durable, e.g. for a closed verification).
func (e *Engine) Apply(p int, typ string, ev contract.Event) <-chan struct{} {
	key := contract.Key(ev.Vendor, ev.VerificationID)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.closed[key]; ok {
		e.m.lateEvents.WithLabelValues(string(ev.Vendor)).Inc()
		return closedCh
	}
	it := e.items[key]
	fresh := it == nil || !it.hasState() // none, or one being discarded
	if !fresh && it.stateLocked().Foreign(typ, ev) {
		// Another caller's registration or landing changes nothing, and
		// writes nothing.
		e.m.foreignRefused.WithLabelValues(typ).Inc()
		if !it.busy && it.waitIdx >= 0 {
			it.freezeLocked()
		}
		return closedCh
	}
	if fresh && ev.Vendor == contract.Baidu && typ != contract.TypeTokenRegistered && e.unregistered >= e.maxUnreg {
		e.refuseLocked()
		return closedCh
	}
	if it == nil {
		it = &item{key: key, part: int32(p), waitIdx: -1, dueIdx: -1}
		e.items[key] = it
	}
	if fresh {
		e.pending[ev.Vendor]++
	}
	it.st = e.pol.Apply(it.stateLocked(), typ, ev)
	e.setUnregLocked(it, it.st.Unregistered)
	if !it.busy {
		e.q.remove(it)
		e.placeLocked(it)
	}
	ch := e.w.markLocked(it)
	e.poke()
	return ch
}

// callbackResponse renders a Megvii callback event's signed data as a
// raw-topic response (contract.EndpointCallback): its body the data string
// byte for byte, its sign and signer's fingerprint in headers, its ce_id
// derived from the data so a redelivery or a reprocessing yields the same
// message. ok is false for other events and for closed verifications (their
// record is out; a late callback changes nothing, as for every late event).
func (e *Engine) callbackResponse(typ string, ev contract.Event) (contract.Message, bool) {
	if typ != contract.TypeMegviiCallback || ev.Vendor != contract.Megvii || ev.Data == "" {
		return contract.Message{}, false
	}
	key := contract.Key(ev.Vendor, ev.VerificationID)
	e.mu.Lock()
	_, closed := e.closed[key]
	start := ev.ReceivedAt
	if it := e.items[key]; it != nil && it.hasState() {
		st := it.stateLocked()
		if st.IssuedAt != nil && st.IssuedAt.Before(start) {
			start = *st.IssuedAt
		}
		if !st.FirstSeen.IsZero() && st.FirstSeen.Before(start) {
			start = st.FirstSeen
		}
		it.freezeLocked()
	}
	e.mu.Unlock()
	if closed {
		return contract.Message{}, false
	}
	r := contract.Response{Vendor: ev.Vendor, VerificationID: ev.VerificationID, Endpoint: contract.EndpointCallback, HTTPStatus: 200,
		FetchedAt: ev.ReceivedAt, Deadline: start.Add(e.pol.MegviiRetention), ContentType: contract.ContentTypeJSON, Body: []byte(ev.Data),
		Sign: ev.Sign, SignedBy: ev.SignedBy}
	return r.Message(e.cfg.Source), true
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// refuseLocked counts a landing refused by MaxUnregistered, logging at most
// once a minute (a flood must not become a flood of log lines).
func (e *Engine) refuseLocked() {
	e.m.unregisteredRefused.Inc()
	e.refusedUnlogged++
	if now := e.now(); now.Sub(e.lastRefusedLog) >= time.Minute {
		e.log.Warn("landings for unregistered Baidu tokens refused: the limit of unregistered verifications is reached",
			"limit", e.maxUnreg, "pending_unregistered", e.unregistered, "refused", e.refusedUnlogged)
		e.refusedUnlogged, e.lastRefusedLog = 0, now
	}
}

// setUnregLocked keeps it.unreg, the count and its gauge in step.
func (e *Engine) setUnregLocked(it *item, v bool) {
	if it.unreg == v {
		return
	}
	it.unreg = v
	if v {
		e.unregistered++
	} else {
		e.unregistered--
	}
	e.m.unregistered.Set(float64(e.unregistered))
}

// placeLocked queues an open item that is not busy, and freezes it when it
// only waits. An unregistered item always waits, due or not: dispatch takes
// it out without a vendor slot (it calls nothing).
func (e *Engine) placeLocked(it *item) {
	if !it.hasState() || it.closedAt != nil {
		return
	}
	st := it.stateLocked()
	if e.q.push(it, e.pol.Deadline(st), st.NextAt, st.NextAt.After(e.now()) || it.unreg) {
		it.freezeLocked()
	}
}

// forgetLocked drops it from the book once its closing or discarding is
// stored, unless the key has a newer item or a new state meanwhile.
func (e *Engine) forgetLocked(it *item) {
	if e.items[it.key] == it && (it.closedAt != nil || !it.hasState()) {
		delete(e.items, it.key)
	}
}

// Pending returns how many verifications wait (tests and gauges).
func (e *Engine) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.items)
}

// Snapshot returns a copy of a verification's state (tests).
func (e *Engine) Snapshot(key string) (schedule.State, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	it := e.items[key]
	if it == nil || !it.hasState() {
		return schedule.State{}, false
	}
	return *it.stateCopyLocked(), true
}

// NextWake returns the earliest time a waiting verification becomes due
// (zero when none waits), so tests can jump the clock from event to event.
func (e *Engine) NextWake() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, _ := e.q.nextWake()
	return t
}

// Partitions returns how many partitions the engine owns.
func (e *Engine) Partitions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.parts)
}

// MarshalRecord and UnmarshalRecord are the state topic's value encoding.
func MarshalRecord(r *StateRecord) []byte {
	b, _ := json.Marshal(r)
	return b
}

// UnmarshalRecord decodes a state-topic value.
func UnmarshalRecord(b []byte) (*StateRecord, error) {
	var r StateRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
