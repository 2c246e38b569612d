package harvester

import (
	"container/heap"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/retry"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
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
	Recorder    Recorder      // nil: intents carry no raw position (tests)
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
	// would add one more is acknowledged and dropped, counted. 0 means
	// DefaultMaxUnregistered; negative keeps none. Restored ones are kept
	// even above it (they are durable); new ones wait until below.
	MaxUnregistered int
}

// DefaultMaxUnregistered is MaxUnregistered's default.
const DefaultMaxUnregistered = 10000

// Engine keeps every pending verification of the partitions this process
// owns and works through them deadline-first within each vendor's limits.
type Engine struct {
	cfg EngineConfig
	pol schedule.Policy
	now clock.Now
	log *slog.Logger
	m   *Metrics

	mu     sync.Mutex
	items  map[string]*item
	closed map[string]closedMark
	// pending counts open verifications by vendor, kept as items come and
	// go: the gauges must not walk a million items on every event.
	pending map[contract.Vendor]int
	// unregistered counts the items whose state is Unregistered (it.unreg),
	// kept as they come and go like pending; maxUnreg bounds it for new ones.
	unregistered    int
	maxUnreg        int
	refusedUnlogged int // refused since the last log line
	lastRefusedLog  time.Time
	sweeping        bool
	lastSweep       time.Time
	dueWalked       time.Time // when gaugesLocked last counted the due work near its deadline
	wait            itemHeap
	due             map[contract.Vendor]*itemHeap
	parts           map[int]*partition
	lim             map[contract.Vendor]*limiter
	wake            chan struct{}
	wg              sync.WaitGroup // workers and savers
	seq             int64
	// waiters are the callers waiting for an item's state to be stored (few
	// at a time: kept here rather than in every item).
	waiters map[*item][]saveWaiter
}

type closedMark struct {
	at   time.Time
	part int
}

// item is one open verification. Its fields are sized for a million of
// them: times as Unix nanoseconds, indexes and versions in 32 bits, and the
// state frozen (cold.go) while it only waits.
type item struct {
	key        string
	st         *schedule.State // nil while frozen
	cold       string          // the frozen state, when st is nil
	closedAt   *time.Time
	nextAt     int64 // the state's NextAt: the waiting heap's order
	deadline   int64 // the due heap's order
	lastErrLog int64
	version    uint32
	saved      uint32
	part       int32
	waitIdx    int32
	dueIdx     int32
	saving     bool
	busy       bool
	unreg      bool // the state is Unregistered: counted in Engine.unregistered
}

// vendor is the vendor part of the item's key.
func (it *item) vendor() contract.Vendor {
	i := strings.IndexByte(it.key, ':')
	if i < 0 {
		return "" // every key is vendor:id (AddPartition skips others)
	}
	return contract.Vendor(it.key[:i])
}

// hasState reports whether the item holds a state (thawed or frozen).
func (it *item) hasState() bool { return it.st != nil || it.cold != "" }

// stateLocked thaws the item's state if it is frozen and returns it; nil
// when the item has none.
func (e *Engine) stateLocked(it *item) *schedule.State {
	if it.st == nil && it.cold != "" {
		it.st, it.cold = schedule.MustThaw(it.key, it.cold), ""
	}
	return it.st
}

// stateCopyLocked returns a copy of the item's state, thawed or frozen,
// leaving the item as it is; nil when it has none.
func stateCopyLocked(it *item) *schedule.State {
	switch {
	case it.st != nil:
		cp := *it.st
		return &cp
	case it.cold != "":
		return schedule.MustThaw(it.key, it.cold)
	}
	return nil
}

// freezeLocked packs the state of an item that only waits.
func (e *Engine) freezeLocked(it *item) {
	if it.st != nil && !it.busy && it.waitIdx >= 0 && schedule.CanFreeze(it.st) {
		it.cold, it.st = schedule.Freeze(it.st), nil
	}
}

type saveWaiter struct {
	version uint32
	ch      chan struct{}
}

type partition struct {
	busy    int
	revoked bool
	idle    chan struct{} // closed when busy drops to 0 after revocation
}

