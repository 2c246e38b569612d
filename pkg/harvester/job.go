package harvester

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/retry"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// recorderRetry is how long an item waits when the raw topic cannot be read
// before or after a one-shot call (Recorder.Mark, Recorder.Find).
const recorderRetry = 5 * time.Second

// job carries one busy item through its due calls, on a goroutine of its
// own started by dispatch: it plans, stores the intent before a one-shot
// call and waits until it is durable, makes the call with no lock held,
// publishes the answer, applies its outcome, and publishes the terminal
// when the plan closes the verification.
//
// The job's fields belong to its goroutine. The item's fields are guarded
// by Engine.mu as always: Apply replaces and changes it.st while a call is
// in flight. So the job touches the state only through update (the lock
// held, the item marked for a state write when it changed) and view (the
// lock held, nothing changed), and works on copies taken there between
// them. Vendor and ID never change for a key.
//
// Every wait of a job for a state write takes stop, which ends at shutdown
// and when the item's partition is revoked: the revocation drops the
// partition's unwritten states (the next owner restores what was stored),
// so nothing waits for a store that does not answer.
type job struct {
	e           *Engine
	it          *item
	l           *limiter
	v           contract.Vendor
	id          string
	stop        context.Context
	held        bool          // a vendor slot is taken
	rateLimited bool          // a call in the slot was answered with a rate limit
	took        time.Duration // the latency of the slot's last successful call
}

// work runs a job; held says whether dispatch took a vendor slot for it.
func (e *Engine) work(ctx context.Context, it *item, l *limiter, held bool) {
	defer e.wg.Done()
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	j := &job{e: e, it: it, l: l, held: held, v: it.st.Vendor, id: it.st.ID, stop: stop}
	if ps := e.parts[int(it.part)]; ps != nil {
		defer context.AfterFunc(ps.stop, cancel)()
	}
	e.mu.Unlock()
	defer j.end()
	for j.step(ctx) {
	}
}

// update runs change on the item's state with the lock held and, when it
// reports a change, marks the item for a state write; the channel is closed
// once the change is stored (at once when nothing changed).
func (j *job) update(change func(st *schedule.State) bool) <-chan struct{} {
	return j.change(func(it *item) bool { return change(it.st) })
}

// change is update for changes of the item itself (its state deleted or
// replaced by a closed marker), with the book's counts.
func (j *job) change(fn func(it *item) bool) <-chan struct{} {
	e := j.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if !fn(j.it) {
		return closedCh
	}
	return e.w.markLocked(j.it)
}

// forget drops the item from the book once its closing or discarding is
// stored (Engine.forgetLocked).
func (j *job) forget() {
	j.e.mu.Lock()
	defer j.e.mu.Unlock()
	j.e.forgetLocked(j.it)
}

// view runs read on the item's state with the lock held; read must not
// change it, and keeps only copies.
func (j *job) view(read func(st *schedule.State)) {
	j.e.mu.Lock()
	defer j.e.mu.Unlock()
	read(j.it.st)
}

// stored waits until saved is closed; false when stop ended first.
func (j *job) stored(saved <-chan struct{}) bool {
	select {
	case <-saved:
		return true
	case <-j.stop.Done():
		return false
	}
}

// decided applies a call's result to st (schedule.Policy.Decide): the one
// place where results change states.
func (e *Engine) decided(st *schedule.State, res schedule.Result, at time.Time) schedule.Decision {
	d := e.pol.Decide(st, res, at, e.pol.Jitter)
	d.Apply(st)
	return d
}

// end gives the slot back, hands the item back to the queue (unless its
// partition is revoked or the item left the book), and tells a revocation
// waiting for the partition when this was its last job.
func (j *job) end() {
	j.free()
	e, it := j.e, j.it
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
}

// free gives the vendor slot back, telling the limiter how its calls went.
// It is called as soon as the last call of a plan has answered: recording
// the answer (publishing it, storing the state) is not the vendor's
// concurrency. A plan that needs a slot again takes one (slot).
func (j *job) free() {
	if !j.held {
		return
	}
	j.held = false
	j.l.release(j.e.now(), j.rateLimited, j.took)
	j.rateLimited, j.took = false, 0 // reported
	j.e.poke()                       // the slot is free for due work
}

// slot takes a vendor slot unless the job holds one; false when the limits
// give none now (the item is queued again and waits for its turn).
func (j *job) slot() bool {
	if !j.held {
		j.held = j.l.acquire(j.e.now())
	}
	return j.held
}

