package ingest

import (
	"errors"
	"io"
	"net/http"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
)

// The vendors' results: Megvii callbacks and return landings (vendor-signed
// data), Baidu landings (signed by ingest).

func (s *Server) megviiCallback(w http.ResponseWriter, r *http.Request) *reqError {
	env, e := s.megviiResultPost(r, "")
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "id": env.ID})
	return nil
}

// megviiReturn is the Megvii return landing: the browser posts the same
// vendor-signed data + sign as notify_url gets (document 000: return_url is
// called by POST through a page redirect). It is recorded as that callback
// (same ce_id), then the browser goes on to the customer's page signed into
// the landing URL. Unsigned landing URLs are refused before the body is read.
func (s *Server) megviiReturn(w http.ResponseWriter, r *http.Request) *reqError {
	sl, e := s.checkLanding(landingMegviiReturn, r.URL.RawQuery)
	if e != nil {
		return e
	}
	if _, e := s.megviiResultPost(r, sl.subject); e != nil {
		return e
	}
	s.m.megviiReturns.Inc()
	landed(w, r, sl.to)
	return nil
}

// megviiResultPost checks and publishes a Megvii data + sign post (notify_url
// or return_url). wantBizNo, when not empty, is the biz_no the post must
// carry (a return landing's).
func (s *Server) megviiResultPost(r *http.Request, wantBizNo string) (contract.Envelope, *reqError) {
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		mt, err := megvii.MediaType(ct)
		if err != nil || (mt != "application/x-www-form-urlencoded" && mt != "application/json" && mt != "text/json") {
			return contract.Envelope{}, &reqError{status: http.StatusUnsupportedMediaType, reason: "media_type", msg: "want application/x-www-form-urlencoded or application/json"}
		}
	}
	body, e := readBody(r, s.cfg.MaxCallbackBytes)
	if e != nil {
		return contract.Envelope{}, e
	}
	cb, err := megvii.DecodeCallback(ct, body)
	switch {
	case errors.Is(err, megvii.ErrMissingSign):
		s.m.sigFail.WithLabelValues("missing").Inc()
		return contract.Envelope{}, &reqError{status: http.StatusUnauthorized, reason: "signature", msg: "missing sign"}
	case errors.Is(err, megvii.ErrUnsupportedMediaType):
		return contract.Envelope{}, &reqError{status: http.StatusUnsupportedMediaType, reason: "media_type", msg: "want application/x-www-form-urlencoded or application/json"}
	case err != nil:
		return contract.Envelope{}, &reqError{status: http.StatusBadRequest, reason: "malformed", msg: "body must carry data and sign"}
	}
	signer, err := megvii.VerifySignature(cb, s.cfg.MegviiSecrets)
	if err != nil {
		s.m.sigFail.WithLabelValues("mismatch").Inc()
		return contract.Envelope{}, &reqError{status: http.StatusUnauthorized, reason: "signature", msg: "signature does not match"}
	}
	res, err := cb.Summarize()
	if err != nil {
		return contract.Envelope{}, &reqError{status: http.StatusBadRequest, reason: "malformed", msg: "data is not a FaceID Lite result object"}
	}
	bizID := res.BizInfo.BizID
	if !validID(bizID, 256) {
		return contract.Envelope{}, &reqError{status: http.StatusBadRequest, reason: "malformed", msg: "data lacks a valid biz_info.biz_id"}
	}
	if wantBizNo != "" && res.BizInfo.BizNo != wantBizNo {
		return contract.Envelope{}, &reqError{status: http.StatusBadRequest, reason: "invalid", msg: "data is not this landing's verification (biz_no differs)"}
	}
	now := s.cfg.Now().UTC()
	ev := contract.Event{Vendor: contract.Megvii, VerificationID: bizID, BizNo: res.BizInfo.BizNo, ReceivedAt: now, Status: string(res.Status), Data: cb.Data,
		Sign: cb.Sign, SignedBy: megvii.SecretFingerprint(s.cfg.MegviiSecrets[signer])}
	env := s.envelope(contract.TypeMegviiCallback, "/ingest"+RouteMegviiCallback, contract.EventID(string(contract.Megvii), bizID, "callback", cb.Data), now, ev, true)
	if e := s.publish(env); e != nil {
		return contract.Envelope{}, e
	}
	return env, nil
}

func (s *Server) baiduLanding(outcome string) func(http.ResponseWriter, *http.Request) *reqError {
	target := s.cfg.BaiduSuccessRedirect
	if outcome == "failure" {
		target = s.cfg.BaiduFailureRedirect
	}
	lr := baiduLandingRoute(outcome)
	return func(w http.ResponseWriter, r *http.Request) *reqError {
		sl, e := s.checkLanding(lr, r.URL.RawQuery)
		if e != nil {
			return e
		}
		if r.Method != http.MethodGet {
			// A HEAD (a link checker, a prefetch) is not the user landing.
			w.Header().Set("Allow", "GET")
			return &reqError{status: http.StatusMethodNotAllowed, reason: "method", msg: "use GET"}
		}
		vt, to, now := sl.subject, sl.to, s.cfg.Now().UTC()
		ev := contract.Event{Vendor: contract.Baidu, VerificationID: vt, ReceivedAt: now, Status: outcome, Caller: sl.caller}
		env := s.envelope(contract.TypeBaiduCompletion, "/ingest/v1/callbacks/baidu/"+outcome, contract.EventID(string(contract.Baidu), vt, "completion", outcome), now, ev, false)
		if e := s.publish(env); e != nil {
			return e
		}
		page := target
		if to != "" {
			// The customer's page, signed with the token when it was issued.
			page = to
		}
		landed(w, r, page)
		return nil
	}
}

// landed sends the browser to target: a configured page or one signed into
// the landing URL, never one taken from the request alone; "" answers a
// short page.
func landed(w http.ResponseWriter, r *http.Request, target string) {
	if target != "" {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "<!doctype html><title>Verification received</title><p>Your verification has been received. You may close this page.</p>\n")
}
