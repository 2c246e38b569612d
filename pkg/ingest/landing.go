package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
)

// Signed Baidu landing URLs.
//
// Baidu's H5 flow ends by sending the user's browser to the success or
// failure page the customer put into the H5 URL; nothing but the browser
// vouches for it. So ingest hands out, when a Baidu token is registered, the
// two landing URLs to use as those pages, each carrying the verify_token and
// a signature of it:
//
//	<public-url>/v1/callbacks/baidu/success?verify_token=<token>&sig=<signature>
//
// signature = base64url (no padding) of HMAC-SHA256(landing key,
// "faceharvest-landing-v1" 0x00 <page kind: success|failure> 0x00 <verify_token>).
// Binding the page kind keeps a success URL from being replayed as a
// failure landing and the reverse. The first landing key signs; every
// configured key verifies (rotation). A landing without a valid signature
// publishes nothing and is answered 401.
//
// The vendor documents do not say how Baidu appends verify_token to a page
// that already has a query. The landing accepts both ways it could: joined
// with '&' (verify_token then appears twice, with the same value), or a
// second '?' (read as '&'). Every verify_token in the query must be the
// signed one.

// LandingSigParam is the query parameter carrying a landing's signature.
const LandingSigParam = "sig"

// LandingToParam is the query parameter carrying the customer's own page a
// landing sends the browser on to (signed with the token).
const LandingToParam = "to"

// MinLandingKeyLen is the shortest landing key accepted, in bytes.
const MinLandingKeyLen = 32

const landingDomain = "faceharvest-landing-v1"

// landingSigLen is the length of an encoded signature.
var landingSigLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

type landingSigner struct {
	base string   // public URL without a trailing slash
	keys [][]byte // the first signs
}

func newLandingSigner(publicURL string, keys []config.Secret) (*landingSigner, error) {
	if publicURL == "" && len(keys) == 0 {
		return nil, nil // landings refused: nothing can sign them
	}
	if len(keys) == 0 {
		return nil, errors.New("no landing key to sign Baidu landing URLs with (FACEHARVEST_LANDING_KEY)")
	}
	u, err := url.Parse(publicURL)
	if publicURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("public URL %q: want ingest's external base URL, e.g. https://kyc.example.com (no query)", publicURL)
	}
	ls := &landingSigner{base: strings.TrimRight(publicURL, "/")}
	for i, k := range keys {
		if len(k.Reveal()) < MinLandingKeyLen {
			return nil, fmt.Errorf("landing key %d of %d is shorter than %d bytes (FACEHARVEST_LANDING_KEY)", i+1, len(keys), MinLandingKeyLen)
		}
		ls.keys = append(ls.keys, []byte(k.Reveal()))
	}
	return ls, nil
}

func landingMAC(key []byte, kind, token string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(landingDomain))
	m.Write([]byte{0})
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(token))
	return m.Sum(nil)
}

// sign returns the signature of a landing of kind (success or failure).
func (ls *landingSigner) sign(kind, token string) string {
	return base64.RawURLEncoding.EncodeToString(landingMAC(ls.keys[0], kind, token))
}

// LandingTimeParam and LandingCallerParam carry a landing URL's
// issue time (Unix seconds) and the caller (callerID) it was given to,
// both signed: a landing older than MaxLandingAge is refused, and its
// event names the caller (the harvester ignores a landing naming another
// caller than the verification's owner).
const (
	LandingTimeParam   = "ts"
	LandingCallerParam = "c"
)

// timedKind is the page kind signed into a landing that carries its
// issue time and caller: kept apart from the signatures of earlier URLs,
// which carried neither (and are refused).
func timedKind(kind string) string { return kind + "/timed" }

// timedSubject is what a landing signature covers besides its kind.
func timedSubject(token, to string, at int64, caller string) string {
	return signedSubject(token, to) + "\x00" + strconv.FormatInt(at, 10) + "\x00" + caller
}

// landingRoute is one kind of signed landing: where it lands, the
// parameter naming its subject, and the page kind its signature binds.
type landingRoute struct {
	route  string
	param  string // verify_token (Baidu) or biz_no (Megvii return)
	maxLen int    // the subject's longest
	kind   string // signed, so that one kind's URL does not land as another
	// unsigned ends the refusal of a URL without a signature: where the
	// right URL comes from.
	unsigned string
}