// step does what the item's plan asks for next and reports whether another
// step is due at once.
func (j *job) step(ctx context.Context) bool {
	now := j.e.now()
	intent, plan := j.plan(now)
	switch {
	case intent != nil:
		return j.resolveIntent(ctx, *intent, now)
	case plan.Close != nil:
		j.finish(ctx, *plan.Close, now)
		return false
	case plan.Discard:
		return !j.discard(now) // false: registered meanwhile, plan its calls
	case len(plan.Calls) == 0:
		return false
	}
	// One call, then plan again: an answer can make the plan's other calls
	// pointless (a getall without a passed attempt: detail answers only for
	// a success).
	return j.call(ctx, plan.Calls[0], len(plan.Calls) == 1, now)
}

// plan returns the unsettled intent of the item, if it has one, else what
// the policy plans for it at now; a change the plan rests on (the action's
// update) is applied and stored.
func (j *job) plan(now time.Time) (in *schedule.Intent, a schedule.Action) {
	j.update(func(st *schedule.State) bool {
		if st.Intent != nil {
			cp := *st.Intent
			in = &cp
			return false
		}
		a = j.e.pol.Next(st, now)
		if a.Update == nil {
			return false
		}
		*st, a.Update = *a.Update, nil
		return true
	})
	return in, a
}

// call makes one call to ep and reports whether another step is due at
// once. last says whether it is the plan's last call, whose slot is given
// back as soon as it answered.
func (j *job) call(ctx context.Context, ep string, last bool, now time.Time) bool {
	if ctx.Err() != nil || j.stop.Err() != nil || !j.slot() {
		return false
	}
	st, attempt, ok := j.begin(ctx, now)
	if !ok {
		return false
	}
	resp, res := j.invoke(ctx, &st, ep)
	fetched := j.e.now()
	if last {
		j.free()
	}
	if resp != nil && !j.record(ctx, resp, &res, ep, attempt, fetched) {
		return false // shutting down: the intent stays, the next owner checks the raw topic
	}
	return j.conclude(ctx, &st, res, fetched)
}

// begin counts the attempt and, before a one-shot (Megvii) call, stores the
// intent naming the raw topic's end and waits until it is durable. It
// returns a copy of the state to call with; false when the call must wait.
func (j *job) begin(ctx context.Context, now time.Time) (schedule.State, int, bool) {
	e, it := j.e, j.it
	oneShot := j.v == contract.Megvii
	var mark schedule.Intent
	if oneShot && e.cfg.Recorder != nil {
		p, off, err := e.cfg.Recorder.Mark(ctx, it.key)
		if err != nil {
			e.log.Warn("cannot read the raw topic's end before a one-shot call; retrying", "key", it.key, "error", err.Error())
			j.retryAt(now.Add(recorderRetry))
			return schedule.State{}, 0, false
		}
		mark.RawPartition, mark.RawOffset = p, off
	}
	var st schedule.State
	var attempt int
	saved := j.update(func(s *schedule.State) bool {
		s.Attempts++
		attempt = s.Attempts
		if oneShot {
			mark.Attempt, mark.At = attempt, now
			s.Intent = &mark
		}
		st = *s.Clone()
		return true
	})
	if oneShot {
		if !j.stored(saved) {
			return st, 0, false
		}
		// A replica restoring the intent waits IntentGrace from its time
		// (the call's timeout and a margin for recording the answer): a
		// call must not start once half that margin went on storing it.
		grace := e.cfg.IntentGrace
		if late := e.now().Sub(mark.At); late >= (grace-e.cfg.CallTimeout)/2 {
			e.log.Warn("intent stored too late to call within its grace; settling it like a restored one", "key", it.key, "late", late.String())
			j.retryAt(mark.At.Add(grace))
			return st, 0, false
		}
	}
	return st, attempt, true
}

// retryAt sets the item's NextAt, stored like any change of its state.
func (j *job) retryAt(t time.Time) {
	j.update(func(st *schedule.State) bool {
		st.NextAt = t
		return true
	})
}

// invoke makes the vendor call, bounded by CallTimeout, and counts it; a
// rate-limited answer and a successful call's latency go to the limiter
// with the slot.
func (j *job) invoke(ctx context.Context, st *schedule.State, ep string) (*contract.Response, schedule.Result) {
	e := j.e
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.CallTimeout)
	start := time.Now()
	resp, res := e.cfg.Callers[j.v].Call(cctx, st, ep)
	cancel()
	took := time.Since(start)
	outcome := "ok"
	if res.Class != 0 {
		outcome = res.Class.String()
	}
	e.m.calls.WithLabelValues(string(j.v), ep, outcome).Inc()
	e.m.callDuration.WithLabelValues(string(j.v), ep).Observe(took.Seconds())
	j.rateLimited = j.rateLimited || outcome == "rate_limited"
	if outcome == "ok" {
		j.took = took
	}
	return resp, res
}

