package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// ArchiveResponse archives one vendor response: media first, then the part.
// It returns an error only when ctx ended (store failures are retried).
// The steps: find the blobs and links in the body (slots), store each
// (storeSlots), replace them by their references (rewrite), read the facts.
func (a *Archiver) ArchiveResponse(ctx context.Context, ceID string, r contract.Response) (*Part, error) {
	if r.Vendor == contract.Megvii && r.Endpoint == contract.EndpointCallback {
		return a.archiveCallback(ceID, r), nil
	}
	found, perr := findSlots(r)
	durable := hasLinks(found.slots)
	if durable {
		// Links expire: the part is stored at once, and re-processing reuses
		// it rather than fetching again (and finding the links dead). An
		// answer without links is kept in memory only, its offset held until
		// its record is published: re-processing rebuilds it from its bytes,
		// to the same keys, and one write per answer is saved.
		if p, err := a.storedPart(ctx, r.Vendor, ceID); p != nil || err != nil {
			return p, err
		}
	}
	p := newPart(ceID, r)
	var err error
	if perr != nil {
		err = a.keepVerbatim(ctx, p, r, perr)
	} else {
		err = a.archiveSlots(ctx, p, r, found)
	}
	if err != nil {
		return nil, err
	}
	if durable {
		if err := a.Persist(ctx, p); err != nil {
			return nil, err
		}
	}
	a.m.responses.WithLabelValues(string(r.Vendor), endpointLabel(r.Endpoint)).Inc()
	a.keep(p)
	return p, nil
}

// slots are a body's blobs and links: for Baidu with the decoded answer
// they are rewritten in.
type slots struct {
	root  any // Baidu: the decoded answer, rewritten in place
	slots []slot
}

// findSlots finds the blobs and links of an answer; the error says why its
// body is not JSON.
func findSlots(r contract.Response) (slots, error) {
	if r.Vendor == contract.Megvii {
		// Megvii's blobs are all in the top-level images object: one
		// validating pass finds them, and the rest is never decoded.
		_, _, imgs, err := megvii.FindImages(r.Body)
		var out slots
		for _, e := range imgs {
			out.slots = append(out.slots, slot{kind: megviiKind(e.Name), dataURI: true, value: e.Value, start: e.Start, end: e.End})
		}
		return out, err
	}
	root, err := decodeJSON(r.Body)
	if err != nil {
		return slots{}, err
	}
	return slots{root: root, slots: collect(root)}, nil
}

// storedPart is the part stored for ceID by an earlier run, or nil.
func (a *Archiver) storedPart(ctx context.Context, v contract.Vendor, ceID string) (*Part, error) {
	b, err := a.getRetry(ctx, PartKey(v, ceID), 64<<20)
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	var p Part
	if json.Unmarshal(b, &p) != nil || p.ID != ceID {
		return nil, nil
	}
	a.m.existing.WithLabelValues("response").Inc()
	p.durable = true
	a.keep(&p)
	return &p, nil
}

// newPart is a response's part before its body and media are archived.
func newPart(ceID string, r contract.Response) *Part {
	return &Part{ID: ceID, Vendor: r.Vendor, VerificationID: r.VerificationID, Endpoint: r.Endpoint, Params: r.Params, HTTPStatus: r.HTTPStatus,
		FetchedAt: r.FetchedAt.UTC(), Deadline: r.Deadline.UTC(), WindowLeftSeconds: roundSeconds(r.WindowLeft()), ErrorClass: r.ErrorClass,
		Attempt: r.Attempt, ContentType: r.ContentType, Media: []contract.MediaRef{}}
}

// keepVerbatim stores a body that is not JSON (perr says why) as an object
// the part references.
func (a *Archiver) keepVerbatim(ctx context.Context, p *Part, r contract.Response, perr error) error {
	if len(r.Body) == 0 {
		p.Problem = "empty body"
		return nil
	}
	sum := sha256.Sum256(r.Body)
	ref := &contract.ObjectRef{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(r.Body)), ContentType: "application/octet-stream"}
	ref.Key = mediaKey(r.Vendor, r.FetchedAt, ref.SHA256, "")
	p.BodyObject, p.Problem = ref, "body is not JSON: "+perr.Error()
	return a.putOnce(ctx, ref.Key, "raw_response", func() (io.Reader, int64, error) { return bytes.NewReader(r.Body), int64(len(r.Body)), nil },
		ref.ContentType, map[string]string{"sha256": ref.SHA256, "vendor": string(r.Vendor)})
}

// archiveSlots stores the answer's media, rewrites its body with their
// references and reads its facts.
func (a *Archiver) archiveSlots(ctx context.Context, p *Part, r contract.Response, found slots) error {
	refs, err := a.storeSlots(ctx, r, found.slots)
	if err != nil {
		return err
	}
	for i, s := range found.slots {
		refs[i].Attempt = s.attempt
		p.Media = append(p.Media, refs[i])
	}
	if p.Body, err = rewrite(r, found, refs); err != nil {
		return err
	}
	if r.ErrorClass == "" {
		p.Facts = facts(r.Vendor, r.Endpoint, r.Body, p.Body)
	}
	return nil
}

