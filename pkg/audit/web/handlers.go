package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

func reqID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey).(string)
	return id
}

// event starts the audit event of a view by p.
func event(r *http.Request, p Principal, action string) contract.AuditEvent {
	return contract.AuditEvent{Viewer: p.Name, Role: p.Role, Action: action, RequestID: reqID(r), RemoteAddr: remoteAddr(r)}
}

// record writes the view's audit event; false (and a 503 answered) when it
// could not be written: then nothing is shown.
func (s *Server) record(w http.ResponseWriter, r *http.Request, e contract.AuditEvent) bool {
	if err := s.cfg.Recorder.Record(r.Context(), e); err != nil {
		s.log.Error("audit event not written; nothing shown", "viewer", e.Viewer, "action", e.Action, "vendor", string(e.Vendor), "verification_id", e.VerificationID, "request_id", e.RequestID, "error", err.Error())
		w.Header().Set("Retry-After", "5")
		s.fail(w, r, http.StatusServiceUnavailable, "This view could not be recorded in the audit log, so it is not shown. Try again shortly.")
		return false
	}
	return true
}

func (s *Server) home(w http.ResponseWriter, r *http.Request, p Principal) {
	s.render(w, r, http.StatusOK, "search", searchData{}, p)
}

// search finds verifications by "<vendor>:<id>" (answered with the
// verification's page), or by a bare id or biz_no (a list of what matches:
// the biz_no's verifications and any vendor's verification of that id). A
// list is a view: it is audited as one search event naming what it listed.
func (s *Server) search(w http.ResponseWriter, r *http.Request, p Principal) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		s.render(w, r, http.StatusOK, "search", searchData{}, p)
		return
	}
	if len(q) > 256 {
		s.fail(w, r, http.StatusBadRequest, "That search is too long.")
		return
	}
	if v, id, err := contract.SplitKey(q); err == nil {
		http.Redirect(w, r, verificationPath(v, id), http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	found, total, err := s.cfg.Finder.ByBizNo(ctx, q, s.cfg.MaxSearchResults)
	if errors.Is(err, audit.ErrMissing) {
		s.missing(r, err)
		s.fail(w, r, http.StatusNotFound, "The store no longer holds the record of a verification this search finds.")
		return
	}
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	seen := map[string]bool{}
	for _, v := range found {
		seen[contract.Key(v.Record.Vendor, v.Record.VerificationID)] = true
	}
	for _, vendor := range []contract.Vendor{contract.Megvii, contract.Baidu} {
		v, err := s.cfg.Finder.Get(ctx, vendor, q)
		switch {
		case errors.Is(err, audit.ErrMissing):
			s.missing(r, err)
			s.fail(w, r, http.StatusNotFound, "The store no longer holds the record of "+contract.Key(vendor, q)+".")
			return
		case errors.Is(err, audit.ErrNotFound):
		case err != nil:
			s.storeFailed(w, r, err)
			return
		case !seen[contract.Key(vendor, q)] && v.Record.BizNo != q: // one of the biz_no's is counted already
			found = append(found, v)
			total++
		}
	}
	d := searchData{Query: q, Total: total}
	if len(found) > s.cfg.MaxSearchResults {
		found = found[:s.cfg.MaxSearchResults]
	}
	// The query is recorded when it is a biz_no the store holds; anything
	// else (an id, which the listed keys name, or text that matched
	// nothing, such as an ID number pasted into the box) only by its
	// SHA-256: the audit topic gets no text the store did not name.
	e := event(r, p, contract.AuditSearch)
	for _, v := range found {
		if v.Record.BizNo == q {
			e.BizNo = q
			break
		}
	}
	if e.BizNo == "" {
		sum := sha256.Sum256([]byte(q))
		e.QuerySHA256 = hex.EncodeToString(sum[:])
	}
	for _, v := range found {
		d.Results = append(d.Results, summarize(v.Record))
		e.Verifications = append(e.Verifications, contract.Key(v.Record.Vendor, v.Record.VerificationID))
	}
	s.renderAudited(w, r, http.StatusOK, "search", d, p, e)
}

// verificationView is the record page's data, with the bundle's download
// when the page offers it to p.
func (s *Server) verificationView(r contract.Record, unmasked *contract.Identity, p Principal) verificationView {
	v := newVerificationView(r, unmasked, p)
	if s.offersBundle(p) {
		v.BundlePath = bundlePath(r.Vendor, r.VerificationID)
	}
	return v
}

func verificationPath(v contract.Vendor, id string) string {
	return "/v/" + string(v) + "/" + url.PathEscape(id)
}

// find reads the verification the route names; false (and answered) when
// there is none or the store failed.
func (s *Server) find(w http.ResponseWriter, r *http.Request) (audit.Verification, bool) {
	v, err := contract.ParseVendor(r.PathValue("vendor"))
	id := r.PathValue("id")
	if err != nil || id == "" || len(id) > 256 {
		s.fail(w, r, http.StatusNotFound, "No such verification.")
		return audit.Verification{}, false
	}
	ver, err := s.cfg.Finder.Get(r.Context(), v, id)
	switch {
	case errors.Is(err, audit.ErrMissing):
		s.missing(r, err)
		s.fail(w, r, http.StatusNotFound, "The store no longer holds the record of "+contract.Key(v, id)+".")
		return audit.Verification{}, false
	case errors.Is(err, audit.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "The store holds no verification "+contract.Key(v, id)+".")
		return audit.Verification{}, false
	case err != nil:
		s.storeFailed(w, r, err)
		return audit.Verification{}, false
	}
	return ver, true
}

// missing logs an object the index names that the store does not hold:
// evidence that should be kept is gone (law 9), which an operator must
// look into; the view is answered 404.
func (s *Server) missing(r *http.Request, err error) {
	s.log.Error("an indexed object is missing from the evidence store", "request_id", reqID(r), "error", err.Error())
}

func (s *Server) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("evidence store", "request_id", reqID(r), "error", err.Error())
	w.Header().Set("Retry-After", "5")
	s.fail(w, r, http.StatusServiceUnavailable, "The evidence store did not answer. Try again shortly.")
}

