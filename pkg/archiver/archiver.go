// Package archiver turns what the harvester fetched into what users keep:
// every image and video in the object store under content-addressed keys, an
// evidence document per verification (the vendors' responses with each blob
// replaced by its object reference), and one normalized record per
// verification on the results topic, published only once everything it
// references exists in the store.
//
// Each vendor response is archived as it arrives: its media are stored, then
// the response itself (blobs replaced by references, plus the facts the
// record needs) is stored as a "part" under a key derived from its ce_id, and
// only then is its offset done. A verification's terminal envelope lists the
// ce_ids of its responses; the archiver gathers those parts (from memory, or
// from the store after a restart or a rebalance), stores the evidence
// document, and publishes the record. Every write is to a deterministic key
// and skipped when the key exists, so re-processing after a crash writes
// nothing new and publishes an identical record with the same ce_id.
package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// Config configures an Archiver.
type Config struct {
	Store objstore.Bucket
	// HTTP downloads the vendors' media links: NewMediaClient's (the
	// strictest policy when nil).
	HTTP *http.Client
	// SpoolDir holds downloads while they are hashed and uploaded.
	SpoolDir string
	// MaxImageBytes caps an embedded image (20 MiB); MaxMediaBytes a
	// downloaded one (1 GiB).
	MaxImageBytes, MaxMediaBytes int64
	// DownloadTries (3) and DownloadTimeout (10 min) bound each link.
	DownloadTries   int
	DownloadTimeout time.Duration
	// MediaParallel is how many media items of one response are fetched and
	// stored at once (4).
	MediaParallel int
	// RetryMin and RetryMax bound the back-off of store retries (200 ms, 10 s).
	RetryMin, RetryMax time.Duration
	// Unmask publishes full names and ID numbers in records (default: masked).
	Unmask bool
	// Ledger, when set, receives each final index entry as a leaf of the
	// evidence log (contract.LedgerLeaf on the leaves topic).
	Ledger  LeafWriter
	Source  string // ce_source of records ("/archiver")
	Now     func() time.Time
	Metrics *Metrics
	Logger  *slog.Logger
}

// Archiver archives responses and builds records. It is safe for concurrent
// use by goroutines working on different verifications.
type Archiver struct {
	cfg Config
	m   *Metrics
	log *slog.Logger

	mu    sync.Mutex
	parts map[string]*Part // by ce_id, until the terminal that lists it

	spoolMu      sync.Mutex
	spoolWaiting int   // media items whose last try failed on this machine
	spoolErr     error // the latest such failure
}

// New returns an Archiver.
func New(cfg Config) (*Archiver, error) {
	if cfg.Store == nil {
		return nil, errors.New("archiver: no store")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = NewMediaClient(MediaPolicy{})
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	def := DefaultConfig()
	if cfg.MaxImageBytes <= 0 {
		cfg.MaxImageBytes = def.MaxImageBytes
	}
	if cfg.MaxMediaBytes <= 0 {
		cfg.MaxMediaBytes = def.MaxMediaBytes
	}
	if cfg.DownloadTries <= 0 {
		cfg.DownloadTries = def.DownloadTries
	}
	if cfg.DownloadTimeout <= 0 {
		cfg.DownloadTimeout = def.DownloadTimeout
	}
	if cfg.MediaParallel <= 0 {
		cfg.MediaParallel = def.MediaParallel
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = def.RetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(def.RetryMax, cfg.RetryMin)
	}
	if cfg.Source == "" {
		cfg.Source = def.Source
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Archiver{cfg: cfg, m: cfg.Metrics, log: cfg.Logger, parts: map[string]*Part{}}, nil
}

// retryBackoff is the back-off of every store, spool, download and
// publish retry: doubling from RetryMin to RetryMax, jittered.
func (a *Archiver) retryBackoff() retry.Backoff {
	return retry.Backoff{Min: a.cfg.RetryMin, Max: a.cfg.RetryMax, Jitter: true}
}

// retryPolicy is retryBackoff with onFailure counting and logging.
func (a *Archiver) retryPolicy(onFailure func(try int, err error)) retry.Policy {
	return retry.Policy{Backoff: a.retryBackoff(), OnFailure: func(try int, err error, _ time.Duration) { onFailure(try, err) }}
}

// storeFailed counts a failed store operation, marks the store down and
// logs the first and every tenth try (kind "" logs nothing).
func (a *Archiver) storeFailed(kind string, down bool) func(try int, err error) {
	return func(try int, err error) {
		a.m.storeRetry.Inc()
		if down {
			a.m.storeDown.Set(1)
		}
		if kind != "" && (try == 1 || try%10 == 0) {
			a.log.Warn("store operation failed; retrying", "kind", kind, "try", try, "error", err.Error())
		}
	}
}

// unlessDone returns err for another try, or ctx's error, final, once ctx
// ended.
func unlessDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return retry.Permanent(ctx.Err())
	}
	return err
}

