package web

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// mediaOf lists a record's media objects in the order the media route
// numbers them: the record's own (which include its attempts' images,
// marked with their attempt), then any attempt's the record does not list.
func mediaOf(r contract.Record) []contract.MediaRef {
	out := slices.Clone(r.Media)
	listed := map[string]bool{}
	for _, m := range r.Media {
		if m.Key != "" {
			listed[m.Key] = true
		}
	}
	for _, a := range r.Attempts {
		for _, m := range a.Media {
			if m.Key == "" || !listed[m.Key] {
				if m.Attempt == 0 {
					m.Attempt = a.Order
				}
				out = append(out, m)
				listed[m.Key] = m.Key != ""
			}
		}
	}
	return out
}

type loginData struct {
	Next, Message string
}

type errorData struct {
	Code            int
	Status, Message string
}

type summary struct {
	Key, Path, Vendor, ID, BizNo, Outcome, Reason, Passed, DecidedAt string
}

type searchData struct {
	Query   string
	Total   int
	Results []summary
}

func summarize(r contract.Record) summary {
	return summary{Key: contract.Key(r.Vendor, r.VerificationID), Path: verificationPath(r.Vendor, r.VerificationID), Vendor: string(r.Vendor),
		ID: r.VerificationID, BizNo: r.BizNo, Outcome: r.Outcome, Reason: r.Reason, Passed: passed(r.Passed), DecidedAt: stamp(&r.Times.DecidedAt)}
}

