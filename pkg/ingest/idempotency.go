package ingest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
)

// Idempotency of the issuing routes.
//
// A request's Idempotency-Key names one issuing: a retry with the same key
// gets the same answer without a second vendor call, on any replica and
// after a restart. The state is a log every replica reads whole (a
// compacted Kafka topic, --idempotency-topic), keyed by route and key:
//
//	claimed   a request took the key and is calling the vendor
//	done      its answer (token, ids, URLs), written after the registration
//	          event was acknowledged and before the answer is sent
//	released  the request failed before it answered a token: the key is free
//
// A request appends its claim and waits until its replica has read the
// claim back from the log: the key's records are in one partition, so the
// first claim read is the first claim written, on every replica alike.
// A key belongs to its caller (the bearer token that sent it): another
// caller's request with the same key is another key, so that no caller can
// replay, block or probe another's issuing by guessing its keys.
// Only the first claimant calls the vendor; another request with the key
// is answered the done answer (same body), 409 while the claim is live, or
// 422 when its body differs. A claim whose owner died is live for
// ClaimTimeout after it was written, then the key may be claimed again.
// Records older than TTL are forgotten; at most MaxEntries keys are kept
// (the oldest go first).

// IdempotencyLog stores idempotency records. Append returns once the record
// is durable; the log's reader hands every record, in its key's order, to
// Idempotency.Apply on every replica.
type IdempotencyLog interface {
	Append(ctx context.Context, key string, value []byte) error
}

// IdempotencyConfig configures an Idempotency. Zero values take the
// defaults noted.
type IdempotencyConfig struct {
	TTL          time.Duration // how long a key's answer is kept (24 h)
	ClaimTimeout time.Duration // how long a claim without outcome holds its key (2 min)
	MaxEntries   int           // keys kept at most (100000)
	// BodyKeys key the hash of a request body kept with its key (a body may
	// hold an ID number; its plain hash could be guessed). The first hashes;
	// any matches, so a rotation does not turn retries into 422s.
	BodyKeys []config.Secret
	Now      clock.Now
}

// DefaultIdempotencyConfig returns IdempotencyConfig's defaults.
func DefaultIdempotencyConfig() IdempotencyConfig {
	return IdempotencyConfig{TTL: 24 * time.Hour, ClaimTimeout: 2 * time.Minute, MaxEntries: 100_000}
}

// idemRecord is one record of the log.
type idemRecord struct {
	V      int             `json:"v"`
	State  string          `json:"state"` // claimed, done, released
	Claim  string          `json:"claim"` // the claiming request's random id
	At     time.Time       `json:"at"`
	Body   string          `json:"body"` // keyed hash of the request body
	Answer json.RawMessage `json:"answer,omitempty"`
}

const (
	idemClaimed  = "claimed"
	idemDone     = "done"
	idemReleased = "released"
)

type idemQueued struct {
	key string
	at  time.Time
}

// Idempotency is one replica's view of the idempotency log.
type Idempotency struct {
	cfg   IdempotencyConfig
	log   IdempotencyLog
	ready atomic.Bool

	mu      sync.Mutex
	entries map[string]idemRecord
	order   []idemQueued // keys in the order their entries appeared, for expiry and the bound
	waiters map[string]chan struct{}
	invalid int
}

// NewIdempotency returns an Idempotency appending to log. It answers
// nothing (ErrIdempotencyNotReady) until SetReady, which the log's reader
// calls once it has read what the log held when it started.
func NewIdempotency(cfg IdempotencyConfig, log IdempotencyLog) (*Idempotency, error) {
	def := DefaultIdempotencyConfig()
	if cfg.TTL <= 0 {
		cfg.TTL = def.TTL
	}
	if cfg.ClaimTimeout <= 0 {
		cfg.ClaimTimeout = def.ClaimTimeout
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = def.MaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = clock.Real
	}
	if len(cfg.BodyKeys) == 0 {
		return nil, errors.New("idempotency: no key to hash request bodies with")
	}
	if log == nil {
		return nil, errors.New("idempotency: no log")
	}
	return &Idempotency{cfg: cfg, log: log, entries: map[string]idemRecord{}, waiters: map[string]chan struct{}{}}, nil
}

