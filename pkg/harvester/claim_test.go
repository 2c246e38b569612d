package harvester

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// largeAnswer is a served get_result answer above DefaultInlineMax.
func largeAnswer(id string) (*contract.Response, schedule.Result) {
	body := `{"status":"OK","image_best":"` + strings.Repeat("A", DefaultInlineMax) + `"}`
	return &contract.Response{Vendor: contract.Megvii, VerificationID: id, Endpoint: megvii.EndpointGetResult, HTTPStatus: 200, ContentType: contract.ContentTypeJSON, Body: []byte(body)},
		schedule.Result{Endpoint: megvii.EndpointGetResult, Recorded: true, Served: true}
}

// crashingRaw is a raw topic whose process dies when it is asked to
// publish a vendor answer: crash ends the engine's context, the publish
// fails, and nothing of the answer reaches the topic.
type crashingRaw struct {
	*memRaw
	crash context.CancelFunc
}

func (p *crashingRaw) WriteMessages(ctx context.Context, msgs ...contract.Message) error {
	for _, m := range msgs {
		if e, _ := contract.FromMessage(m); e.Type == contract.TypeVendorResponse {
			p.crash()
			return errors.New("killed")
		}
	}
	return p.memRaw.WriteMessages(ctx, msgs...)
}

// Law 3 across a crash between storing a one-shot answer and publishing
// its reference: the next owner of the verification finds the answer in
// the object store through its intent, publishes it, and closes the
// verification from it, without a second get_result; nothing is lost.
func TestCrashBetweenStoringAndPublishingTheAnswer(t *testing.T) {
	bucket := objstore.NewMemory()
	first := newSteppedRig(t, 1, largeAnswer)
	ctx, crash := context.WithCancel(context.Background())
	first.ctx = ctx
	first.eng.cfg.Answers = bucket
	first.eng.cfg.Raw = &crashingRaw{memRaw: first.raw, crash: crash}
	first.eng.cfg.Recorder = &memRecorder{raw: first.raw}
	first.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "c1", Status: "OK"})
	first.step(t)
	if calls := first.caller.order(); !slices.Equal(calls, []string{"c1"}) {
		t.Fatalf("calls before the crash: %v", calls)
	}
	id := contract.ResponseID(contract.Megvii, "c1", megvii.EndpointGetResult, 1)
	if keys, _ := objstore.Keys(context.Background(), bucket, contract.RawBodyPrefix(id)); len(keys) != 1 {
		t.Fatalf("answer stored under %v", keys)
	}
	if n := len(first.raw.read("megvii:c1")); n != 0 {
		t.Fatalf("%d raw messages published before the crash", n)
	}
	rec := first.store.get("megvii:c1")
	if rec == nil || rec.State == nil || rec.State.Intent == nil {
		t.Fatalf("no intent stored: %+v", rec)
	}

	// The next owner restores the state after the intent's grace.
	next := newSteppedRig(t, 1, okAnswer)
	next.eng.cfg.Answers = bucket
	next.eng.cfg.Recorder = &memRecorder{raw: next.raw}
	next.clk.Set(first.clk.Now().Add(next.eng.cfg.IntentGrace))
	first.store.mu.Lock()
	recs := maps.Clone(first.store.recs)
	first.store.mu.Unlock()
	next.eng.AddPartition(0, recs)
	next.settle(t)
	if calls := next.caller.order(); len(calls) != 0 {
		t.Fatalf("get_result called again after its answer was stored: %v", calls)
	}
	msgs := next.raw.read("megvii:c1")
	if len(msgs) != 2 || headerID(msgs[0]) != id {
		t.Fatalf("raw topic after the restore: %v", next.raw.types())
	}
	r, err := contract.ParseResponse(msgs[0])
	if err != nil || !r.ByReference() {
		t.Fatalf("published answer: %+v, %v", r.Ref, err)
	}
	rc, err := bucket.Get(context.Background(), r.Ref.Key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	want, _ := largeAnswer("c1")
	if err := r.Ref.Check(body); err != nil || string(body) != string(want.Body) {
		t.Fatalf("stored answer differs: %v", err)
	}
	var term contract.Terminal
	if err := jsonUnmarshal(msgs[1].Value, &term); err != nil || term.Outcome != contract.OutcomeHarvested || !slices.Equal(term.Responses, []string{id}) {
		t.Fatalf("terminal %+v (%v), want harvested from %s", term, err, id)
	}
	if next.resolved("stored") != 1 || next.resolved("unrecorded") != 0 {
		t.Fatal("not counted as stored")
	}
}

// flakyBucket fails its first fails Creates.
type flakyBucket struct {
	*objstore.Memory
	mu    sync.Mutex
	fails int
}

func (b *flakyBucket) Create(ctx context.Context, key string, body io.Reader, size int64, ct string, meta map[string]string, opts ...objstore.PutOption) error {
	b.mu.Lock()
	fail := b.fails > 0
	b.fails--
	b.mu.Unlock()
	if fail {
		return errors.New("store down")
	}
	return b.Memory.Create(ctx, key, body, size, ct, meta, opts...)
}

// A large answer is stored before it is published, and the raw message
// carries only its reference, with the message itself in the object's
// metadata; a failing store delays the publication (counted), it never
// publishes a reference to nothing. A small one-shot answer is stored too
// and travels inline.
func TestAnswersStoredBeforeTheirReference(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer func(string) (*contract.Response, schedule.Result)
		inline bool
	}{{"large", largeAnswer, false}, {"small one-shot", okAnswer, true}} {
		t.Run(c.name, func(t *testing.T) {
			bucket := &flakyBucket{Memory: objstore.NewMemory(), fails: 2}
			r := newSteppedRig(t, 1, c.answer)
			r.eng.wait = func(context.Context, time.Duration) error { return nil }
			r.eng.cfg.Answers = bucket
			r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "a1", Status: "OK"})
			r.settle(t)
			msgs := r.raw.read("megvii:a1")
			if len(msgs) != 2 {
				t.Fatalf("raw: %v", r.raw.types())
			}
			resp, err := contract.ParseResponse(msgs[0])
			if err != nil || resp.Ref == nil || resp.Inline != c.inline || (len(msgs[0].Value) > 0) != c.inline {
				t.Fatalf("published: ref %+v inline %v value %d bytes, %v", resp.Ref, resp.Inline, len(msgs[0].Value), err)
			}
			a, err := bucket.Attributes(context.Background(), resp.Ref.Key)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := contract.MessageFromStored(resp.Ref.Key, a.Metadata)
			if err != nil || headerID(stored) != headerID(msgs[0]) || len(stored.Headers) != len(msgs[0].Headers) {
				t.Fatalf("stored message %v, %v", stored.Headers, err)
			}
			if n := testutil.ToFloat64(r.eng.m.bodyStoreErrors); n != 2 {
				t.Errorf("store errors counted: %v, want 2", n)
			}
		})
	}
}
