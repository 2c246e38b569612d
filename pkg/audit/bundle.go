package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ledger"
)

// Exporter builds a verification's evidence bundle (ledger.Export), the
// one `faceharvest export` writes and the audit page offers, and checks it
// (ledger.VerifyBundle) before anyone may hand it over.
type Exporter struct {
	// Log reads the evidence log and the verification's objects.
	Log ledger.Reader
	// Key is the log's public key: the bundle is checked with it.
	Key note.Verifier
	// Trail, when set, returns the verification's audit trail (ReadTrail)
	// for the bundle's audit-trail.json.
	Trail func(ctx context.Context, v contract.Vendor, id string) ([]byte, error)
}

// Spool holds a bundle while it is built and checked: a temporary file.
type Spool interface {
	io.Writer
	io.ReaderAt
}

// Bundle is a built bundle that verified.
type Bundle struct {
	// Size is the bundle's size in bytes.
	Size int64
	// Report says what the check proved.
	Report ledger.BundleReport
	// Event is the export's audit event but for who exported it (Viewer,
	// Role, RequestID, RemoteAddr): the caller records it before the bundle
	// leaves its hands, and hands nothing over when it cannot.
	Event contract.AuditEvent
}

// ErrTrail wraps a failure to read the audit trail.
var ErrTrail = errors.New("reading the audit trail")

// Build writes the bundle of v:id, exported by by at at, to spool and
// checks it. Errors wrap ledger.ErrNotIndexed (no index entry),
// ledger.ErrNotInLog (not yet a leaf of the log), ErrTrail, or say why the
// bundle does not verify.
func (x Exporter) Build(ctx context.Context, v contract.Vendor, id, by string, at time.Time, spool Spool) (Bundle, error) {
	var extra map[string][]byte
	if x.Trail != nil {
		events, err := x.Trail(ctx, v, id)
		if err != nil {
			return Bundle{}, fmt.Errorf("%w: %w", ErrTrail, err)
		}
		extra = map[string][]byte{ledger.BundleAuditTrail: events}
	}
	cw := &countingWriter{w: spool}
	e, err := ledger.Export(ctx, x.Log, x.Key, v, id, by, at, extra, cw)
	if err != nil {
		return Bundle{}, err
	}
	rep, err := ledger.VerifyBundle(spool, cw.n, x.Key)
	if err != nil {
		return Bundle{}, fmt.Errorf("the bundle does not verify: %w", err)
	}
	ev := contract.AuditEvent{At: at, Action: contract.AuditExport, Vendor: v, VerificationID: id, BizNo: e.BizNo, Record: true, IdentityUnmasked: true}
	for _, o := range rep.Objects {
		ev.LinkedKeys = append(ev.LinkedKeys, o.Key)
	}
	return Bundle{Size: cw.n, Report: rep, Event: ev}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// ReadTrail reads every event on topic about verification v:id (a view of
// it, or a search whose answer listed it), oldest first, as JSON: a
// bundle's audit trail. It reads the whole topic.
func ReadTrail(ctx context.Context, c bus.Cluster, topic string, v contract.Vendor, id string) ([]byte, error) {
	parts, err := bus.PartitionCount(ctx, c, topic)
	if err != nil {
		return nil, err
	}
	key := contract.Key(v, id)
	events := []contract.AuditEvent{}
	for p := range parts {
		var bad error
		if err := bus.ReadRange(ctx, c, topic, p, -1, func(m contract.Message) {
			var e contract.AuditEvent
			if err := json.Unmarshal(m.Value, &e); err != nil {
				bad = fmt.Errorf("%s/%d@%d: %w", topic, p, m.Offset, err)
				return
			}
			if (e.Vendor == v && e.VerificationID == id) || slices.Contains(e.Verifications, key) {
				events = append(events, e)
			}
		}); err != nil {
			return nil, err
		}
		if bad != nil {
			return nil, bad
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.Before(events[j].At) })
	return json.MarshalIndent(events, "", "  ")
}
