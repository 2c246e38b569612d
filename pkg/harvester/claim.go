package harvester

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// oneShot says whether v's result call may answer only once (Megvii
// get_result): an intent precedes it, and its answer is stored before it is
// published whatever its size.
func oneShot(v contract.Vendor) bool { return v == contract.Megvii }

// message renders an answer for the raw topic (the claim check): an answer
// of InlineMax bytes or more, and every one-shot answer, is first stored
// under its content-derived key (a conditional write; an object already
// there holds the same bytes) with the message in its metadata, retrying
// until stored or shutdown; the message then carries the reference, and the
// bytes only when small. false when shutting down.
//
// The one-shot answer is stored so that its intent finds it (findStored)
// when the process dies before the message is published: the call is then
// not made again.
func (e *Engine) message(ctx context.Context, resp *contract.Response) (contract.Message, bool) {
	small := len(resp.Body) < e.cfg.InlineMax
	if e.cfg.Answers == nil || small && !oneShot(resp.Vendor) {
		return resp.Message(e.cfg.Source), true
	}
	ref := contract.RawBodyRef(resp.ID(), resp.Body)
	resp.Ref, resp.Inline = &ref, small
	m := resp.Message(e.cfg.Source)
	meta := contract.StoredMetadata(m)
	ct, _ := m.Header(contract.HeaderContentType)
	err := retry.Do(ctx, retry.Policy{Backoff: retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}, Wait: e.wait,
		OnFailure: func(_ int, err error, _ time.Duration) {
			e.m.bodyStoreErrors.Inc()
			e.log.Warn("storing a vendor answer failed; retrying", "vendor", string(resp.Vendor), "endpoint", resp.Endpoint, "error", err.Error())
		}}, func(int) error {
		// A write under way finishes even when ctx ends: only the waits stop.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		err := e.cfg.Answers.Create(sctx, ref.Key, bytes.NewReader(resp.Body), ref.Size, string(ct), meta, objstore.WithSHA256(ref.SHA256))
		if errors.Is(err, objstore.ErrExists) {
			return nil // the key names the bytes: the same answer is stored
		}
		return err
	})
	if err != nil {
		return contract.Message{}, false
	}
	published := "reference"
	if small {
		published = "inline"
	}
	e.m.bodiesStored.WithLabelValues(string(resp.Vendor), published).Inc()
	return m, true
}

// errFound stops a walk of the store at the first key.
var errFound = errors.New("found")

// findStored looks in the object store for the answer of the response
// ceID, stored but perhaps never published, and returns the message stored
// with it (by reference), or nil when there is none.
func (e *Engine) findStored(ctx context.Context, ceID string) (*contract.Message, error) {
	if e.cfg.Answers == nil {
		return nil, nil
	}
	// One key: the call was made once under this ce_id (its intent names the
	// attempt); the first is taken should there be more.
	var key string
	err := e.cfg.Answers.Iter(ctx, contract.RawBodyPrefix(ceID), func(k string) error {
		key = k
		return errFound
	})
	if key == "" {
		return nil, err
	}
	a, err := e.cfg.Answers.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	m, err := contract.MessageFromStored(key, a.Metadata)
	if err != nil {
		return nil, err
	}
	if id, _ := m.Header(contract.HeaderID); string(id) != ceID {
		return nil, errors.New("stored answer " + key + " carries another ce_id")
	}
	return &m, nil
}
