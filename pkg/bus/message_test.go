package bus

import (
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// A message crosses to the Kafka client and back unchanged, every field.
func TestMessageRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 5, time.UTC)
	for _, m := range []contract.Message{
		{},
		{Key: []byte("megvii:1")},
		{Topic: "faceid.events", Partition: 3, Offset: 42, Key: []byte("baidu:2"), Value: []byte(`{}`), Time: at,
			Headers: []contract.Header{{Key: contract.HeaderID, Value: []byte("id")}, {Key: "empty"}}},
	} {
		km := ToKafka(m)
		if km.Topic != m.Topic || km.Partition != m.Partition || km.Offset != m.Offset || !km.Time.Equal(m.Time) || len(km.Headers) != len(m.Headers) {
			t.Errorf("ToKafka(%+v) = %+v", m, km)
		}
		if back := FromKafka(km); !reflect.DeepEqual(back, m) {
			t.Errorf("round trip: %+v, want %+v", back, m)
		}
	}
	// The header slices are copies: a writer's batch never aliases a
	// caller's headers.
	m := contract.Message{Headers: []contract.Header{{Key: "a", Value: []byte("1")}}}
	km := ToKafka(m)
	km.Headers[0].Key = "b"
	if m.Headers[0].Key != "a" {
		t.Error("ToKafka shares the headers")
	}
	back := FromKafka(kafka.Message{Headers: []kafka.Header{{Key: "a"}}})
	if back.Headers[0].Key != "a" {
		t.Errorf("FromKafka headers %v", back.Headers)
	}
}
