package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// Part is one archived vendor response: its envelope, its body with every
// blob replaced by an object reference, its media, and the facts the record
// is built from. It is stored under PartKey and is part of the evidence
// document.
type Part struct {
	ID                string            `json:"ce_id"`
	Vendor            contract.Vendor   `json:"vendor"`
	VerificationID    string            `json:"verification_id"`
	Endpoint          string            `json:"endpoint"`
	Params            map[string]string `json:"params,omitempty"`
	HTTPStatus        int               `json:"http_status"`
	FetchedAt         time.Time         `json:"fetched_at"`
	Deadline          time.Time         `json:"deadline"`
	WindowLeftSeconds float64           `json:"window_left_seconds"`
	ErrorClass        string            `json:"error_class,omitempty"`
	Attempt           int               `json:"attempt"`
	ContentType       string            `json:"content_type,omitempty"`
	// Body is the response as JSON, blobs replaced by
	// {"faceharvest_object": <media reference>}.
	Body json.RawMessage `json:"body,omitempty"`
	// BodyObject is the verbatim body, stored as an object, when it is not
	// JSON (an HTML error page, a truncated answer).
	BodyObject *contract.ObjectRef `json:"body_object,omitempty"`
	// Data, Sign and SignedBy are a Megvii callback's (endpoint callback):
	// the data string exactly as signed, so sha1(secret + data) can be
	// checked again from the evidence document alone; its sign; and the
	// fingerprint of the secret that verified it at ingest.
	Data     string              `json:"data,omitempty"`
	Sign     string              `json:"sign,omitempty"`
	SignedBy string              `json:"signed_by,omitempty"`
	Problem  string              `json:"problem,omitempty"`
	Media    []contract.MediaRef `json:"media"`
	Facts    *Facts              `json:"facts,omitempty"`
	// durable: the part is in the store, not only in memory.
	durable bool
}

// Durable reports whether the part is stored. A part that is not lives only
// in this process's memory: its raw offset must stay uncommitted until the
// verification's record is published, or until Persist.
func (p *Part) Durable() bool { return p.durable }

// PartKey is where a response's part is stored: derived from its ce_id alone,
// so a terminal's list of ce_ids finds them after a restart.
func PartKey(v contract.Vendor, ceID string) string {
	p := ceID
	if len(p) > 2 {
		p = ceID[:2] + "/" + ceID
	}
	return string(v) + "/responses/" + p + ".json"
}

// EvidenceKey is where a verification's evidence document is stored: beside
// its media, under the vendor and the day its harvest ended (day).
func EvidenceKey(v contract.Vendor, day time.Time, id string) string {
	return string(v) + "/" + day.UTC().Format("2006/01/02") + "/evidence/" + safeName(id) + ".json"
}

// safeName keeps an id readable in a key; ids with other characters get a
// hash suffix so two ids never share a key.
func safeName(id string) string {
	var b strings.Builder
	changed := false
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
			changed = true
		}
		if b.Len() > 120 {
			changed = true
			break
		}
	}
	if changed {
		s := sha256.Sum256([]byte(id))
		b.WriteString("-" + hex.EncodeToString(s[:6]))
	}
	return b.String()
}

// Persist stores a part (under PartKey), making it durable.
func (a *Archiver) Persist(ctx context.Context, p *Part) error {
	if p.durable {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := a.putOnce(ctx, PartKey(p.Vendor, p.ID), "response", func() (io.Reader, int64, error) { return bytes.NewReader(b), int64(len(b)), nil },
		contract.ContentTypeJSON, map[string]string{"vendor": string(p.Vendor), "ce-id": p.ID}); err != nil {
		return err
	}
	p.durable = true
	return nil
}