// kindMegviiReturn is the page kind signed into Megvii return landings.
const kindMegviiReturn = "megvii-return"

var (
	landingBaiduSuccess = landingRoute{route: RouteBaiduSuccess, param: "verify_token", maxLen: 128, kind: "success",
		unsigned: "use the success_url or failure_url answered by POST /v1/tokens"}
	landingBaiduFailure = landingRoute{route: RouteBaiduFailure, param: "verify_token", maxLen: 128, kind: "failure",
		unsigned: landingBaiduSuccess.unsigned}
	landingMegviiReturn = landingRoute{route: RouteMegviiReturn, param: "biz_no", maxLen: 256, kind: kindMegviiReturn,
		unsigned: "ingest sets it as return_url when it issues the token"}
)

// baiduLandingRoute is the landing of a Baidu page kind (success or failure).
func baiduLandingRoute(kind string) landingRoute {
	if kind == "failure" {
		return landingBaiduFailure
	}
	return landingBaiduSuccess
}

// landingParams is what a landing URL's signature vouches for.
type landingParams struct {
	subject string // verify_token or biz_no
	to      string // the customer's page the browser goes on to; "" for the configured one
	caller  string // callerID of the caller the URL was given to
	at      int64  // issue time, Unix seconds
}

// url returns lr's signed URL for sl. The page is signed with the
// subject: a stranger cannot make a landing redirect anywhere else.
func (ls *landingSigner) url(lr landingRoute, sl landingParams) string {
	u := ls.base + lr.route + "?" + lr.param + "=" + url.QueryEscape(sl.subject)
	if sl.to != "" {
		u += "&" + LandingToParam + "=" + url.QueryEscape(sl.to)
	}
	u += "&" + LandingSigParam + "=" + ls.sign(timedKind(lr.kind), timedSubject(sl.subject, sl.to, sl.at, sl.caller)) + "&" + LandingTimeParam + "=" + strconv.FormatInt(sl.at, 10)
	if sl.caller != "" {
		u += "&" + LandingCallerParam + "=" + url.QueryEscape(sl.caller)
	}
	return u
}

// urlFor returns the signed Baidu landing URL of kind for token, issued at
// at to caller, that sends the browser on to the customer's page to (""
// for the configured page).
func (ls *landingSigner) urlFor(kind, token, to, caller string, at time.Time) string {
	return ls.url(baiduLandingRoute(kind), landingParams{subject: token, to: to, caller: caller, at: at.Unix()})
}

// megviiReturnURL returns the return_url given to get_token for a
// verification with bizNo, issued at at to caller: ingest's Megvii return
// landing, which records the vendor-signed result the browser posts and
// then sends the browser on to the customer's page to ("" for a short
// page). The landing redirects only when the posted, vendor-signed data
// names that biz_no.
func (ls *landingSigner) megviiReturnURL(bizNo, to, caller string, at time.Time) string {
	return ls.url(landingMegviiReturn, landingParams{subject: bizNo, to: to, caller: caller, at: at.Unix()})
}