// storeSlots stores every blob and link, MediaParallel at once, and
// returns their references in slot order.
func (a *Archiver) storeSlots(ctx context.Context, r contract.Response, ss []slot) ([]contract.MediaRef, error) {
	refs := make([]contract.MediaRef, len(ss))
	var g errgroup.Group
	g.SetLimit(a.cfg.MediaParallel)
	for i, s := range ss {
		g.Go(func() error {
			return a.retryLocal(ctx, r.Vendor, s.kind, func() (err error) {
				if s.url {
					refs[i], err = a.storeURL(ctx, r.Vendor, r.FetchedAt, s.kind, r.Endpoint, s.value)
				} else {
					refs[i], err = a.storeBlob(ctx, r.Vendor, r.FetchedAt, blob{kind: s.kind, dataURI: s.dataURI, value: s.value, endpoint: r.Endpoint})
				}
				return err
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return refs, nil
}

// rewrite is the body with each stored blob, and each link, replaced by
// its reference (a link keeps its source URL beside it, in the evidence
// only: links expire, and records never carry them).
func rewrite(r contract.Response, found slots, refs []contract.MediaRef) ([]byte, error) {
	reps := make([][]byte, len(found.slots)) // Megvii: replacements of the image literals
	for i, s := range found.slots {
		if refs[i].Status != contract.MediaStored && !s.url {
			continue
		}
		rep := map[string]any{"faceharvest_object": refs[i]}
		if s.url {
			rep["source_url"] = s.value
		} else if s.dataURI {
			if c := strings.IndexByte(s.value, ','); c >= 0 {
				rep["data_uri_prefix"] = s.value[:c+1]
			}
		}
		if s.set != nil {
			s.set(rep)
		} else {
			reps[i], _ = json.Marshal(rep) // strings and a MediaRef: cannot fail
		}
	}
	if r.Vendor == contract.Megvii {
		return splice(r.Body, found.slots, reps), nil
	}
	return json.Marshal(found.root)
}

// archiveCallback keeps a signed Megvii callback as a part: its data
// verbatim (a callback carries no images), and what it says, as facts.
func (a *Archiver) archiveCallback(ceID string, r contract.Response) *Part {
	p := &Part{ID: ceID, Vendor: r.Vendor, VerificationID: r.VerificationID, Endpoint: r.Endpoint, Params: r.Params, HTTPStatus: r.HTTPStatus,
		FetchedAt: r.FetchedAt.UTC(), Deadline: r.Deadline.UTC(), WindowLeftSeconds: roundSeconds(r.WindowLeft()), ErrorClass: r.ErrorClass,
		Attempt: r.Attempt, ContentType: r.ContentType, Media: []contract.MediaRef{}, Data: string(r.Body), Sign: r.Sign, SignedBy: r.SignedBy}
	if res, err := megvii.ParseResult(r.Body); err != nil {
		p.Problem = "callback data is not a result object: " + err.Error()
	} else {
		p.Facts = megviiFacts(res)
	}
	a.m.responses.WithLabelValues(string(r.Vendor), endpointLabel(r.Endpoint)).Inc()
	a.keep(p)
	return p
}

// retryLocal runs store until it succeeds or ctx ends. Storing a media item
// fails, when ctx has not ended, only for a fault of this machine (a spool
// file that cannot be created or read: a missing or read-only directory, no
// descriptors left; vendors' and the store's faults are answers or retried
// inside): it is retried with back-off, counted, logged (the first and every
// tenth try) and fails readiness while it lasts. Skipping it would leave
// the verification's write-once evidence without the item for good.
func (a *Archiver) retryLocal(ctx context.Context, v contract.Vendor, kind string, store func() error) error {
	waiting := false
	defer func() {
		if waiting {
			a.spoolMu.Lock()
			a.spoolWaiting--
			a.m.spoolFailing.Set(float64(a.spoolWaiting))
			a.spoolMu.Unlock()
		}
	}()
	return retry.Do(ctx, a.retryPolicy(func(try int, err error) {
		a.m.spoolFailures.Inc()
		a.spoolMu.Lock()
		if !waiting {
			waiting = true
			a.spoolWaiting++
			a.m.spoolFailing.Set(float64(a.spoolWaiting))
		}
		a.spoolErr = err
		a.spoolMu.Unlock()
		if try == 1 || try%10 == 0 {
			a.log.Warn("media item cannot be stored on this machine; retrying", "vendor", string(v), "kind", kind, "try", try, "error", err.Error())
		}
	}), func(int) error {
		err := store()
		if err != nil && ctx.Err() != nil {
			return retry.Permanent(err)
		}
		return err
	})
}

// splice replaces the byte ranges of slots that have a replacement; slots
// are in body order and do not overlap.
func splice(body []byte, slots []slot, reps [][]byte) []byte {
	out := make([]byte, 0, 4096)
	at := 0
	for i, s := range slots {
		if reps[i] == nil {
			continue
		}
		out = append(out, body[at:s.start]...)
		out = append(out, reps[i]...)
		at = s.end
	}
	return append(out, body[at:]...)
}

func hasLinks(slots []slot) bool {
	for _, s := range slots {
		if s.url {
			return true
		}
	}
	return false
}

func endpointLabel(e string) string {
	switch e {
	case "get_result", "callback", "result/getall", "result/detail", "result/media/query", "result/simple", "result/stat":
		return e
	}
	return "other"
}

func roundSeconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}
