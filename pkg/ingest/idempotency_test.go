package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
)

func newIdem(t *testing.T, clk *time.Time, mutate func(*IdempotencyConfig)) (*Idempotency, *memLog) {
	t.Helper()
	log := &memLog{}
	cfg := IdempotencyConfig{BodyKeys: []config.Secret{config.NewSecret(landingKeyNew)}, Now: func() time.Time { return *clk }}
	if mutate != nil {
		mutate(&cfg)
	}
	d, err := NewIdempotency(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	log.subs = append(log.subs, d)
	return d, log
}

// TestIdempotencyLifecycle: claim, busy, done, replay, mismatch, release,
// expiry after TTL, a dead owner's claim after ClaimTimeout; and nothing
// before the log was read.
func TestIdempotencyLifecycle(t *testing.T) {
	clk := now
	d, log := newIdem(t, &clk, func(c *IdempotencyConfig) { c.TTL, c.ClaimTimeout = time.Hour, time.Minute })
	ctx := context.Background()
	body := []byte(`{"biz_no":"b"}`)
	if _, err := d.Begin(ctx, "r", "c", "k", body); !errors.Is(err, ErrIdempotencyNotReady) {
		t.Fatalf("before ready: %v", err)
	}
	d.SetReady()
	c, err := d.Begin(ctx, "r", "c", "k", body)
	if err != nil || c.Replay != nil {
		t.Fatalf("first: %+v %v", c, err)
	}
	if _, err := d.Begin(ctx, "r", "c", "k", body); !errors.Is(err, ErrIdempotencyBusy) {
		t.Fatalf("while claimed: %v", err)
	}
	if _, err := d.Begin(ctx, "r", "c", "k", []byte(`{"biz_no":"c"}`)); !errors.Is(err, ErrIdempotencyMismatch) {
		t.Fatalf("other body while claimed: %v", err)
	}
	if err := d.Finish(ctx, c, json.RawMessage(`{"token":"t1"}`)); err != nil {
		t.Fatal(err)
	}
	if r, err := d.Begin(ctx, "r", "c", "k", body); err != nil || string(r.Replay) != `{"token":"t1"}` {
		t.Fatalf("replay: %+v %v", r, err)
	}
	if _, err := d.Begin(ctx, "other-route", "c", "k", body); err != nil {
		t.Fatalf("the key on another route: %v", err)
	}
	// Released: the next request claims anew.
	c2, _ := d.Begin(ctx, "r", "c", "k2", body)
	d.Release(ctx, c2)
	if c3, err := d.Begin(ctx, "r", "c", "k2", body); err != nil || c3.Replay != nil || c3.id == c2.id {
		t.Fatalf("after release: %+v %v", c3, err)
	}
	// A claim whose owner never finished holds its key ClaimTimeout.
	dead, _ := d.Begin(ctx, "r", "c", "k3", body)
	clk = clk.Add(59 * time.Second)
	if _, err := d.Begin(ctx, "r", "c", "k3", body); !errors.Is(err, ErrIdempotencyBusy) {
		t.Fatalf("dead claim within its timeout: %v", err)
	}
	clk = clk.Add(2 * time.Second)
	if c4, err := d.Begin(ctx, "r", "c", "k3", body); err != nil || c4.id == dead.id {
		t.Fatalf("dead claim past its timeout: %+v %v", c4, err)
	}
	// The answer is kept TTL.
	clk = now.Add(time.Hour + time.Second)
	if r, err := d.Begin(ctx, "r", "c", "k", body); err != nil || r.Replay != nil {
		t.Fatalf("past TTL: %+v %v", r, err)
	}
	// The log unavailable: no claim, the error says so.
	log.err = errors.New("broker away")
	if _, err := d.Begin(ctx, "r", "c", "k9", body); err == nil || errors.Is(err, ErrIdempotencyBusy) {
		t.Fatalf("log failure: %v", err)
	}
}

// TestIdempotencyFirstClaimWins: records are decided by their order in the
// log, whatever the replica: a second claim while the first lives loses,
// and a replica reading the log later agrees.
func TestIdempotencyFirstClaimWins(t *testing.T) {
	clk := now
	d, log := newIdem(t, &clk, nil)
	d.SetReady()
	later, err := NewIdempotency(IdempotencyConfig{BodyKeys: []config.Secret{config.NewSecret(landingKeyNew)}, Now: func() time.Time { return clk }}, log)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(state, claim string, at time.Time, answer string) []byte {
		b, _ := json.Marshal(idemRecord{V: 1, State: state, Claim: claim, At: at, Answer: json.RawMessage(answer)})
		return b
	}
	key := idemKey("r", "c", "k")
	records := [][]byte{
		rec(idemClaimed, "a", now, ""),
		rec(idemClaimed, "b", now.Add(time.Second), ""),
		rec(idemDone, "b", now.Add(2*time.Second), `"from b"`),
		rec(idemDone, "a", now.Add(3*time.Second), `"from a"`),
		rec(idemDone, "a", now.Add(4*time.Second), `"again"`),
		[]byte("not json"),
	}
	for _, r := range records {
		d.Apply(key, r)
		later.Apply(key, r)
	}
	for name, x := range map[string]*Idempotency{"live": d, "read later": later} {
		x.mu.Lock()
		got := x.entries[key]
		x.mu.Unlock()
		// b's claim lost to a's; b's done (its owner went on regardless)
		// is the first answer and stays.
		if got.State != idemDone || string(got.Answer) != `"from b"` {
			t.Errorf("%s: %+v", name, got)
		}
	}
}

// TestIdempotencyBounded: at most MaxEntries keys; the oldest go first.
func TestIdempotencyBounded(t *testing.T) {
	clk := now
	d, _ := newIdem(t, &clk, func(c *IdempotencyConfig) { c.MaxEntries = 3 })
	d.SetReady()
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "d"} {
		c, err := d.Begin(ctx, "r", "c", k, nil)
		if err != nil {
			t.Fatal(err)
		}
		clk = clk.Add(time.Second)
		if err := d.Finish(ctx, c, json.RawMessage(`"`+k+`"`)); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.Entries(); n != 3 {
		t.Fatalf("%d entries", n)
	}
	if r, _ := d.Begin(ctx, "r", "c", "d", nil); r == nil || string(r.Replay) != `"d"` {
		t.Fatalf("newest forgotten: %+v", r)
	}
	if r, _ := d.Begin(ctx, "r", "c", "a", nil); r == nil || r.Replay != nil {
		t.Fatalf("oldest kept: %+v", r)
	}
}

// laggingLog stores records but its reader never hands them back: a claim
// not read back in time is given up, so the key is not held.
type laggingLog struct{ records []idemRecord }

func (l *laggingLog) Append(ctx context.Context, key string, value []byte) error {
	var r idemRecord
	_ = json.Unmarshal(value, &r)
	l.records = append(l.records, r)
	return nil
}

func TestIdempotencyClaimNotReadBack(t *testing.T) {
	log := &laggingLog{}
	d, err := NewIdempotency(IdempotencyConfig{BodyKeys: []config.Secret{config.NewSecret(landingKeyNew)}, Now: func() time.Time { return now }}, log)
	if err != nil {
		t.Fatal(err)
	}
	d.SetReady()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as a deadline passed
	if _, err := d.Begin(ctx, "r", "c", "k", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("begin: %v", err)
	}
	if len(log.records) != 2 || log.records[0].State != idemClaimed || log.records[1].State != idemReleased || log.records[1].Claim != log.records[0].Claim {
		t.Fatalf("records %+v", log.records)
	}
}
