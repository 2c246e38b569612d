package contract

import "time"

// Message is one message on a topic, as the components hand it to each
// other: what a writer publishes and what a consumer is given. It names no
// client library; pkg/bus converts it to and from the Kafka client's own.
// Topic, Partition and Offset say where a consumed message was read; a
// writer ignores Offset, and Partition unless it writes by partition.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	// Time is the message's timestamp; a writer stamps a zero one with the
	// time of the write.
	Time time.Time
}

// Header is one message header.
type Header struct {
	Key   string
	Value []byte
}

// Header returns the value of the message's last header named key, and
// whether there is one.
func (m Message) Header(key string) ([]byte, bool) {
	for i := len(m.Headers) - 1; i >= 0; i-- {
		if m.Headers[i].Key == key {
			return m.Headers[i].Value, true
		}
	}
	return nil, false
}
