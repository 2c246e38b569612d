package web

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ledger"
)

// bundlePath is where a verification's evidence bundle is downloaded.
func bundlePath(v contract.Vendor, id string) string { return verificationPath(v, id) + "/bundle" }

// offersBundle reports whether the page offers p the evidence bundle.
func (s *Server) offersBundle(p Principal) bool { return s.cfg.Bundles != nil && p.CanSeeIdentity() }

// bundle sends the verification's evidence bundle (the zip `faceharvest
// export` writes, built by the same audit.Exporter): for the identity role
// only, posted from the page itself. The bundle is built and checked in a
// temporary file, the export is recorded, and only then is it sent; an
// export whose event cannot be written sends nothing.
func (s *Server) bundle(w http.ResponseWriter, r *http.Request, p Principal) {
	if s.cfg.Bundles == nil {
		s.fail(w, r, http.StatusNotFound, "This audit page offers no evidence bundles (no log key is configured).")
		return
	}
	if !s.identityRole(w, r, p, "Your role does not allow exporting evidence bundles: they hold the unmasked identity.") {
		return
	}
	if !s.sameOrigin(r) {
		s.m.authFailure(reasonBadOrigin)
		s.fail(w, r, http.StatusForbidden, "This form must be sent from the audit page itself.")
		return
	}
	ver, ok := s.find(w, r)
	if !ok {
		return
	}
	tmp, err := os.CreateTemp(s.cfg.BundleDir, ".bundle-*.zip")
	if err != nil {
		s.log.Error("creating a bundle's temporary file", "request_id", reqID(r), "error", err.Error())
		s.fail(w, r, http.StatusInternalServerError, "The bundle could not be built.")
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	v, id := ver.Record.Vendor, ver.Record.VerificationID
	b, err := s.cfg.Bundles.Build(r.Context(), v, id, p.Name, s.now().UTC(), tmp)
	if err != nil {
		s.bundleFailed(w, r, err)
		return
	}
	e := event(r, p, contract.AuditExport)
	e.At, e.Vendor, e.VerificationID, e.BizNo, e.Record, e.IdentityUnmasked, e.LinkedKeys =
		b.Event.At, b.Event.Vendor, b.Event.VerificationID, b.Event.BizNo, b.Event.Record, b.Event.IdentityUnmasked, b.Event.LinkedKeys
	if !s.record(w, r, e) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", `attachment; filename="`+attachmentName(v, id)+`-bundle.zip"`)
	h.Set("Content-Length", strconv.FormatInt(b.Size, 10))
	w.WriteHeader(http.StatusOK)
	sent, err := io.Copy(w, io.NewSectionReader(tmp, 0, b.Size))
	s.m.mediaBytes.WithLabelValues(kindBundle).Add(float64(sent))
	if err != nil {
		s.log.Warn("sending a bundle ended early", "vendor", string(v), "verification_id", id, "bytes", sent, "request_id", reqID(r), "error", err.Error())
	}
}

// bundleFailed answers a bundle that could not be built or did not verify.
func (s *Server) bundleFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ledger.ErrNotIndexed):
		s.fail(w, r, http.StatusNotFound, "The store holds no index entry for this verification.")
	case errors.Is(err, ledger.ErrNotInLog):
		w.Header().Set("Retry-After", "60")
		s.fail(w, r, http.StatusServiceUnavailable, "This verification is not yet in the evidence log: try again after the log's next checkpoint.")
	case errors.Is(err, audit.ErrTrail):
		s.log.Error("reading a bundle's audit trail", "request_id", reqID(r), "error", err.Error())
		w.Header().Set("Retry-After", "5")
		s.fail(w, r, http.StatusServiceUnavailable, "The audit trail could not be read, so no bundle was exported. Try again shortly.")
	default:
		s.log.Error("building a bundle", "request_id", reqID(r), "error", err.Error())
		s.fail(w, r, http.StatusInternalServerError, "The bundle could not be built or did not verify, so it is not sent. Tell the operators.")
	}
}
