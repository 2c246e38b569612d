package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// Dead-letter headers about where the payload is.
const (
	// HeaderDLQPayloadRef names the object-store key holding the payload
	// of a dead letter whose value is only a reference to it.
	HeaderDLQPayloadRef = "faceharvest_dlq_payload_ref"
	// HeaderDLQTruncated gives the original length of a value that was
	// cut to fit the DLQ's message size.
	HeaderDLQTruncated = "faceharvest_dlq_truncated"
)

// DeadLetterPayloadMode says where a dead letter's payload goes.
type DeadLetterPayloadMode string

const (
	// PayloadInline keeps the payload in the dead letter: the DLQ holds
	// whatever personal data it carries for the topic's retention.
	PayloadInline DeadLetterPayloadMode = "inline"
	// PayloadStore stores the payload in the object store and leaves a
	// reference in the dead letter.
	PayloadStore DeadLetterPayloadMode = "store"
)

// ParseDeadLetterPayloadMode reads a setting's value: inline or store.
func ParseDeadLetterPayloadMode(s string) (DeadLetterPayloadMode, error) {
	switch m := DeadLetterPayloadMode(s); m {
	case PayloadInline, PayloadStore:
		return m, nil
	}
	return "", fmt.Errorf("%q: want inline or store", s)
}

// PayloadBucket is what dead-letter payloads need of the object store.
type PayloadBucket interface {
	Create(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...objstore.PutOption) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// DeadLetterPayloads moves dead-letter payloads that carry personal data
// (vendor answers with ID numbers and images, callbacks) out of the DLQ
// into the object store. A nil Store keeps them inline.
type DeadLetterPayloads struct {
	Store  PayloadBucket
	Prefix string // key prefix; "dlq/" when empty
}

// payloadRef is a stored-payload dead letter's value.
type payloadRef struct {
	Payload struct {
		StoreKey string `json:"store_key"`
		Size     int    `json:"size"`
		SHA256   string `json:"sha256"`
	} `json:"payload"`
}

// Apply returns dl, the dead letter built for src, with src's whole value
// stored under <prefix><topic>/<partition>/<offset> and replaced by a
// reference (key, size, SHA-256) in dl's value and HeaderDLQPayloadRef; a
// truncation header goes, the payload being whole. The key is the source
// position, so a retry after a crash finds the object written and yields
// the same dead letter. Without a Store, dl is returned as it is.
func (p DeadLetterPayloads) Apply(ctx context.Context, src, dl contract.Message) (contract.Message, error) {
	if p.Store == nil {
		return dl, nil
	}
	prefix := p.Prefix
	if prefix == "" {
		prefix = "dlq/"
	}
	key := prefix + src.Topic + "/" + strconv.Itoa(src.Partition) + "/" + strconv.FormatInt(src.Offset, 10)
	sum := sha256.Sum256(src.Value)
	hexSum := hex.EncodeToString(sum[:])
	err := p.Store.Create(ctx, key, bytes.NewReader(src.Value), int64(len(src.Value)), "application/octet-stream",
		map[string]string{"sha256": hexSum}, objstore.WithSHA256(hexSum))
	if err != nil && !errors.Is(err, objstore.ErrExists) {
		return contract.Message{}, fmt.Errorf("store the dead letter's payload: %w", err)
	}
	var ref payloadRef
	ref.Payload.StoreKey, ref.Payload.Size, ref.Payload.SHA256 = key, len(src.Value), hexSum
	v, err := json.Marshal(ref)
	if err != nil {
		return contract.Message{}, err
	}
	out := contract.Message{Key: dl.Key, Value: v}
	for _, h := range dl.Headers {
		if h.Key != HeaderDLQTruncated && h.Key != HeaderDLQPayloadRef {
			out.Headers = append(out.Headers, h)
		}
	}
	out.Headers = append(out.Headers, contract.Header{Key: HeaderDLQPayloadRef, Value: []byte(key)})
	return out, nil
}

// DeadLetterPayload returns a dead letter's payload: its value, or, for a
// reference, the stored object, checked against the SHA-256 the reference
// names (objstore.ErrChecksum when it differs).
func DeadLetterPayload(ctx context.Context, store PayloadBucket, dl contract.Message) ([]byte, error) {
	key := ""
	for _, h := range dl.Headers {
		if h.Key == HeaderDLQPayloadRef {
			key = string(h.Value)
		}
	}
	if key == "" {
		return dl.Value, nil
	}
	var ref payloadRef
	if err := json.Unmarshal(dl.Value, &ref); err != nil || ref.Payload.StoreKey != key {
		return nil, errors.New("dead letter: malformed payload reference")
	}
	if store == nil {
		return nil, errors.New("dead letter: the payload is in the object store, and none is configured")
	}
	r, err := store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("dead letter payload %s: %w", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, int64(ref.Payload.Size)+1))
	if err != nil {
		return nil, fmt.Errorf("dead letter payload %s: %w", key, err)
	}
	if sum := sha256.Sum256(b); len(b) != ref.Payload.Size || hex.EncodeToString(sum[:]) != ref.Payload.SHA256 {
		return nil, fmt.Errorf("dead letter payload %s: %w", key, objstore.ErrChecksum)
	}
	return b, nil
}
