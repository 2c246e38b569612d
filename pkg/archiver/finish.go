package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// Evidence is the document stored per verification.
type Evidence struct {
	Schema         string          `json:"schema"`
	Vendor         contract.Vendor `json:"vendor"`
	VerificationID string          `json:"verification_id"`
	Terminal       json.RawMessage `json:"terminal"`
	Responses      []*Part         `json:"responses"`
	Missing        []string        `json:"missing_responses,omitempty"`
}

// EvidenceSchema names the evidence document's version.
const EvidenceSchema = "faceharvest.evidence.v1"

// Finish builds a verification's evidence document and record from its
// terminal envelope. The record references only stored objects. It returns
// an error only when ctx ended.
func (a *Archiver) Finish(ctx context.Context, t contract.Terminal, rawTerminal []byte) (contract.Record, error) {
	f, err := a.finish(ctx, t, rawTerminal)
	return f.rec, err
}

// final is a verification's record as it is published: its exact bytes,
// which are the stored record's.
type final struct {
	rec   contract.Record
	value []byte
}

// errRecord is a record that cannot be rendered (dead-lettered, not
// retried).
type errRecord struct{ err error }

func (e errRecord) Error() string { return "record: " + e.err.Error() }

// finish makes a verification's record final in three idempotent writes
// before it is published: the evidence document, the record beside it, and
// the index entry naming both (IndexKey). A verification that has an index
// entry already gets its stored record, whatever this terminal says: a
// terminal published again after a crash, or a replay after the harvester
// forgot the verification (whose evidence is kept beside the first's). A
// crash between any two writes leaves the terminal uncommitted, and its
// re-processing finds the earlier writes and completes the same record.
func (a *Archiver) finish(ctx context.Context, t contract.Terminal, rawTerminal []byte) (final, error) {
	idx, indexed, err := a.readIndex(ctx, t.Vendor, t.VerificationID)
	if err != nil {
		return final{}, err
	}
	ev := Evidence{Schema: EvidenceSchema, Vendor: t.Vendor, VerificationID: t.VerificationID, Terminal: json.RawMessage(rawTerminal), Responses: []*Part{}}
	for _, id := range t.Responses {
		p := a.take(id)
		if p == nil {
			b, err := a.getRetry(ctx, PartKey(t.Vendor, id), 64<<20)
			switch {
			case errors.Is(err, objstore.ErrNotFound):
				ev.Missing = append(ev.Missing, id)
				continue
			case err != nil:
				return final{}, err
			}
			p = &Part{}
			if err := json.Unmarshal(b, p); err != nil {
				ev.Missing = append(ev.Missing, id)
				continue
			}
			p.durable = true
		}
		ev.Responses = append(ev.Responses, p)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return final{}, err
	}
	sum := sha256.Sum256(body)
	archivedAt := a.cfg.Now().UTC().Truncate(time.Millisecond)
	meta := map[string]string{"sha256": hex.EncodeToString(sum[:]), "archived-at": archivedAt.Format(time.RFC3339Nano), "vendor": string(t.Vendor)}
	put := func(key string) (bool, error) {
		_, existed, err := a.putOnceAttrs(ctx, key, "evidence", func() (io.Reader, int64, error) { return bytes.NewReader(body), int64(len(body)), nil },
			contract.ContentTypeJSON, meta)
		return existed, err
	}
	if indexed {
		if !t.DecidedAt.Equal(idx.DecidedAt) {
			// Another harvest of a verification that has its record: its
			// evidence is kept, its record is the first one.
			key := ReplayEvidenceKey(idx.Evidence.Key, t.DecidedAt)
			if _, err := put(key); err != nil {
				return final{}, err
			}
			a.m.replays.WithLabelValues(string(t.Vendor)).Inc()
			a.log.Warn("verification harvested again after its record was published; publishing the stored record again",
				"vendor", string(t.Vendor), "outcome", t.Outcome, "evidence", key, "record", idx.Record.Key)
		}
		return a.stored(ctx, idx)
	}
	// The key depends on the terminal alone (not on which answers could be
	// gathered), so a terminal published again finds the document.
	ref := contract.ObjectRef{Key: EvidenceKey(t.Vendor, t.DecidedAt, t.VerificationID), SHA256: meta["sha256"], Size: int64(len(body)), ContentType: contract.ContentTypeJSON}
	existed, err := put(ref.Key)
	if err != nil {
		return final{}, err
	}
	var rec contract.Record
	if existed {
		// Archived before (a terminal published again after a crash, or
		// re-read): the record is rebuilt from the stored document, which
		// holds every answer, even those no longer in memory, so it comes
		// out identical.
		if rec, err = a.fromEvidence(ctx, ref.Key); err != nil {
			return final{}, err
		}
	} else {
		rec = buildRecord(t, ev, ref, archivedAt, !a.cfg.Unmask)
	}
	return a.index(ctx, t, rec)
}

// Message renders a final record for the results topic: its stored bytes
// under its stable ce_id.
func (f final) Message(source string) contract.Message {
	return RecordEnvelope(f.rec, f.value, source).Message()
}
