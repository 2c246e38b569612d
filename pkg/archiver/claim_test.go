package archiver

import (
	"bytes"
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// byReference turns a response message into the harvester's claim check:
// the message carries the reference only, and store (when not nil) gets
// the bytes put under it (tamper changes them first, when not nil).
func byReference(t *testing.T, m contract.Message, store objstore.Bucket, tamper func([]byte) []byte) contract.Message {
	t.Helper()
	r, err := contract.ParseResponse(m)
	if err != nil {
		t.Fatal(err)
	}
	ref := contract.RawBodyRef(r.ID(), r.Body)
	r.Ref = &ref
	out := r.Message("/harvester")
	if store != nil {
		body := r.Body
		if tamper != nil {
			body = tamper(bytes.Clone(body))
		}
		if err := store.Create(context.Background(), ref.Key, bytes.NewReader(body), int64(len(body)), "application/json", contract.StoredMetadata(out)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// A raw topic at Kafka's default max.message.bytes holding both kinds of
// answers: inline (as written before the claim check) and by reference.
// Both give the same record. A reference whose object is not in the store
// yet is waited for (counted), then archived; bytes that differ from their
// reference are dead-lettered (raw_mismatch, counted), never archived.
func TestMixedRawTopicInlineAndByReference(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{Partitions: 1, Topics: []string{rawTopic, resultsTopic, dlqTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	brokers := []string{b.Addr()}
	w := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(brokers...), Topic: rawTopic})
	t.Cleanup(func() { _ = w.Close() })
	store := objstore.NewMemory()

	late := megviiMessages(t, "late", 4)
	late[0] = byReference(t, late[0], nil, nil)
	inline := megviiMessages(t, "inline", 1)
	ref := megviiMessages(t, "ref", 1)
	ref[0] = byReference(t, ref[0], store, nil)
	bad := megviiMessages(t, "bad", 3)
	bad[0] = byReference(t, bad[0], store, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	for _, ms := range [][]contract.Message{late, inline, ref, bad} {
		if len(ms[0].Value) > 0 && ms[0].Headers[len(ms[0].Headers)-1].Key == contract.HeaderDataSHA256 {
			t.Fatal("a message by reference carries its bytes")
		}
		produce(t, w, ms...)
	}
	a, stop := runner(t, brokers, store, DefaultRunConfig().HoldLimit)
	defer stop()

	recInline := readRecord(t, brokers, contract.RecordID(contract.Megvii, "inline"))
	recRef := readRecord(t, brokers, contract.RecordID(contract.Megvii, "ref"))
	if len(recInline.Media) != 3 || len(recRef.Media) != 3 || len(recRef.Problems) != 0 {
		t.Fatalf("records: inline %+v, by reference %+v (problems %q)", recInline.Media, recRef.Media, recRef.Problems)
	}
	for i := range recInline.Media {
		if recInline.Media[i].SHA256 != recRef.Media[i].SHA256 || recRef.Media[i].Status != contract.MediaStored {
			t.Errorf("medium %d: inline %+v, by reference %+v", i, recInline.Media[i], recRef.Media[i])
		}
	}
	waitFor(t, func() bool { return testutil.ToFloat64(a.m.deadLetters.WithLabelValues("raw_mismatch")) == 1 }, "the tampered answer dead-lettered")
	if n := testutil.ToFloat64(a.m.rawAnswerErrors.WithLabelValues("mismatch")); n != 1 {
		t.Errorf("mismatches counted: %v", n)
	}
	recBad := readRecord(t, brokers, contract.RecordID(contract.Megvii, "bad"))
	for _, m := range recBad.Media {
		if m.Status == contract.MediaStored {
			t.Errorf("the tampered answer's medium was archived: %+v", m)
		}
	}

	// The late answer waits for its object, counted, then is archived.
	waitFor(t, func() bool { return testutil.ToFloat64(a.m.rawAnswerErrors.WithLabelValues("missing")) >= 1 }, "the missing object counted")
	byReference(t, megviiMessages(t, "late", 4)[0], store, nil)
	recLate := readRecord(t, brokers, contract.RecordID(contract.Megvii, "late"))
	if len(recLate.Media) != 3 || len(recLate.Problems) != 0 {
		t.Fatalf("late record: %+v problems %q", recLate.Media, recLate.Problems)
	}
	if n := testutil.ToFloat64(a.m.rawAnswers.WithLabelValues("store")); n != 2 {
		t.Errorf("answers read from the store: %v, want 2", n)
	}
}