// putOnce stores an object unless its key exists, retrying store failures
// until ctx ends: an outage delays archiving, it never skips anything.
// putOnceAttrs also returns the existing object's attributes when there was
// one.
func (a *Archiver) putOnce(ctx context.Context, key, kind string, open func() (io.Reader, int64, error), ct string, meta map[string]string) error {
	_, _, err := a.putOnceAttrs(ctx, key, kind, open, ct, meta)
	return err
}

func (a *Archiver) putOnceAttrs(ctx context.Context, key, kind string, open func() (io.Reader, int64, error), ct string, meta map[string]string) (objstore.Attrs, bool, error) {
	return a.putOnceWith(ctx, key, kind, open, ct, meta, a.storeFailed(kind, true))
}

// putOnceWith is putOnceAttrs with onFailure called on each failed try.
func (a *Archiver) putOnceWith(ctx context.Context, key, kind string, open func() (io.Reader, int64, error), ct string, meta map[string]string, onFailure func(try int, err error)) (objstore.Attrs, bool, error) {
	var opts []objstore.PutOption
	if sum := meta["sha256"]; sum != "" {
		// The store checks the content address itself and refuses a body
		// that differs from it (retried like any store failure).
		opts = append(opts, objstore.WithSHA256(sum))
	}
	var attrs objstore.Attrs
	var existed bool
	err := retry.Do(ctx, a.retryPolicy(onFailure), func(int) error {
		body, n, err := open()
		if err != nil {
			return retry.Permanent(err)
		}
		// One conditional write: the store refuses to replace what exists.
		err = a.cfg.Store.Create(ctx, key, body, n, ct, meta, opts...)
		if err == nil {
			a.m.objects.WithLabelValues(kind).Inc()
			a.m.bytes.WithLabelValues(kind).Add(float64(n))
			a.m.storeDown.Set(0)
			return nil
		}
		if errors.Is(err, objstore.ErrExists) {
			if attrs, err = a.cfg.Store.Attributes(ctx, key); err == nil {
				a.m.existing.WithLabelValues(kind).Inc()
				a.m.storeDown.Set(0)
				existed = true
				return nil
			}
		}
		return unlessDone(ctx, err)
	})
	if err != nil {
		return objstore.Attrs{}, false, err
	}
	return attrs, existed, nil
}

