package bus

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// HeaderDLQRedriven marks a message on the dead-letter topic as the record
// that the dead letter at <partition>/<offset> of that topic was sent back
// to its source topic. Redrive writes one after each send and sends no
// dead letter that has one, so running it twice sends nothing twice.
const HeaderDLQRedriven = "faceharvest_dlq_redriven"

// DeadLetter is one dead letter as read back from the topic.
type DeadLetter struct {
	Partition int
	Offset    int64
	Time      time.Time
	Key       string
	Size      int    // bytes of the value as stored on the topic
	Reason    string // HeaderDLQReason
	Source    string // HeaderDLQSource: topic/partition/offset
	Truncated string // HeaderDLQTruncated: the original length, when cut
	// PayloadRef is the object-store key of a payload stored out of line.
	PayloadRef string
	// Redriven is set when a marker says it was sent back already.
	Redriven bool
	msg      contract.Message
}

// SourceTopic is the topic the dead letter came from.
func (d DeadLetter) SourceTopic() string {
	i := strings.LastIndexByte(d.Source, '/')
	if i <= 0 {
		return ""
	}
	j := strings.LastIndexByte(d.Source[:i], '/')
	if j <= 0 {
		return ""
	}
	return d.Source[:j]
}

// ReadDeadLetters reads every partition of topic from its start to the end
// it had when the read began, and returns the dead letters (markers
// applied, not listed) in partition and offset order.
func ReadDeadLetters(ctx context.Context, cl Cluster, topic string) ([]DeadLetter, error) {
	parts, err := PartitionCount(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	var out []DeadLetter
	redriven := map[string]bool{}
	for p := range parts {
		err := ReadRange(ctx, cl, topic, p, -1, func(m contract.Message) {
			d := DeadLetter{Partition: m.Partition, Offset: m.Offset, Time: m.Time, Key: string(m.Key), Size: len(m.Value), msg: m}
			for _, h := range m.Headers {
				switch h.Key {
				case HeaderDLQRedriven:
					redriven[string(h.Value)] = true
					return
				case HeaderDLQReason:
					d.Reason = string(h.Value)
				case HeaderDLQSource:
					d.Source = string(h.Value)
				case HeaderDLQTruncated:
					d.Truncated = string(h.Value)
				case HeaderDLQPayloadRef:
					d.PayloadRef = string(h.Value)
				}
			}
			out = append(out, d)
		})
		if err != nil {
			return nil, err
		}
	}
	for i := range out {
		out[i].Redriven = redriven[strconv.Itoa(out[i].Partition)+"/"+strconv.FormatInt(out[i].Offset, 10)]
	}
	return out, nil
}

// Redrive sends a dead letter back to its source topic, once: its key, its
// payload (fetched from store when it was stored out of line, checked
// against its SHA-256) and its original headers, without the dead-letter
// headers; then a marker (HeaderDLQRedriven) on the dead-letter topic. A
// crash between the two sends it again on the next run: the message keeps
// its ce_id, and every consumer of the pipeline deduplicates on it. A dead
// letter that was cut (HeaderDLQTruncated) without a stored payload is
// refused: its payload is lost, and half of it would be worse.
func Redrive(ctx context.Context, d DeadLetter, store PayloadBucket, send func(ctx context.Context, topic string, m contract.Message) error, dlqTopic string) error {
	if d.Redriven {
		return nil
	}
	topic := d.SourceTopic()
	if topic == "" {
		return fmt.Errorf("dead letter %d/%d names no source topic (%q)", d.Partition, d.Offset, d.Source)
	}
	if d.Truncated != "" && d.PayloadRef == "" {
		return fmt.Errorf("dead letter %d/%d was cut to %d of %s bytes and its payload was not stored: it cannot be sent back", d.Partition, d.Offset, d.Size, d.Truncated)
	}
	payload, err := DeadLetterPayload(ctx, store, d.msg)
	if err != nil {
		return err
	}
	m := contract.Message{Key: d.msg.Key, Value: payload}
	for _, h := range d.msg.Headers {
		switch h.Key {
		case HeaderDLQReason, HeaderDLQSource, HeaderDLQTruncated, HeaderDLQPayloadRef:
		default:
			m.Headers = append(m.Headers, h)
		}
	}
	if err := send(ctx, topic, m); err != nil {
		return fmt.Errorf("sending %d/%d back to %s: %w", d.Partition, d.Offset, topic, err)
	}
	marker := contract.Message{Key: d.msg.Key, Headers: []contract.Header{{Key: HeaderDLQRedriven, Value: []byte(strconv.Itoa(d.Partition) + "/" + strconv.FormatInt(d.Offset, 10))},
		{Key: HeaderDLQSource, Value: []byte(d.Source)}}}
	if err := send(ctx, dlqTopic, marker); err != nil {
		return fmt.Errorf("marking %d/%d redriven: %w", d.Partition, d.Offset, err)
	}
	return nil
}