// SetReady marks the log read up to where it ended at start.
func (d *Idempotency) SetReady() { d.ready.Store(true) }

// Ready reports whether SetReady was called.
func (d *Idempotency) Ready() bool { return d.ready.Load() }

// Apply takes one record read from the log (every replica reads every
// record). Records it cannot decode are counted and skipped.
func (d *Idempotency) Apply(key string, value []byte) {
	var rec idemRecord
	if err := json.Unmarshal(value, &rec); err != nil || rec.V != 1 || rec.Claim == "" {
		d.mu.Lock()
		d.invalid++
		d.mu.Unlock()
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applyLocked(key, rec)
	if ch, ok := d.waiters[rec.Claim]; ok {
		close(ch)
		delete(d.waiters, rec.Claim)
	}
}

// applyLocked decides by the records' own times, so every replica decides
// alike whatever its clock.
func (d *Idempotency) applyLocked(key string, rec idemRecord) {
	if !rec.At.After(d.cfg.Now().Add(-d.cfg.TTL)) {
		return // expired: read back from an old log
	}
	cur, ok := d.entries[key]
	if ok && !rec.At.Before(cur.At.Add(d.cfg.TTL)) {
		ok = false // the entry had expired when this record was written
	}
	switch rec.State {
	case idemClaimed:
		if ok && cur.State != idemReleased && (cur.State == idemDone || rec.At.Before(cur.At.Add(d.cfg.ClaimTimeout))) {
			return // the key is taken: the first live claim wins
		}
	case idemDone:
		if ok && cur.State == idemDone {
			return // the first answer stays
		}
	case idemReleased:
		if !ok || cur.Claim != rec.Claim || cur.State != idemClaimed {
			return
		}
	default:
		d.invalid++
		return
	}
	d.order = append(d.order, idemQueued{key, rec.At})
	d.entries[key] = rec
	d.trimLocked()
}

// trimLocked forgets expired entries and the oldest beyond MaxEntries.
// order holds an item per entry's time; an item whose entry has changed
// since is stale and dropped when it comes first.
func (d *Idempotency) trimLocked() {
	horizon := d.cfg.Now().Add(-d.cfg.TTL)
	for len(d.order) > 0 {
		q := d.order[0]
		cur, ok := d.entries[q.key]
		current := ok && cur.At.Equal(q.at)
		if current && len(d.entries) <= d.cfg.MaxEntries && q.at.After(horizon) {
			break
		}
		d.order = d.order[1:]
		if current {
			delete(d.entries, q.key)
		}
	}
	// Items of entries replaced since (a claim released, then claimed
	// again) wait behind older live ones: drop them, and all but one item
	// of each entry, once they outnumber the live entries, so the queue
	// stays proportional to the entries.
	if len(d.order) > 2*len(d.entries)+64 {
		live, seen := d.order[:0], make(map[string]bool, len(d.entries))
		for _, q := range d.order {
			if cur, ok := d.entries[q.key]; ok && cur.At.Equal(q.at) && !seen[q.key] {
				seen[q.key] = true
				live = append(live, q)
			}
		}
		clear(d.order[len(live):])
		d.order = live
	}
}

// Entries returns how many keys are held (for tests and metrics).
func (d *Idempotency) Entries() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// Errors of Begin, each answered with its own status.
var (
	ErrIdempotencyNotReady = errors.New("idempotency state is still being read")
	ErrIdempotencyBusy     = errors.New("a request with this Idempotency-Key is in progress")
	ErrIdempotencyMismatch = errors.New("this Idempotency-Key was used with a different request body")
)

// Claim is a request's hold on its key.
type Claim struct {
	key, id, body string
	// Replay is the stored answer when the key was already done.
	Replay json.RawMessage
}

// bodyHash returns the hash of body under key k.
func bodyHash(k []byte, route string, body []byte) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(route))
	m.Write([]byte{0})
	m.Write(body)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (d *Idempotency) bodyMatches(stored, route string, body []byte) bool {
	ok := false
	for _, k := range d.cfg.BodyKeys {
		if hmac.Equal([]byte(stored), []byte(bodyHash([]byte(k.Reveal()), route, body))) {
			ok = true
		}
	}
	return ok
}