// record publishes an answer on the raw topic (stored first when it goes by
// reference or was one-shot: Engine.message), before its outcome changes
// the state; false when shutting down.
func (j *job) record(ctx context.Context, resp *contract.Response, res *schedule.Result, ep string, attempt int, fetched time.Time) bool {
	e := j.e
	var deadline time.Time
	j.view(func(st *schedule.State) { deadline = e.pol.Deadline(st) })
	resp.FetchedAt, resp.Deadline, resp.Attempt = fetched, deadline, attempt
	res.ResponseID = contract.ResponseID(j.v, j.id, ep, attempt)
	m, ok := e.message(ctx, resp)
	return ok && e.publish(ctx, m)
}

// conclude applies a call's outcome to the item's state (stored behind),
// then pauses the vendor after an account fault or finishes a decided
// verification; it reports whether the next call is due at once. called is
// the copy the caller was given, with what it learned of the flow.
func (j *job) conclude(ctx context.Context, called *schedule.State, res schedule.Result, fetched time.Time) bool {
	e := j.e
	var d schedule.Decision
	j.update(func(st *schedule.State) bool {
		if j.v == contract.Megvii {
			learned(st, called)
		}
		st.Intent = nil
		d = e.decided(st, res, fetched)
		return true
	})
	cl, pause, next, why := d.Close, d.Pause, d.State.NextAt, d.State.LastError
	if pause {
		j.l.pause(fetched.Add(e.cfg.AccountWait))
		e.m.accountFaults.WithLabelValues(string(j.v)).Inc()
		e.log.Error("vendor paused: credentials, authorization or quota fault", "vendor", string(j.v), "error", why)
		return false
	}
	if cl != nil {
		j.free() // closing calls nobody: the slot goes to due work
		j.finish(ctx, *cl, fetched)
		return false
	}
	return !next.After(e.now())
}

// learned keeps in st what a Megvii call told of the flow (its status and
// procedure, in called), unless st knew better meanwhile: a final status
// from a callback, a procedure already known.
func learned(st, called *schedule.State) {
	if called.FlowStatus != "" && (st.FlowStatus == "" || !megvii.Status(st.FlowStatus).Final()) {
		st.FlowStatus = called.FlowStatus
	}
	if called.Procedure != "" && st.Procedure == "" {
		st.Procedure = called.Procedure
	}
}

// resolveIntent settles a one-shot call that a previous owner started but may
// not have recorded: after IntentGrace (so a previous owner still finishing
// it has recorded it), the raw topic is searched for its response and for a
// terminal, then the object store for its stored answer (published then).
// Found, the harvest continues from what was recorded; not found, the
// answer was never recorded and a repeat is allowed. It reports whether
// work on the item may continue now.
func (j *job) resolveIntent(ctx context.Context, in schedule.Intent, now time.Time) bool {
	if now.Before(in.At.Add(j.e.cfg.IntentGrace)) {
		j.retryAt(in.At.Add(j.e.cfg.IntentGrace))
		return false
	}
	found, err := j.findRecorded(ctx, in)
	if err != nil {
		j.e.log.Warn("cannot search the raw topic for an unsettled call; retrying", "key", j.it.key, "error", err.Error())
		j.retryAt(now.Add(recorderRetry))
		return false
	}
	for _, m := range found {
		if env, _ := contract.FromMessage(m); env.Type == contract.TypeHarvestTerminal {
			j.e.m.intentsResolved.WithLabelValues("terminal").Inc()
			j.closeItem(now)
			return false
		}
	}
	stored := false
	if len(found) == 0 {
		// Not on the raw topic: its answer may have been stored, and the
		// process died before publishing it. Published now, it is recorded.
		m, err := j.e.findStored(ctx, contract.ResponseID(j.v, j.id, megvii.EndpointGetResult, in.Attempt))
		if err != nil {
			j.e.log.Warn("cannot search the object store for an unsettled call's answer; retrying", "key", j.it.key, "error", err.Error())
			j.retryAt(now.Add(recorderRetry))
			return false
		}
		if m != nil {
			if !j.e.publish(ctx, *m) {
				return false // shutting down: the intent stays
			}
			found, stored = []contract.Message{*m}, true
		}
	}
	cl, recorded := j.settle(found)
	switch {
	case stored:
		j.e.m.intentsResolved.WithLabelValues("stored").Inc()
	case recorded:
		j.e.m.intentsResolved.WithLabelValues("recorded").Inc()
	default:
		j.e.m.intentsResolved.WithLabelValues("unrecorded").Inc()
	}
	if cl != nil {
		j.finish(ctx, *cl, now)
		return false
	}
	return true
}