func (s *Server) verification(w http.ResponseWriter, r *http.Request, p Principal) {
	ver, ok := s.find(w, r)
	if !ok {
		return
	}
	e := event(r, p, contract.AuditRecord)
	e.Vendor, e.VerificationID, e.BizNo, e.Record = ver.Record.Vendor, ver.Record.VerificationID, ver.Record.BizNo, true
	s.renderAudited(w, r, http.StatusOK, "verification", s.verificationView(ver.Record, nil, p), p, e)
}

// identity is the verification's page with the identity unmasked, read
// from its evidence document: for the identity role only.
func (s *Server) identity(w http.ResponseWriter, r *http.Request, p Principal) {
	if !s.identityRole(w, r, p, "Your role does not allow seeing unmasked identities.") {
		return
	}
	ver, ok := s.find(w, r)
	if !ok {
		return
	}
	id, err := s.cfg.Finder.Identity(r.Context(), ver)
	if err != nil {
		if errors.Is(err, audit.ErrMissing) {
			s.missing(r, err)
			s.fail(w, r, http.StatusNotFound, "The store no longer holds the evidence document.")
			return
		}
		if errors.Is(err, audit.ErrNotFound) || errors.Is(err, audit.ErrNoIdentity) {
			s.fail(w, r, http.StatusNotFound, "The evidence document holds no identity.")
			return
		}
		s.storeFailed(w, r, err)
		return
	}
	e := event(r, p, contract.AuditIdentity)
	e.Vendor, e.VerificationID, e.BizNo, e.Record, e.IdentityUnmasked = ver.Record.Vendor, ver.Record.VerificationID, ver.Record.BizNo, true, true
	e.ObjectKey = ver.Index.Evidence.Key
	s.renderAudited(w, r, http.StatusOK, "verification", s.verificationView(ver.Record, &id, p), p, e)
}

// renderAudited renders a page, records its view, then sends it: a page
// that fails to render is not recorded as shown, and one whose event could
// not be written is not shown.
func (s *Server) renderAudited(w http.ResponseWriter, r *http.Request, code int, page string, data any, p Principal, e contract.AuditEvent) {
	var buf bytes.Buffer
	if err := s.pages.execute(&buf, page, s.frame(r, p, data)); err != nil {
		s.log.Error("rendering a page", "page", page, "request_id", reqID(r), "error", err.Error())
		s.fail(w, r, http.StatusInternalServerError, "The page could not be rendered.")
		return
	}
	if !s.record(w, r, e) {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// render sends a page that shows no personal data.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, page string, data any, p Principal) {
	var buf bytes.Buffer
	if err := s.pages.execute(&buf, page, s.frame(r, p, data)); err != nil {
		s.log.Error("rendering a page", "page", page, "request_id", reqID(r), "error", err.Error())
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	p, _ := r.Context().Value(principalKey).(Principal)
	s.render(w, r, code, "error", errorData{Code: code, Status: http.StatusText(code), Message: msg}, p)
}

type frame struct {
	Viewer    Principal
	RequestID string
	Data      any
}

func (s *Server) frame(r *http.Request, p Principal, data any) frame {
	return frame{Viewer: p, RequestID: reqID(r), Data: data}
}