// idemKey is the log key of a caller's Idempotency-Key on a route: the key
// is the customer's and caller names its bearer token, so only their hash
// is kept.
func idemKey(route, caller, key string) string {
	h := sha256.New()
	h.Write([]byte(caller))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return "idem:" + route + ":" + hex.EncodeToString(h.Sum(nil))
}

// Begin claims key of caller (a name of the bearer token the request was
// authorized with, never the token) for a request on route with body. It returns a Claim
// with Replay set when the key's answer is stored (the same body), a Claim
// to Finish or Release when this request is the first, or one of the
// errors above (a log failure as itself).
func (d *Idempotency) Begin(ctx context.Context, route, caller, key string, body []byte) (*Claim, error) {
	if !d.Ready() {
		return nil, ErrIdempotencyNotReady
	}
	k := idemKey(route, caller, key)
	if c, err, decided := d.lookup(k, route, body); decided {
		return c, err
	}
	var idb [16]byte
	_, _ = rand.Read(idb[:])
	c := &Claim{key: k, id: hex.EncodeToString(idb[:]), body: bodyHash([]byte(d.cfg.BodyKeys[0].Reveal()), route, body)}
	rec := idemRecord{V: 1, State: idemClaimed, Claim: c.id, At: d.cfg.Now().UTC(), Body: c.body}
	b, _ := json.Marshal(rec)
	ch := make(chan struct{})
	d.mu.Lock()
	d.waiters[c.id] = ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.waiters, c.id)
		d.mu.Unlock()
	}()
	if err := d.log.Append(ctx, k, b); err != nil {
		return nil, err
	}
	select {
	case <-ch:
	case <-ctx.Done():
		// The claim is stored but was not read back in time: give it up, so
		// that it does not hold the key for ClaimTimeout (best effort).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		d.Release(rctx, c)
		cancel()
		return nil, ctx.Err()
	}
	d.mu.Lock()
	cur, ok := d.entries[k]
	d.mu.Unlock()
	if ok && cur.Claim == c.id && cur.State == idemClaimed {
		return c, nil
	}
	if c, err, decided := d.lookup(k, route, body); decided {
		return c, err
	}
	return nil, ErrIdempotencyBusy
}

// lookup answers from the entry of k when it decides the request.
func (d *Idempotency) lookup(k, route string, body []byte) (*Claim, error, bool) {
	d.mu.Lock()
	cur, ok := d.entries[k]
	d.mu.Unlock()
	now := d.cfg.Now()
	if !ok || !now.Before(cur.At.Add(d.cfg.TTL)) || cur.State == idemReleased {
		return nil, nil, false
	}
	if cur.State == idemClaimed && !now.Before(cur.At.Add(d.cfg.ClaimTimeout)) {
		return nil, nil, false // its owner is gone: the key may be claimed again
	}
	if !d.bodyMatches(cur.Body, route, body) {
		return nil, ErrIdempotencyMismatch, true
	}
	if cur.State == idemDone {
		return &Claim{Replay: cur.Answer}, nil, true
	}
	return nil, ErrIdempotencyBusy, true
}

// Finish stores the answer of a claim. Once it returns nil, a retry with
// the key is answered the same.
func (d *Idempotency) Finish(ctx context.Context, c *Claim, answer json.RawMessage) error {
	rec := idemRecord{V: 1, State: idemDone, Claim: c.id, At: d.cfg.Now().UTC(), Body: c.body, Answer: answer}
	b, _ := json.Marshal(rec)
	if err := d.log.Append(ctx, c.key, b); err != nil {
		return err
	}
	d.Apply(c.key, b) // read-your-write on this replica before the reader gets there
	return nil
}

// Release frees a claim's key after a failure that gave out no token, so
// that a retry calls the vendor again. Best effort: a claim not released
// holds its key for ClaimTimeout.
func (d *Idempotency) Release(ctx context.Context, c *Claim) {
	rec := idemRecord{V: 1, State: idemReleased, Claim: c.id, At: d.cfg.Now().UTC(), Body: c.body}
	b, _ := json.Marshal(rec)
	if err := d.log.Append(ctx, c.key, b); err == nil {
		d.Apply(c.key, b)
	}
}
