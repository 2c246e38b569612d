package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

func header(m contract.Message, k string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value), true
		}
	}
	return "", false
}

// rawAnswer is a raw-topic message as the archiver reads it: a vendor
// answer with an ID number and an image.
func rawAnswer() contract.Message {
	return contract.Message{Topic: "faceid.results.raw", Partition: 3, Offset: 42, Key: []byte("megvii:biz-1"),
		Value:   []byte(`{"idcard_number":"110101199001011234","image_best":"data:image/jpeg;base64,/9j/4AAQ"}`),
		Headers: []contract.Header{{Key: "ce_id", Value: []byte("id-1")}, {Key: "content-type", Value: []byte("application/json")}}}
}

// A dead letter whose payload goes to the store carries only a reference:
// the personal data stays in the store (and its retention), the DLQ holds
// key, headers, reason and where the payload is; the payload reads back
// byte for byte, whole even when the dead letter was cut short.
func TestDeadLetterPayloadInStore(t *testing.T) {
	ctx := context.Background()
	store := objstore.NewMemory()
	src := rawAnswer()
	dl := contract.Message{Key: src.Key, Value: src.Value[:20], Headers: append(append([]contract.Header{}, src.Headers...),
		contract.Header{Key: "faceharvest_dlq_reason", Value: []byte("bad_response")}, contract.Header{Key: HeaderDLQTruncated, Value: []byte("99")})}
	p := DeadLetterPayloads{Store: store}
	out, err := p.Apply(ctx, src, dl)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out.Value, []byte("110101199001011234")) || bytes.Contains(out.Value, []byte("base64")) {
		t.Fatalf("the dead letter still carries the payload: %s", out.Value)
	}
	ref, ok := header(out, HeaderDLQPayloadRef)
	if !ok || ref != "dlq/faceid.results.raw/3/42" {
		t.Fatalf("reference header %q %v", ref, ok)
	}
	if _, ok := header(out, HeaderDLQTruncated); ok {
		t.Error("the stored payload is whole: the truncation header must go")
	}
	if r, ok := header(out, "faceharvest_dlq_reason"); !ok || r != "bad_response" || string(out.Key) != "megvii:biz-1" {
		t.Errorf("key and reason must stay: %q %q", out.Key, r)
	}
	var v struct {
		Payload struct {
			StoreKey string `json:"store_key"`
			Size     int    `json:"size"`
			SHA256   string `json:"sha256"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(out.Value, &v); err != nil || v.Payload.StoreKey != ref || v.Payload.Size != len(src.Value) || len(v.Payload.SHA256) != 64 {
		t.Fatalf("reference value %s: %v", out.Value, err)
	}
	got, err := DeadLetterPayload(ctx, store, out)
	if err != nil || !bytes.Equal(got, src.Value) {
		t.Fatalf("payload read back %q %v", got, err)
	}
	// Written again after a crash: the same reference, nothing new.
	again, err := p.Apply(ctx, src, dl)
	if err != nil || !bytes.Equal(again.Value, out.Value) {
		t.Fatalf("second apply %s %v", again.Value, err)
	}
	// A stored payload that was changed is refused, not handed back.
	_ = store.Put(ctx, ref, strings.NewReader("forged"), 6, "application/octet-stream", nil)
	if _, err := DeadLetterPayload(ctx, store, out); !errors.Is(err, objstore.ErrChecksum) {
		t.Fatalf("a changed payload: %v", err)
	}
}

// Inline (no store): the dead letter is written as it was built, and its
// payload is its value.
func TestDeadLetterPayloadInline(t *testing.T) {
	src := rawAnswer()
	dl := contract.Message{Key: src.Key, Value: src.Value, Headers: src.Headers}
	out, err := DeadLetterPayloads{}.Apply(context.Background(), src, dl)
	if err != nil || !bytes.Equal(out.Value, src.Value) || len(out.Headers) != len(src.Headers) {
		t.Fatalf("%+v %v", out, err)
	}
	if got, err := DeadLetterPayload(context.Background(), nil, out); err != nil || !bytes.Equal(got, src.Value) {
		t.Fatalf("%q %v", got, err)
	}
}

// The setting's values.
func TestParseDeadLetterPayloads(t *testing.T) {
	for in, want := range map[string]string{"inline": "inline", "store": "store", "": "error", "STORE": "error", "s3": "error"} {
		got, err := ParseDeadLetterPayloadMode(in)
		if (err != nil) != (want == "error") || (err == nil && string(got) != want) {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
}