func passed(p *bool) string {
	switch {
	case p == nil:
		return "no verdict"
	case *p:
		return "passed"
	}
	return "not passed"
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func score(f *float64) string {
	if f == nil {
		return "—"
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

// scoreLine is one score against one threshold.
type scoreLine struct {
	Label, Score, Threshold string
	// Verdict: "meets" (score at or above the threshold), "below", or "" when
	// either is missing. For attack detectors above means suspected.
	Verdict string
}

func against(label string, s, t *float64) scoreLine {
	l := scoreLine{Label: label, Score: score(s), Threshold: score(t)}
	if s != nil && t != nil {
		l.Verdict = "below"
		if *s >= *t {
			l.Verdict = "meets"
		}
	}
	return l
}

type faceMatchView struct {
	Source, Score, Error string
	Lines                []scoreLine
}

type attackView struct {
	Kind, Score, Threshold string
	Suspected              bool
}

type livenessView struct {
	Result, Procedure, Score, SpoofingScore string
	Attacks                                 []attackView
}

type mediaView struct {
	Kind, Endpoint, Status, Reason, Key, SHA256, ContentType, Size, URL string
	Attempt                                                             int
	Image, Video                                                        bool
	// Withheld says why a stored ID-card image is not shown here (it is
	// identity data: the unmasked page shows it to the identity role).
	Withheld string
}

type attemptView struct {
	Order                                            int
	Passed                                           bool
	Code, Message, VerifiedAt, ChargeType, RiskLevel string
	Charged                                          bool
	Match                                            scoreLine
	LivenessScore, SpoofingScore                     string
	Media                                            []mediaView
}

type timelineEntry struct{ Label, At string }

type identityView struct {
	Name, IDNumber, Source string
	Masked                 bool
}

type verificationView struct {
	Key, Vendor, ID, BizNo, Path                 string
	Outcome, Reason, FlowStatus, Passed, Landing string
	Liveness                                     *livenessView
	FaceMatch                                    []faceMatchView
	Identity                                     *identityView
	Unmasked                                     bool
	CanSeeIdentity                               bool
	Attempts                                     []attemptView
	Media                                        []mediaView
	MediaRecording                               string
	Timeline                                     []timelineEntry
	WindowLeft                                   string
	Problems                                     []string
	Responses                                    []contract.ResponseIn
	Billing                                      []timelineEntry
	EvidenceKey, EvidencePath                    string
	// BundlePath is where the evidence bundle is downloaded (a POST);
	// empty when the page offers none to this viewer.
	BundlePath string
	Schema     string
}

// newVerificationView is what the verification page shows; unmasked, when
// set, replaces the record's masked identity.
func newVerificationView(r contract.Record, unmasked *contract.Identity, p Principal) verificationView {
	path := verificationPath(r.Vendor, r.VerificationID)
	v := verificationView{Key: contract.Key(r.Vendor, r.VerificationID), Vendor: string(r.Vendor), ID: r.VerificationID, BizNo: r.BizNo, Path: path,
		Outcome: r.Outcome, Reason: r.Reason, FlowStatus: r.FlowStatus, Passed: passed(r.Passed), Landing: r.Landing,
		MediaRecording: r.MediaRecording, Problems: r.Problems, Responses: r.Responses, Schema: r.Schema, CanSeeIdentity: p.CanSeeIdentity()}
	v.Liveness = livenessOf(r.Liveness)
	for _, f := range r.FaceMatch {
		v.FaceMatch = append(v.FaceMatch, faceMatchOf(f))
	}
	v.Identity, v.Unmasked = identityOf(r.Identity, unmasked)
	v.addAttempts(r, unmasked, p)
	v.Timeline = timelineOf(r.Times)
	v.WindowLeft = (time.Duration(r.WindowLeftSeconds * float64(time.Second))).Round(time.Second).String()
	v.Billing = billingOf(r.Billing)
	if r.Evidence != nil && r.Evidence.Key != "" {
		v.EvidenceKey, v.EvidencePath = r.Evidence.Key, path+"/evidence"
	}
	return v
}

func livenessOf(l *contract.Liveness) *livenessView {
	if l == nil {
		return nil
	}
	lv := &livenessView{Result: l.Result, Procedure: l.Procedure, Score: score(l.Score), SpoofingScore: score(l.SpoofingScore)}
	for _, a := range l.Attacks {
		lv.Attacks = append(lv.Attacks, attackView{Kind: a.Kind, Score: score(&a.Score), Threshold: score(&a.Threshold), Suspected: a.Suspected})
	}
	return lv
}

// faceMatchOf lines a face match's score up against its threshold, then
// Megvii's thresholds by false-accept rate.
func faceMatchOf(f contract.FaceMatch) faceMatchView {
	fv := faceMatchView{Source: f.Source, Score: score(f.Score), Error: f.Error}
	if f.Threshold != nil {
		fv.Lines = append(fv.Lines, against("threshold", f.Score, f.Threshold))
	}
	keys := make([]string, 0, len(f.Thresholds))
	for k := range f.Thresholds {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, byRateDescending)
	for _, k := range keys {
		t := f.Thresholds[k]
		fv.Lines = append(fv.Lines, against("false-accept rate "+k, f.Score, &t))
	}
	return fv
}

// byRateDescending orders Megvii's thresholds by false-accept rate, the
// most lenient first (1e-3, 1e-4, ...): by the rate's value, descending.
func byRateDescending(a, b string) int {
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	if ea != nil || eb != nil {
		return strings.Compare(a, b)
	}
	switch {
	case fa > fb:
		return -1
	case fa < fb:
		return 1
	}
	return 0
}

func identityOf(masked *contract.Identity, unmasked *contract.Identity) (*identityView, bool) {
	switch {
	case unmasked != nil:
		return &identityView{Name: unmasked.Name, IDNumber: unmasked.IDNumber, Source: unmasked.Source, Masked: false}, true
	case masked != nil:
		return &identityView{Name: masked.Name, IDNumber: masked.IDNumber, Source: masked.Source, Masked: masked.Masked}, false
	}
	return nil, false
}

// addAttempts lists the record's attempts and its media, each medium under
// its attempt when it has one.
func (v *verificationView) addAttempts(r contract.Record, unmasked *contract.Identity, p Principal) {
	attempt := map[int]int{} // attempt order -> index in v.Attempts
	for _, a := range r.Attempts {
		attempt[a.Order] = len(v.Attempts)
		v.Attempts = append(v.Attempts, attemptView{Order: a.Order, Passed: a.Passed, Code: a.Code, Message: a.Message, VerifiedAt: a.VerifiedAt, ChargeType: a.ChargeType,
			RiskLevel: a.RiskLevel, Charged: a.Charged, Match: against("face match", a.Score, a.Threshold),
			LivenessScore: score(a.LivenessScore), SpoofingScore: score(a.SpoofingScore)})
	}
	for n, m := range mediaOf(r) {
		mv := mediaViewOf(v.Path, n, m, unmasked != nil, p)
		if i, ok := attempt[m.Attempt]; ok && m.Attempt > 0 {
			v.Attempts[i].Media = append(v.Attempts[i].Media, mv)
		} else {
			v.Media = append(v.Media, mv)
		}
	}
}

// mediaViewOf is the n-th medium of the record at path: linked, or named
// as withheld when it is an ID-card image this view does not show.
func mediaViewOf(path string, n int, m contract.MediaRef, unmasked bool, p Principal) mediaView {
	mv := mediaView{Kind: m.Kind, Endpoint: m.Endpoint, Status: m.Status, Reason: m.Reason, Key: m.Key, SHA256: m.SHA256, ContentType: m.ContentType, Attempt: m.Attempt}
	if m.Size > 0 {
		mv.Size = bytesText(m.Size)
	}
	switch {
	case m.Status != contract.MediaStored || m.Key == "":
	case contract.IdentityMedia(m.Kind) && !unmasked && p.CanSeeIdentity():
		mv.Withheld = "ID-card image: shown on the unmasked identity view"
	case contract.IdentityMedia(m.Kind) && !unmasked:
		mv.Withheld = "ID-card image: identity data, not shown to your role"
	default:
		mv.URL = path + "/media/" + strconv.Itoa(n)
		mv.Image = strings.HasPrefix(m.ContentType, "image/")
		mv.Video = strings.HasPrefix(m.ContentType, "video/")
	}
	return mv
}

func timelineOf(t contract.RecordTimes) []timelineEntry {
	var out []timelineEntry
	for _, e := range []struct {
		label string
		at    *time.Time
	}{{"issued", t.IssuedAt}, {"completed", t.CompletedAt}, {"harvested", t.HarvestedAt}, {"decided", &t.DecidedAt}, {"archived", &t.ArchivedAt}} {
		if s := stamp(e.at); s != "" {
			out = append(out, timelineEntry{e.label, s})
		}
	}
	return out
}

func billingOf(b *contract.Billing) []timelineEntry {
	if b == nil {
		return nil
	}
	var out []timelineEntry
	add := func(label string, n *int) {
		if n != nil {
			out = append(out, timelineEntry{label, strconv.Itoa(*n)})
		}
	}
	if b.Billed != nil {
		out = append(out, timelineEntry{"billed", strconv.FormatBool(*b.Billed)})
	}
	add("verify count", b.VerifyCount)
	add("OCR charges", b.OCRChargeCount)
	add("match charges", b.MatchChargeCount)
	add("verify charges", b.VerifyChargeCount)
	return out
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