// NewEngine returns an engine; Run starts its dispatcher.
func NewEngine(cfg EngineConfig) *Engine {
	def := DefaultConfig()
	if cfg.Now == nil {
		cfg.Now = clock.Real
	}
	if cfg.AccountWait <= 0 {
		cfg.AccountWait = def.AccountWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ClosedRetention <= 0 {
		cfg.ClosedRetention = def.ClosedRetention
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = def.CallTimeout
	}
	if cfg.IntentGrace <= 0 {
		cfg.IntentGrace = cfg.CallTimeout + intentMargin
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.MaxUnregistered == 0 {
		cfg.MaxUnregistered = def.MaxUnregistered
	}
	e := &Engine{maxUnreg: max(cfg.MaxUnregistered, 0), cfg: cfg, pol: cfg.Policy, now: cfg.Now, log: cfg.Logger, m: cfg.Metrics,
		items: map[string]*item{}, closed: map[string]closedMark{}, pending: map[contract.Vendor]int{}, due: map[contract.Vendor]*itemHeap{},
		parts: map[int]*partition{}, lim: map[contract.Vendor]*limiter{}, wake: make(chan struct{}, 1), waiters: map[*item][]saveWaiter{}}
	for v := range cfg.Callers {
		l := cfg.Limits[v]
		if l.Concurrency <= 0 {
			l.Concurrency = DefaultConcurrency
		}
		e.lim[v] = newLimiter(l.Concurrency, l.QPS, cfg.Now())
		e.due[v] = &itemHeap{due: true}
	}
	return e
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// AddPartition installs a partition's restored records.
func (e *Engine) AddPartition(p int, recs map[string]*StateRecord) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.parts[p] = &partition{}
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
// flight there to finish and be recorded, then forgets its items.
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
		<-idle
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, it := range e.items {
		if int(it.part) == p {
			e.unplaceLocked(it)
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
	it.st = e.pol.Apply(e.stateLocked(it), typ, ev)
	e.setUnregLocked(it, it.st.Unregistered)
	if !it.busy {
		e.unplaceLocked(it)
		e.placeLocked(it)
	}
	ch := e.markDirtyLocked(it)
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
		st := e.stateLocked(it)
		if st.IssuedAt != nil && st.IssuedAt.Before(start) {
			start = *st.IssuedAt
		}
		if !st.FirstSeen.IsZero() && st.FirstSeen.Before(start) {
			start = st.FirstSeen
		}
		e.freezeLocked(it)
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

// placeLocked puts a non-busy item in the waiting or the due heap, and
// freezes it when it only waits.
func (e *Engine) placeLocked(it *item) {
	if !it.hasState() || it.closedAt != nil {
		return
	}
	st := e.stateLocked(it)
	it.deadline = e.pol.Deadline(st).UnixNano()
	if e.cfg.FIFO {
		e.seq++
		it.deadline = e.seq // arrival order
	}
	it.nextAt = st.NextAt.UnixNano()
	// An unregistered item always waits there, due or not: dispatch takes
	// it out without a vendor slot (it calls nothing).
	if st.NextAt.After(e.now()) || it.unreg {
		heap.Push(&e.wait, it)
		e.freezeLocked(it)
	} else if d := e.due[it.vendor()]; d != nil {
		heap.Push(d, it)
	}
}

func (e *Engine) unplaceLocked(it *item) {
	if it.waitIdx >= 0 {
		heap.Remove(&e.wait, int(it.waitIdx))
	}
	if it.dueIdx >= 0 && it.hasState() {
		heap.Remove(e.due[it.vendor()], int(it.dueIdx))
	}
}

// markDirtyLocked records a change and makes sure a saver writes it.
func (e *Engine) markDirtyLocked(it *item) <-chan struct{} {
	it.version++
	ch := make(chan struct{})
	e.waiters[it] = append(e.waiters[it], saveWaiter{it.version, ch})
	if !it.saving {
		it.saving = true
		e.wg.Add(1)
		go e.saver(it)
	}
	return ch
}

// saver writes an item's latest state until what is stored is current.
// Writes for one key are never concurrent, so the last one wins in order.
func (e *Engine) saver(it *item) {
	defer e.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		e.mu.Lock()
		v := it.version
		var rec *StateRecord // nil: a discarded state, deleted (a tombstone)
		if it.closedAt != nil {
			t := *it.closedAt
			rec = &StateRecord{ClosedAt: &t}
		} else if st := stateCopyLocked(it); st != nil {
			rec = &StateRecord{State: st}
		}
		e.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := e.cfg.Store.Save(ctx, int(it.part), it.key, rec)
		cancel()
		e.mu.Lock()
		if err != nil {
			e.m.stateWriteErrors.Inc()
			if e.now().Sub(time.Unix(0, it.lastErrLog)) > 10*time.Second {
				e.log.Warn("state write failed; retrying", "key", it.key, "error", err.Error())
				it.lastErrLog = e.now().UnixNano()
			}
			e.mu.Unlock()
			time.Sleep(backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		e.m.stateWrites.Inc()
		it.saved = v
		kept := e.waiters[it][:0]
		for _, w := range e.waiters[it] {
			if w.version <= v {
				close(w.ch)
			} else {
				kept = append(kept, w)
			}
		}
		if len(kept) == 0 {
			delete(e.waiters, it)
		} else {
			e.waiters[it] = kept
		}
		if it.version > it.saved {
			e.mu.Unlock()
			continue
		}
		it.saving = false
		e.mu.Unlock()
		return
	}
}

// Run dispatches due work until ctx ends, then waits for work in flight.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		e.dispatch(ctx)
		select {
		case <-ctx.Done():
			e.wg.Wait()
			return nil
		case <-t.C:
		case <-e.wake:
		}
	}
}

// dispatch promotes items that became due and starts as much work as the
// vendors' limits allow, earliest deadline first.
func (e *Engine) dispatch(ctx context.Context) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.wait.Len() > 0 && e.wait.items[0].nextAt <= now.UnixNano() {
		it := heap.Pop(&e.wait).(*item)
		if it.unreg {
			// Due only to be discarded: no vendor slot (a registration
			// arriving meanwhile makes work take one).
			if ps, l := e.parts[int(it.part)], e.lim[it.vendor()]; ps != nil && !ps.revoked && l != nil {
				e.startLocked(ctx, it, l, false)
			}
			continue
		}
		heap.Push(e.due[it.vendor()], it)
	}
	for v, d := range e.due {
		l := e.lim[v]
		for d.Len() > 0 {
			it := d.items[0]
			if ps := e.parts[int(it.part)]; ps == nil || ps.revoked {
				heap.Pop(d)
				continue
			}
			if !l.acquire(now) {
				break
			}
			heap.Pop(d)
			e.startLocked(ctx, it, l, true)
		}
	}
	if !e.sweeping && now.Sub(e.lastSweep) >= time.Minute {
		e.sweeping, e.lastSweep = true, now
		var old []string
		for k, c := range e.closed {
			if now.Sub(c.at) > e.cfg.ClosedRetention {
				old = append(old, k)
			}
		}
		e.wg.Add(1)
		go e.sweep(old)
	}
	e.gaugesLocked()
}

// startLocked starts work on an item taken out of its heap; held says
// whether a vendor slot was taken for it.
func (e *Engine) startLocked(ctx context.Context, it *item, l *limiter, held bool) {
	e.stateLocked(it) // a busy item is never frozen
	it.busy = true
	e.parts[int(it.part)].busy++
	e.wg.Add(1)
	go e.work(ctx, it, l, held)
}

// sweep deletes closed markers older than ClosedRetention.
func (e *Engine) sweep(keys []string) {
	defer e.wg.Done()
	defer func() {
		e.mu.Lock()
		e.sweeping = false
		e.mu.Unlock()
	}()
	for _, k := range keys {
		e.mu.Lock()
		c, ok := e.closed[k]
		e.mu.Unlock()
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := e.cfg.Store.Save(ctx, c.part, k, nil)
		cancel()
		if err != nil {
			return // next sweep
		}
		e.mu.Lock()
		if cur, ok := e.closed[k]; ok && cur == c {
			delete(e.closed, k)
		}
		e.mu.Unlock()
		e.m.markersDeleted.Inc()
	}
}

func (e *Engine) gaugesLocked() {
	// Counting the due work near its deadline walks the due heaps: at most
	// once a second (wall time) while they are large.
	now, walk := e.now(), time.Since(e.dueWalked) >= time.Second
	if walk {
		e.dueWalked = time.Now()
	}
	for v := range e.due {
		e.m.pending.WithLabelValues(string(v)).Set(float64(e.pending[v]))
		e.m.due.WithLabelValues(string(v)).Set(float64(e.due[v].Len()))
		// The earliest deadline among due verifications waiting for a slot,
		// and how many close within the hour (not in FIFO order, where the
		// due heap is ordered by arrival).
		if d := e.due[v]; d.Len() == 0 || e.cfg.FIFO {
			e.m.dueDeadline.DeleteLabelValues(string(v))
			e.m.dueWithinHour.WithLabelValues(string(v)).Set(0)
		} else {
			e.m.dueDeadline.WithLabelValues(string(v)).Set(float64(d.items[0].deadline / int64(time.Second)))
			if walk || d.Len() <= 1024 {
				n, horizon := 0, now.Add(time.Hour).UnixNano()
				for _, it := range d.items {
					if it.deadline <= horizon {
						n++
					}
				}
				e.m.dueWithinHour.WithLabelValues(string(v)).Set(float64(n))
			}
		}
		lim, _, paused := e.lim[v].state(e.now())
		e.m.limit.WithLabelValues(string(v)).Set(lim)
		p := 0.0
		if paused {
			p = 1
		}
		e.m.paused.WithLabelValues(string(v)).Set(p)
	}
}

// work carries one verification through its due calls. held says whether
// dispatch took a vendor slot for it.
func (e *Engine) work(ctx context.Context, it *item, l *limiter, held bool) {
	defer e.wg.Done()
	rateLimited := false
	var took time.Duration
	// The vendor slot taken by dispatch is given back as soon as the last
	// call of a plan has answered: recording the answer (publishing it,
	// storing the state) is not the vendor's concurrency. A plan that needs
	// a slot again takes one, or the item waits for its next turn.
	free := func() {
		if held {
			held = false
			l.release(e.now(), rateLimited, took)
			rateLimited, took = false, 0 // reported
			e.poke()                     // the slot is free for due work
		}
	}
	defer func() {
		free()
		e.mu.Lock()
		it.busy = false
		ps := e.parts[int(it.part)]
		if ps != nil {
			ps.busy--
			if ps.revoked && ps.busy == 0 && ps.idle != nil {
				close(ps.idle)
				ps.idle = nil
			}
		}
		if e.items[it.key] == it && (ps == nil || !ps.revoked) {
			e.placeLocked(it)
		}
		e.mu.Unlock()
		e.poke()
	}()
	// Apply replaces and changes it.st under e.mu while a call is in flight:
	// every read of the item's state below holds the lock, or reads the copy
	// taken under it. Vendor and ID never change for a key.
	e.mu.Lock()
	v, id := it.st.Vendor, it.st.ID
	e.mu.Unlock()
	for {
		now := e.now()
		e.mu.Lock()
		intent := it.st.Intent
		e.mu.Unlock()
		if intent != nil {
			if !e.resolveIntent(ctx, it, *intent, now) {
				return
			}
			continue
		}
		e.mu.Lock()
		plan := e.pol.Plan(it.st, now)
		e.mu.Unlock()
		if plan.Close != nil {
			e.finish(ctx, it, *plan.Close, now)
			return
		}
		if plan.Discard {
			if e.discard(it, now) {
				return
			}
			continue // registered meanwhile: plan its calls
		}
		if len(plan.Calls) == 0 {
			return
		}
		// One call, then plan again: an answer can make the plan's other
		// calls pointless (a getall without a passed attempt: detail
		// answers only for a success).
		{
			ep := plan.Calls[0]
			if ctx.Err() != nil {
				return
			}
			if !held {
				if !l.acquire(e.now()) {
					return // placed again; dispatch gives it a slot in its turn
				}
				held = true
			}
			limited := v == contract.Megvii
			var mark schedule.Intent
			if limited && e.cfg.Recorder != nil {
				p, off, err := e.cfg.Recorder.Mark(ctx, it.key)
				if err != nil {
					e.log.Warn("cannot read the raw topic's end before a one-shot call; retrying", "key", it.key, "error", err.Error())
					e.mu.Lock()
					it.st.NextAt = now.Add(5 * time.Second)
					e.mu.Unlock()
					return
				}
				mark.RawPartition, mark.RawOffset = p, off
			}
			e.mu.Lock()
			it.st.Attempts++
			attempt := it.st.Attempts
			if limited {
				mark.Attempt, mark.At = attempt, now
				it.st.Intent = &mark
			}
			saved := e.markDirtyLocked(it)
			st := *it.st
			e.mu.Unlock()
			if limited {
				// The intent is durable before the one-shot call is made.
				select {
				case <-saved:
				case <-ctx.Done():
					return
				}
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.CallTimeout)
			start := time.Now()
			resp, res := e.cfg.Callers[v].Call(cctx, &st, ep)
			cancel()
			fetched := e.now()
			outcome := "ok"
			if res.Class != 0 {
				outcome = res.Class.String()
			}
			e.m.calls.WithLabelValues(string(v), ep, outcome).Inc()
			e.m.callDuration.WithLabelValues(string(v), ep).Observe(time.Since(start).Seconds())
			rateLimited = rateLimited || outcome == "rate_limited"
			if outcome == "ok" {
				took = time.Since(start)
			}
			if len(plan.Calls) == 1 { // the plan's last call
				free()
			}
			e.mu.Lock()
			deadline := e.pol.Deadline(it.st)
			e.mu.Unlock()
			if resp != nil {
				resp.FetchedAt, resp.Deadline, resp.Attempt = fetched, deadline, attempt
				res.ResponseID = contract.ResponseID(v, id, ep, attempt)
				if !e.publish(ctx, resp.Message(e.cfg.Source)) {
					return // shutting down: the intent stays, the next owner checks the raw topic
				}
			}
			e.mu.Lock()
			if st.FlowStatus != "" && (it.st.FlowStatus == "" || !megvii.Status(it.st.FlowStatus).Final()) && v == contract.Megvii {
				it.st.FlowStatus = st.FlowStatus
			}
			if st.Procedure != "" && it.st.Procedure == "" && v == contract.Megvii {
				it.st.Procedure = st.Procedure
			}
			it.st.Intent = nil
			cl, pause := e.pol.Outcome(it.st, res, fetched, e.pol.Jitter)
			e.markDirtyLocked(it)
			next, why := it.st.NextAt, it.st.LastError
			e.mu.Unlock()
			if pause {
				l.pause(fetched.Add(e.cfg.AccountWait))
				e.m.accountFaults.WithLabelValues(string(v)).Inc()
				e.log.Error("vendor paused: credentials, authorization or quota fault", "vendor", string(v), "error", why)
				return
			}
			if cl != nil {
				e.finish(ctx, it, *cl, fetched)
				return
			}
			if next.After(e.now()) {
				return
			}
		}
	}
}

// resolveIntent settles a one-shot call that a previous owner started but may
// not have recorded: after IntentGrace (so a previous owner still finishing
// it has recorded it), the raw topic is searched for its response and for a
// terminal. Found, the harvest continues from what was recorded; not found,
// the answer was never recorded and a repeat is allowed. It reports whether
// work on the item may continue now.
func (e *Engine) resolveIntent(ctx context.Context, it *item, in schedule.Intent, now time.Time) bool {
	if now.Before(in.At.Add(e.cfg.IntentGrace)) {
		e.mu.Lock()
		it.st.NextAt = in.At.Add(e.cfg.IntentGrace)
		e.markDirtyLocked(it)
		e.mu.Unlock()
		return false
	}
	e.mu.Lock()
	st := *it.st
	e.mu.Unlock()
	var found []contract.Message
	if e.cfg.Recorder != nil {
		var err error
		ids := []string{contract.ResponseID(st.Vendor, st.ID, megvii.EndpointGetResult, in.Attempt), contract.TerminalID(st.Vendor, st.ID)}
		found, err = e.cfg.Recorder.Find(ctx, it.key, in.RawPartition, in.RawOffset, ids)
		if err != nil {
			e.log.Warn("cannot search the raw topic for an unsettled call; retrying", "key", it.key, "error", err.Error())
			e.mu.Lock()
			it.st.NextAt = now.Add(5 * time.Second)
			e.mu.Unlock()
			return false
		}
	}
	for _, m := range found {
		env, _ := contract.FromMessage(m)
		if env.Type == contract.TypeHarvestTerminal {
			e.m.intentsResolved.WithLabelValues("terminal").Inc()
			e.closeItem(it, now)
			return false
		}
	}
	e.mu.Lock()
	it.st.Intent = nil
	var cl *schedule.Close
	recorded := false
	for _, m := range found {
		r, err := contract.ParseResponse(m)
		if err != nil {
			continue
		}
		recorded = true
		res := schedule.Result{Endpoint: r.Endpoint, Recorded: true, ResponseID: contract.ResponseID(r.Vendor, r.VerificationID, r.Endpoint, r.Attempt),
			Served: r.HTTPStatus == 200, Class: vendorerr.ParseClass(r.ErrorClass), Message: "recorded before a restart: " + r.ErrorClass}
		res.ReturnImage, _ = strconv.Atoi(r.Params["return_image"])
		cl, _ = e.pol.Outcome(it.st, res, r.FetchedAt, e.pol.Jitter)
	}
	e.markDirtyLocked(it)
	e.mu.Unlock()
	if recorded {
		e.m.intentsResolved.WithLabelValues("recorded").Inc()
	} else {
		e.m.intentsResolved.WithLabelValues("unrecorded").Inc()
	}
	if cl != nil {
		e.finish(ctx, it, *cl, now)
		return false
	}
	return true
}

// publish writes raw messages, retrying until acknowledged or shutdown.
func (e *Engine) publish(ctx context.Context, msgs ...contract.Message) bool {
	err := retry.Do(ctx, retry.Policy{Backoff: retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second},
		OnFailure: func(_ int, err error, _ time.Duration) {
			e.m.publishErrors.Inc()
			e.log.Warn("raw publish failed; retrying", "error", err.Error())
		}}, func(int) error {
		// A write under way finishes even when ctx ends: only the waits stop.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return e.cfg.Raw.WriteMessages(pctx, msgs...)
	})
	return err == nil
}

// finish stores the decision, publishes the terminal envelope, then closes
// the state. A restart anywhere in between republishes the same envelope.
func (e *Engine) finish(ctx context.Context, it *item, cl schedule.Close, now time.Time) {
	e.mu.Lock()
	if it.st.Closing == nil {
		it.st.Closing = &schedule.Closing{Outcome: cl.Outcome, Reason: cl.Reason, DecidedAt: now}
		if cl.Outcome == contract.OutcomeHarvested && it.st.LastError != "" {
			it.st.Closing.Reason = it.st.LastError
		}
	}
	saved := e.markDirtyLocked(it)
	st := *it.st
	deadline := e.pol.Deadline(it.st)
	e.mu.Unlock()
	select {
	case <-saved:
	case <-ctx.Done():
		return
	}
	c := st.Closing
	left := st.LastWindowLeft
	if len(st.Responses) == 0 {
		left = deadline.Sub(c.DecidedAt).Seconds()
	}
	t := contract.Terminal{Vendor: st.Vendor, VerificationID: st.ID, BizNo: st.BizNo, Outcome: c.Outcome, Reason: c.Reason, FlowStatus: st.FlowStatus, Landing: st.Landing,
		Responses: append([]string{}, st.Responses...), IssuedAt: st.IssuedAt, CompletedAt: st.CompletedAt, DecidedAt: c.DecidedAt, Deadline: deadline, WindowLeftSeconds: left}
	if !e.publish(ctx, t.Message(e.cfg.Source)) {
		return
	}
	e.m.terminals.WithLabelValues(string(st.Vendor), c.Outcome).Inc()
	e.logTerminal(t)
	if c.Outcome == contract.OutcomeHarvested {
		e.m.windowLeft.WithLabelValues(string(st.Vendor)).Observe(left)
	}
	if c.Outcome == contract.OutcomeExpired {
		e.m.deadlineMisses.WithLabelValues(string(st.Vendor)).Inc()
	}
	e.closeItem(it, e.now())
}

// logTerminal logs a published terminal decision with its verification id
// (the runbook sends operators here for the ids): at warn when evidence is
// lost (lost, failed, expired).
func (e *Engine) logTerminal(t contract.Terminal) {
	level := slog.LevelInfo
	if t.Outcome == contract.OutcomeLost || t.Outcome == contract.OutcomeFailed || t.Outcome == contract.OutcomeExpired {
		level = slog.LevelWarn
	}
	e.log.Log(context.Background(), level, "verification closed", "vendor", string(t.Vendor), "verification", t.VerificationID,
		"outcome", t.Outcome, "reason", t.Reason, "window_left_seconds", t.WindowLeftSeconds)
}

// discard deletes the state of a verification nobody registered once no
// registration could help (schedule.Policy.UnregisteredUntil): a
// tombstone, no call, no terminal. It reports false, changing nothing, when
// a registration arrived since the plan. An event arriving during the
// tombstone write gives the item a new state, which the same saver writes
// after the tombstone.
func (e *Engine) discard(it *item, now time.Time) bool {
	e.mu.Lock()
	if it.st == nil || !it.st.Unregistered || now.Before(e.pol.UnregisteredUntil(it.st)) {
		e.mu.Unlock()
		return false
	}
	it.st, it.cold = nil, ""
	e.pending[it.vendor()]--
	e.setUnregLocked(it, false)
	ch := e.markDirtyLocked(it)
	e.mu.Unlock()
	<-ch
	e.m.unregisteredDiscarded.Inc()
	e.mu.Lock()
	if e.items[it.key] == it && !it.hasState() {
		delete(e.items, it.key)
	}
	e.mu.Unlock()
	return true
}

// closeItem replaces the state with a closed marker and, once that is
// stored, forgets the item; later events for the key start nothing.
func (e *Engine) closeItem(it *item, at time.Time) {
	e.mu.Lock()
	if it.closedAt == nil {
		e.pending[it.vendor()]--
	}
	e.setUnregLocked(it, false)
	it.closedAt = &at
	e.closed[it.key] = closedMark{at, int(it.part)}
	ch := e.markDirtyLocked(it)
	e.mu.Unlock()
	<-ch
	e.mu.Lock()
	if e.items[it.key] == it {
		delete(e.items, it.key)
	}
	e.mu.Unlock()
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
	return *stateCopyLocked(it), true
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

// itemHeap orders items for container/heap, keeping each item's index in
// it current: the waiting heap by NextAt, a due heap by deadline (the
// verification nearest to losing its data goes first).
type itemHeap struct {
	items []*item
	due   bool
}

func (h *itemHeap) Len() int { return len(h.items) }
func (h *itemHeap) Less(i, j int) bool {
	if h.due {
		return h.items[i].deadline < h.items[j].deadline
	}
	return h.items[i].nextAt < h.items[j].nextAt
}
func (h *itemHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.setIndex(i)
	h.setIndex(j)
}
func (h *itemHeap) Push(x any) { h.items = append(h.items, x.(*item)); h.setIndex(len(h.items) - 1) }
func (h *itemHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	h.index(it, -1)
	return it
}
func (h *itemHeap) setIndex(i int) { h.index(h.items[i], i) }
func (h *itemHeap) index(it *item, i int) {
	if h.due {
		it.dueIdx = int32(i)
	} else {
		it.waitIdx = int32(i)
	}
}

func (e *Engine) dueCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	now := e.now()
	for _, d := range e.due {
		n += d.Len()
	}
	if e.wait.Len() > 0 && e.wait.items[0].nextAt <= now.UnixNano() {
		n++
	}
	return n
}

func (e *Engine) busyCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, p := range e.parts {
		n += p.busy
	}
	return n
}

// NextWake returns the earliest time a waiting verification becomes due
// (zero when none waits), so tests can jump the clock from event to event.
func (e *Engine) NextWake() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.wait.Len() == 0 {
		return time.Time{}
	}
	return time.Unix(0, e.wait.items[0].nextAt)
}

// Partitions returns how many partitions the engine owns.
func (e *Engine) Partitions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.parts)
}