// getRetry reads an object, retrying store failures until ctx ends; a
// missing object is ErrNotFound at once.
func (a *Archiver) getRetry(ctx context.Context, key string, limit int64) ([]byte, error) {
	var b []byte
	err := retry.Do(ctx, a.retryPolicy(a.storeFailed("", true)), func(int) error {
		rc, err := a.cfg.Store.Get(ctx, key)
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(rc, limit))
			rc.Close()
			if err == nil {
				a.m.storeDown.Set(0)
				return nil
			}
		}
		if errors.Is(err, objstore.ErrNotFound) {
			return retry.Permanent(err)
		}
		return unlessDone(ctx, err)
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// maxAnswerBytes bounds a vendor answer read by reference: Megvii's with
// every image is about 20 MiB.
const maxAnswerBytes = 256 << 20

// loadAnswer gives r the bytes of its answer: read from the store when the
// message carried only their reference, and checked against the reference
// (size and SHA-256) wherever they came from; a message without a
// reference (written before the claim check) is taken as it is. bad says
// why the bytes cannot be used (dead-lettered: another try reads the same);
// err is ctx's end, since a missing object is waited for like a store
// outage: the harvester stored it before it published its reference, so it
// is missing only from a store that is not the harvester's (a wrong bucket)
// or not yet restored, and archiving without it would lose the answer.
func (a *Archiver) loadAnswer(ctx context.Context, r *contract.Response) (bad, err error) {
	if r.Ref == nil {
		a.m.rawAnswers.WithLabelValues("inline").Inc()
		return nil, nil
	}
	if !r.ByReference() {
		if bad := r.Ref.Check(r.Body); bad != nil {
			a.m.rawAnswerErrors.WithLabelValues("mismatch").Inc()
			return bad, nil
		}
		a.m.rawAnswers.WithLabelValues("inline").Inc()
		return nil, nil
	}
	if r.Ref.Size > maxAnswerBytes {
		a.m.rawAnswerErrors.WithLabelValues("too_large").Inc()
		return fmt.Errorf("answer %s of %d bytes is above the %d read by reference", r.Ref.Key, r.Ref.Size, maxAnswerBytes), nil
	}
	var b []byte
	err = retry.Do(ctx, a.retryPolicy(func(try int, err error) {
		if errors.Is(err, objstore.ErrNotFound) {
			a.m.rawAnswerErrors.WithLabelValues("missing").Inc()
			if try == 1 || try%10 == 0 {
				a.log.Error("a raw answer's reference names no object in the store (is this the harvester's bucket?); retrying", "key", r.Ref.Key, "try", try)
			}
			return
		}
		a.storeFailed("raw_answer", true)(try, err)
	}), func(int) error {
		rc, err := a.cfg.Store.Get(ctx, r.Ref.Key)
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(rc, r.Ref.Size+1))
			rc.Close()
			if err == nil {
				a.m.storeDown.Set(0)
				return nil
			}
		}
		return unlessDone(ctx, err)
	})
	if err != nil {
		return nil, err
	}
	if bad := r.Ref.Check(b); bad != nil {
		a.m.rawAnswerErrors.WithLabelValues("mismatch").Inc()
		return bad, nil
	}
	a.m.rawAnswers.WithLabelValues("store").Inc()
	r.Body = b
	return nil, nil
}

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

