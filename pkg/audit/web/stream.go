package web

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// media streams the n-th media object the verification's record lists
// (the record's own, then each attempt's), from the store through this
// server: the browser never gets a link to the store. An ID-card image
// (contract.IdentityMedia) is identity data: for the identity role only,
// recorded as identity_unmasked.
func (s *Server) media(w http.ResponseWriter, r *http.Request, p Principal) {
	ver, ok := s.find(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	items := mediaOf(ver.Record)
	if err != nil || n < 0 || n >= len(items) || items[n].Status != contract.MediaStored || items[n].Key == "" {
		s.fail(w, r, http.StatusNotFound, "This verification has no such stored media object.")
		return
	}
	m := items[n]
	identity := contract.IdentityMedia(m.Kind)
	if identity && !s.identityRole(w, r, p, "Your role does not allow seeing ID-card images: they show the unmasked identity.") {
		return
	}
	e := event(r, p, contract.AuditMedia)
	e.Vendor, e.VerificationID, e.BizNo, e.ObjectKey, e.MediaKind = ver.Record.Vendor, ver.Record.VerificationID, ver.Record.BizNo, m.Key, m.Kind
	e.IdentityUnmasked = identity
	ct := m.ContentType
	kind := "image"
	switch {
	case strings.HasPrefix(ct, "image/"):
	case strings.HasPrefix(ct, "video/"):
		kind = "video"
	default:
		ct, kind = "application/octet-stream", "other"
	}
	s.stream(w, r, ver, m.Key, ct, kind, "", e)
}

// evidence streams the evidence document (which holds the unmasked
// identity): for the identity role only.
func (s *Server) evidence(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.identityRole(w, r, p, "Your role does not allow reading evidence documents.") {
		return
	}
	ver, ok := s.find(w, r)
	if !ok {
		return
	}
	key := ver.Index.Evidence.Key
	if key == "" && ver.Record.Evidence != nil {
		key = ver.Record.Evidence.Key
	}
	if key == "" {
		s.fail(w, r, http.StatusNotFound, "This verification has no evidence document.")
		return
	}
	e := event(r, p, contract.AuditEvidence)
	e.Vendor, e.VerificationID, e.BizNo, e.ObjectKey, e.IdentityUnmasked = ver.Record.Vendor, ver.Record.VerificationID, ver.Record.BizNo, key, true
	s.stream(w, r, ver, key, "application/json", "evidence", `attachment; filename="`+attachmentName(ver.Record.Vendor, ver.Record.VerificationID)+`-evidence.json"`, e)
}

// attachmentName is a verification's name for a download: letters,
// digits, '-', '_' and '.' of "<vendor>-<id>", anything else as '_', at
// most 100 bytes (the id is the vendor's: it could hold quotes, control
// characters or text that would end or extend the header).
func attachmentName(v contract.Vendor, id string) string {
	b := []byte(string(v) + "-" + id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}

// verifyAhead is how much of an object is read before anything is recorded
// or sent: an object that fits (every image) is checked against its
// recorded SHA-256 whole, first.
const verifyAhead = 1 << 20

// stream opens key, records e, then copies the object to w. Nothing is
// sent before the event is written, and no object is sent whole unless it
// matches its recorded SHA-256: one that fits in verifyAhead is checked
// before its event; a larger one is sent holding back the last bytes read
// until the end proves it, and cut short (the browser sees a failed
// download) when it does not.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, ver audit.Verification, key, contentType, kind, disposition string, e contract.AuditEvent) {
	rc, attrs, err := s.cfg.Finder.Open(r.Context(), ver, key)
	switch {
	case errors.Is(err, audit.ErrMissing):
		s.missing(r, err)
		s.fail(w, r, http.StatusNotFound, "The store no longer holds this object.")
		return
	case errors.Is(err, audit.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "The store does not hold this object.")
		return
	case err != nil:
		s.storeFailed(w, r, err)
		return
	}
	defer rc.Close()
	head := make([]byte, verifyAhead)
	n, err := io.ReadFull(rc, head)
	whole := errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
	switch {
	case errors.Is(err, audit.ErrMismatch):
		s.tampered(w, r, key)
		return
	case err != nil && !whole:
		s.storeFailed(w, r, err)
		return
	}
	if !s.record(w, r, e) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	if disposition != "" {
		h.Set("Content-Disposition", disposition)
	}
	if whole {
		h.Set("Content-Length", strconv.Itoa(n))
	} else if attrs.Size > 0 {
		h.Set("Content-Length", strconv.FormatInt(attrs.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	sent, err := s.sendHeld(w, rc, head[:n], whole)
	s.m.mediaBytes.WithLabelValues(kind).Add(float64(sent))
	switch {
	case errors.Is(err, audit.ErrMismatch):
		s.log.Error("a stored object does not match its recorded SHA-256; its answer was cut short", "key", key, "bytes", sent, "request_id", reqID(r))
		panic(http.ErrAbortHandler)
	case err != nil:
		s.log.Warn("streaming an object ended early", "key", key, "bytes", sent, "request_id", reqID(r), "error", err.Error())
	}
}

// sendHeld writes held, then the rest of rc, always keeping the last bytes
// read back until the next read succeeds: the object's end is sent only
// once rc reached it without an error.
func (s *Server) sendHeld(w io.Writer, rc io.Reader, held []byte, whole bool) (int64, error) {
	var sent int64
	if !whole {
		next := make([]byte, 32<<10)
		for {
			k, err := rc.Read(next)
			if k > 0 {
				m, werr := w.Write(held)
				sent += int64(m)
				if werr != nil {
					return sent, werr
				}
				held, next = next[:k], held[:cap(held)]
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return sent, err
			}
		}
	}
	m, err := w.Write(held)
	return sent + int64(m), err
}

// tampered answers a stored object that does not match its recorded
// SHA-256: nothing of it is shown, and the operators are told.
func (s *Server) tampered(w http.ResponseWriter, r *http.Request, key string) {
	s.log.Error("a stored object does not match its recorded SHA-256; not shown", "key", key, "request_id", reqID(r))
	s.fail(w, r, http.StatusInternalServerError, "This object in the store does not match the SHA-256 its record names, so it is not shown. Tell the operators.")
}
