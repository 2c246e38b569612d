package bus

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// Offsets commits only over a run of finished messages, whatever order they
// finish in; an offset waiting on a write is finished when it is acked.
func TestOffsetsCommitInOrder(t *testing.T) {
	o := NewOffsets(4)
	for _, off := range []int64{10, 11, 12, 13} {
		o.add(off)
	}
	o.Done(12)
	if n := o.Committable(); n != -1 {
		t.Fatalf("committable %d with 10 and 11 open", n)
	}
	o.Done(10)
	if n := o.Committable(); n != 11 {
		t.Fatalf("committable %d, want 11", n)
	}
	acked := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan struct{})
	loop := make(chan struct{})
	go func() { o.waitLoop(ctx, stop); close(loop) }()
	if !o.DoneWhen(ctx, 11, acked) {
		t.Fatal("DoneWhen refused")
	}
	close(acked)
	for deadline := time.Now().Add(3 * time.Minute); o.Committable() != 13 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := o.Committable(); n != 13 {
		t.Fatalf("committable %d after 11's ack, want 13", n)
	}
	// Stopping finishes what is acked and leaves the rest open.
	never := make(chan struct{})
	o.DoneWhen(ctx, 13, never)
	close(stop)
	<-loop
	if n := o.Committable(); n != 13 {
		t.Fatalf("committable %d: 13 was never acked", n)
	}
}

type recordingWriter struct {
	msgs []contract.Message
	fail int
}

func (w *recordingWriter) WriteMessages(_ context.Context, ms ...contract.Message) error {
	if w.fail > 0 {
		w.fail--
		return errors.New("broker not available")
	}
	w.msgs = append(w.msgs, ms...)
	return nil
}

// Every dead letter has the reason, the source and, when cut, the original
// length; with a payload store, a reference instead of the payload.
func TestDeadLetterFormat(t *testing.T) {
	src := rawAnswer()
	src.Value = append(bytes.Repeat([]byte("x"), DeadLetterValueCap), "tail"...)
	w := &recordingWriter{fail: 2}
	var waits []time.Duration
	d := NewDeadLetters(DeadLetterConfig{Writer: w})
	d.cfg.Retry.Wait = func(_ context.Context, dur time.Duration) error { waits = append(waits, dur); return nil }
	if !d.Write(context.Background(), src, "bad_response", "not JSON") {
		t.Fatal("not written")
	}
	if len(w.msgs) != 1 || len(waits) != 2 || waits[0] != 100*time.Millisecond || waits[1] != 200*time.Millisecond {
		t.Fatalf("%d written after waits %v", len(w.msgs), waits)
	}
	dl := w.msgs[0]
	for k, want := range map[string]string{HeaderDLQReason: "not JSON", HeaderDLQSource: "faceid.results.raw/3/42",
		HeaderDLQTruncated: "524292", "ce_id": "id-1"} {
		if v, _ := header(dl, k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	if len(dl.Value) != DeadLetterValueCap || string(dl.Key) != "megvii:biz-1" {
		t.Fatalf("value %d bytes, key %s", len(dl.Value), dl.Key)
	}

	store := objstore.NewMemory()
	w = &recordingWriter{}
	d = NewDeadLetters(DeadLetterConfig{Writer: w, Payloads: DeadLetterPayloads{Store: store}})
	if !d.Write(context.Background(), src, "bad_response", "not JSON") {
		t.Fatal("not written")
	}
	dl = w.msgs[0]
	if _, cut := header(dl, HeaderDLQTruncated); cut || strings.Contains(string(dl.Value), "tail") {
		t.Fatalf("a stored payload's dead letter: %s", dl.Value)
	}
	if v, _ := header(dl, HeaderDLQSource); v != "faceid.results.raw/3/42" {
		t.Fatalf("source %q", v)
	}
	got, err := DeadLetterPayload(context.Background(), store, dl)
	if err != nil || !bytes.Equal(got, src.Value) {
		t.Fatalf("payload back: %d bytes, %v", len(got), err)
	}
}