// checkLanding is the one check of a signed landing URL, for every kind:
// its subject, its signature (under any landing key) over the kind, the
// subject, the page, the issue time and the caller, and its age (at most
// MaxLandingAge, and not from beyond MaxClockSkew ahead). A refusal is 400
// for a missing subject, else 401, counted by reason; nothing is read
// beyond the query.
func (s *Server) checkLanding(lr landingRoute, rawQuery string) (landingParams, *reqError) {
	refuse := func(reason, msg string) (landingParams, *reqError) {
		s.m.landingFail.WithLabelValues(reason).Inc()
		return landingParams{}, &reqError{status: http.StatusUnauthorized, reason: "signature", msg: msg}
	}
	subject, to, sig, problem := signedQuery(rawQuery, lr.param, lr.maxLen)
	switch {
	case problem == "malformed":
		return landingParams{}, &reqError{status: http.StatusBadRequest, reason: "malformed", msg: lr.param + " missing or invalid"}
	case s.landing == nil:
		return refuse("not_configured", "landing URLs are not configured")
	case problem == "mismatch":
		return refuse("mismatch", "landing signature does not match")
	case problem != "":
		return refuse(problem, "landing URL is not signed: "+lr.unsigned)
	}
	at, caller, ok := landingTimeQuery(rawQuery)
	if !ok {
		return refuse("mismatch", "landing URL carries no signed issue time (an URL of an earlier release, or altered): "+lr.unsigned)
	}
	if !s.landing.verify(timedKind(lr.kind), timedSubject(subject, to, at, caller), sig) {
		return refuse("mismatch", "landing signature does not match")
	}
	now, issued := s.cfg.Now(), time.Unix(at, 0)
	if now.Sub(issued) > s.cfg.MaxLandingAge || issued.After(now.Add(s.cfg.MaxClockSkew)) {
		return refuse("stale", "landing URL expired: it was issued more than "+s.cfg.MaxLandingAge.String()+" ago")
	}
	return landingParams{subject: subject, to: to, caller: caller, at: at}, nil
}

// landingTimeQuery reads a landing's issue time and caller; ok is false
// when the time is missing or either appears more than once.
func landingTimeQuery(rawQuery string) (at int64, caller string, ok bool) {
	q, err := url.ParseQuery(strings.ReplaceAll(rawQuery, "?", "&"))
	if err != nil || len(q[LandingTimeParam]) != 1 || len(q[LandingCallerParam]) > 1 {
		return 0, "", false
	}
	at, err = strconv.ParseInt(q[LandingTimeParam][0], 10, 64)
	if err != nil {
		return 0, "", false
	}
	return at, q.Get(LandingCallerParam), true
}

// signedSubject is what a landing signature covers besides its kind: the
// token, and the customer's page after a 0 byte when there is one (a token
// never contains a 0 byte, so the two never read the same).
func signedSubject(token, to string) string {
	if to == "" {
		return token
	}
	return token + "\x00" + to
}

// LandingURL returns the signed landing URL of kind ("success" or
// "failure") for a Baidu verify_token, as POST /v1/tokens answers it; ""
// when no landing key is configured or kind is neither.
func (s *Server) LandingURL(kind, verifyToken string) string {
	if s.landing == nil || (kind != "success" && kind != "failure") {
		return ""
	}
	return s.landing.urlFor(kind, verifyToken, "", "", s.cfg.Now())
}

// verify reports whether sig is a valid signature of a kind landing for
// token under any configured key, comparing in constant time (every key is
// tried, whichever matches).
func (ls *landingSigner) verify(kind, token, sig string) bool {
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := 0
	for _, k := range ls.keys {
		if hmac.Equal(got, landingMAC(k, kind, token)) {
			ok = 1
		}
	}
	return ok == 1
}

// signedQuery reads a signed landing's subject (the parameter named
// subject: verify_token or biz_no), its customer page and its signature.
// Every copy of the subject must be the same; the page and the signature
// may appear once.
func signedQuery(rawQuery, subject string, maxLen int) (token, to, sig, problem string) {
	// The customer's page is escaped in our query: a '?' can only be one
	// the vendor added.
	q, err := url.ParseQuery(strings.ReplaceAll(rawQuery, "?", "&"))
	if err != nil {
		return "", "", "", "malformed"
	}
	toks := q[subject]
	if len(toks) == 0 || !validID(toks[0], maxLen) {
		return "", "", "", "malformed"
	}
	for _, t := range toks[1:] {
		if t != toks[0] {
			return "", "", "", "mismatch"
		}
	}
	switch tos := q[LandingToParam]; {
	case len(tos) > 1:
		return "", "", "", "mismatch"
	case len(tos) == 1:
		to = tos[0]
	}
	sigs := q[LandingSigParam]
	switch {
	case len(sigs) == 0 || sigs[0] == "":
		return toks[0], to, "", "missing"
	case len(sigs) > 1 || len(sigs[0]) != landingSigLen:
		return toks[0], to, "", "malformed_signature"
	}
	return toks[0], to, sigs[0], ""
}