// findRecorded returns the intent's response and the key's terminal, those
// of them the raw topic holds from the intent's mark on.
func (j *job) findRecorded(ctx context.Context, in schedule.Intent) ([]contract.Message, error) {
	if j.e.cfg.Recorder == nil {
		return nil, nil
	}
	ids := []string{contract.ResponseID(j.v, j.id, megvii.EndpointGetResult, in.Attempt), contract.TerminalID(j.v, j.id)}
	return j.e.cfg.Recorder.Find(ctx, j.it.key, in.RawPartition, in.RawOffset, ids)
}

// settle clears the intent and applies the recorded responses among found
// to the state, as if just answered; recorded says whether there was one.
func (j *job) settle(found []contract.Message) (cl *schedule.Close, recorded bool) {
	j.update(func(st *schedule.State) bool {
		st.Intent = nil
		for _, m := range found {
			r, err := contract.ParseResponse(m)
			if err != nil {
				continue
			}
			recorded = true
			res := schedule.Result{Endpoint: r.Endpoint, Recorded: true, ResponseID: contract.ResponseID(r.Vendor, r.VerificationID, r.Endpoint, r.Attempt),
				Served: r.HTTPStatus == 200, Class: vendorerr.ParseClass(r.ErrorClass), Message: "recorded before a restart: " + r.ErrorClass}
			res.ReturnImage, _ = strconv.Atoi(r.Params["return_image"])
			cl = j.e.decided(st, res, r.FetchedAt).Close
		}
		return true
	})
	return cl, recorded
}

// publish writes raw messages, retrying until acknowledged or shutdown.
func (e *Engine) publish(ctx context.Context, msgs ...contract.Message) bool {
	err := retry.Do(ctx, retry.Policy{Backoff: retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}, Wait: e.wait,
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
func (j *job) finish(ctx context.Context, cl schedule.Close, now time.Time) {
	st, deadline, saved := j.decide(cl, now)
	if !j.stored(saved) {
		return
	}
	e, c := j.e, st.Closing
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
	j.closeItem(e.now())
}

// decide records the closing decision in the state (a decision restored
// from the state topic stays as it was) and returns a copy of the state,
// its deadline and the channel closed once the decision is stored.
func (j *job) decide(cl schedule.Close, now time.Time) (st schedule.State, deadline time.Time, saved <-chan struct{}) {
	saved = j.update(func(s *schedule.State) bool {
		if s.Closing == nil {
			s.Closing = &schedule.Closing{Outcome: cl.Outcome, Reason: cl.Reason, DecidedAt: now}
			if cl.Outcome == contract.OutcomeHarvested && s.LastError != "" {
				s.Closing.Reason = s.LastError
			}
		}
		st, deadline = *s.Clone(), j.e.pol.Deadline(s)
		return true
	})
	return st, deadline, saved
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
func (j *job) discard(now time.Time) bool {
	e, discarded := j.e, false
	ch := j.change(func(it *item) bool {
		if it.st == nil || !it.st.Unregistered || now.Before(e.pol.UnregisteredUntil(it.st)) {
			return false
		}
		it.st, it.cold, discarded = nil, "", true
		e.pending[it.vendor()]--
		e.setUnregLocked(it, false)
		return true
	})
	if !discarded {
		return false
	}
	if !j.stored(ch) {
		return true // revoked or shutting down: the next owner discards it
	}
	e.m.unregisteredDiscarded.Inc()
	j.forget()
	return true
}

// closeItem replaces the state with a closed marker and, once that is
// stored, forgets the item; later events for the key start nothing.
func (j *job) closeItem(at time.Time) {
	e := j.e
	ch := j.change(func(it *item) bool {
		if it.closedAt == nil {
			e.pending[it.vendor()]--
		}
		e.setUnregLocked(it, false)
		it.closedAt = &at
		e.closed[it.key] = closedMark{at, int(it.part)}
		return true
	})
	if !j.stored(ch) {
		return // revoked or shutting down: the next owner restores the decision
	}
	j.forget()
}
