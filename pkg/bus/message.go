package bus

import (
	"context"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// ToKafka returns m as the Kafka client's message (headers copied into a
// new slice; keys and values shared).
func ToKafka(m contract.Message) kafka.Message {
	km := kafka.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time}
	if len(m.Headers) > 0 {
		km.Headers = make([]kafka.Header, len(m.Headers))
		for i, h := range m.Headers {
			km.Headers[i] = kafka.Header(h)
		}
	}
	return km
}

// FromKafka returns the Kafka client's message as a contract message
// (headers copied into a new slice; keys and values shared).
func FromKafka(km kafka.Message) contract.Message {
	m := contract.Message{Topic: km.Topic, Partition: km.Partition, Offset: km.Offset, Key: km.Key, Value: km.Value, Time: km.Time}
	if len(km.Headers) > 0 {
		m.Headers = make([]contract.Header, len(km.Headers))
		for i, h := range km.Headers {
			m.Headers[i] = contract.Header(h)
		}
	}
	return m
}

// Writer publishes contract messages to one topic. Build it with
// NewWriter; it is safe for concurrent use.
type Writer struct {
	kw  *kafka.Writer
	obs *writerObserver // its produce requests and batches, for WriterCollector
}

// WriteMessages writes msgs and returns once all are acknowledged by every
// in-sync replica, or the write failed.
func (w *Writer) WriteMessages(ctx context.Context, msgs ...contract.Message) error {
	kms := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		kms[i] = ToKafka(m)
	}
	return w.kw.WriteMessages(ctx, kms...)
}

// Topic is the topic the writer writes to.
func (w *Writer) Topic() string { return w.kw.Topic }

// Close flushes what is pending and closes the writer's connections.
func (w *Writer) Close() error { return w.kw.Close() }