// ArchiveResponse archives one vendor response: media first, then the part.
// It returns an error only when ctx ended (store failures are retried).
func (a *Archiver) ArchiveResponse(ctx context.Context, ceID string, r contract.Response) (*Part, error) {
	key := PartKey(r.Vendor, ceID)
	var (
		root  any // Baidu: the decoded answer, rewritten in place
		slots []slot
		perr  error
	)
	if r.Vendor == contract.Megvii {
		// Megvii's blobs are all in the top-level images object: one
		// validating pass finds them, and the rest is never decoded.
		var imgs []megvii.ImageEntry
		_, _, imgs, perr = megvii.FindImages(r.Body)
		for _, e := range imgs {
			slots = append(slots, slot{kind: megviiKind(e.Name), dataURI: true, value: e.Value, start: e.Start, end: e.End})
		}
	} else if root, perr = decodeJSON(r.Body); perr == nil {
		slots = collect(root)
	}
	if r.Vendor == contract.Megvii && r.Endpoint == contract.EndpointCallback {
		return a.archiveCallback(ceID, r), nil
	}
	durable := hasLinks(slots)
	if durable {
		// Links expire: the part is stored at once, and re-processing reuses
		// it rather than fetching again (and finding the links dead). An
		// answer without links is kept in memory only, its offset held until
		// its record is published: re-processing rebuilds it from its bytes,
		// to the same keys, and one write per answer is saved.
		if b, err := a.getRetry(ctx, key, 64<<20); err == nil {
			var p Part
			if json.Unmarshal(b, &p) == nil && p.ID == ceID {
				a.m.existing.WithLabelValues("response").Inc()
				p.durable = true
				a.keep(&p)
				return &p, nil
			}
		} else if !errors.Is(err, objstore.ErrNotFound) {
			return nil, err
		}
	}
	p := &Part{ID: ceID, Vendor: r.Vendor, VerificationID: r.VerificationID, Endpoint: r.Endpoint, Params: r.Params, HTTPStatus: r.HTTPStatus,
		FetchedAt: r.FetchedAt.UTC(), Deadline: r.Deadline.UTC(), WindowLeftSeconds: roundSeconds(r.WindowLeft()), ErrorClass: r.ErrorClass,
		Attempt: r.Attempt, ContentType: r.ContentType, Media: []contract.MediaRef{}}
	day := r.FetchedAt
	if perr != nil {
		sum := sha256.Sum256(r.Body)
		ref := &contract.ObjectRef{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(r.Body)), ContentType: "application/octet-stream"}
		ref.Key = mediaKey(r.Vendor, day, ref.SHA256, "")
		p.BodyObject, p.Problem = ref, "body is not JSON: "+perr.Error()
		if len(r.Body) > 0 {
			if err := a.putOnce(ctx, ref.Key, "raw_response", func() (io.Reader, int64, error) { return bytes.NewReader(r.Body), int64(len(r.Body)), nil },
				ref.ContentType, map[string]string{"sha256": ref.SHA256, "vendor": string(r.Vendor)}); err != nil {
				return nil, err
			}
		} else {
			p.BodyObject = nil
			p.Problem = "empty body"
		}
	} else {
		reps := make([][]byte, len(slots)) // Megvii: replacements of the image literals
		refs := make([]contract.MediaRef, len(slots))
		errs := make([]error, len(slots))
		sem := make(chan struct{}, a.cfg.MediaParallel)
		var wg sync.WaitGroup
		for i, s := range slots {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				errs[i] = a.retryLocal(ctx, r.Vendor, s.kind, func() (err error) {
					if s.url {
						refs[i], err = a.storeURL(ctx, r.Vendor, day, s.kind, r.Endpoint, s.value)
					} else {
						refs[i], err = a.storeBlob(ctx, r.Vendor, day, blob{kind: s.kind, dataURI: s.dataURI, value: s.value, endpoint: r.Endpoint})
					}
					return err
				})
			}()
		}
		wg.Wait()
		for i, s := range slots {
			if errs[i] != nil {
				return nil, errs[i]
			}
			refs[i].Attempt = s.attempt
			p.Media = append(p.Media, refs[i])
			if refs[i].Status == contract.MediaStored || s.url {
				rep := map[string]any{"faceharvest_object": refs[i]}
				if s.url {
					rep["source_url"] = s.value // evidence only: links expire, and records never carry them
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
		}
		var (
			b   []byte
			err error
		)
		if r.Vendor == contract.Megvii {
			b = splice(r.Body, slots, reps)
		} else if b, err = json.Marshal(root); err != nil {
			return nil, err
		}
		p.Body = b
		if r.ErrorClass == "" {
			p.Facts = facts(r.Vendor, r.Endpoint, r.Body, b)
		}
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

// Ready fails while media items wait for the spool directory to work again.
func (a *Archiver) Ready(context.Context) error {
	a.spoolMu.Lock()
	defer a.spoolMu.Unlock()
	if a.spoolWaiting > 0 {
		return fmt.Errorf("media items waiting for the spool directory: %d; last failure: %v", a.spoolWaiting, a.spoolErr)
	}
	return nil
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

// keep holds a part in memory for its terminal. Durable parts the terminal
// never claims (a harvester that published a response twice) are evicted
// beyond a bound; parts only in memory never are (their offsets are held).
func (a *Archiver) keep(p *Part) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.parts) >= 100000 {
		for k, q := range a.parts { // arbitrary eviction: the store has them
			if q.durable {
				delete(a.parts, k)
			}
			if len(a.parts) < 90000 {
				break
			}
		}
	}
	a.parts[p.ID] = p
}

// forget drops a part from memory unless a newer copy replaced it.
func (a *Archiver) forget(p *Part) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.parts[p.ID] == p {
		delete(a.parts, p.ID)
	}
}

func (a *Archiver) take(id string) *Part {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.parts[id]
	delete(a.parts, id)
	return p
}

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
