package archiver

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
)

// megviiRecord completes a Megvii record from the signed callback: when no
// get_result answer is usable, the record is the callback's (outcome
// harvested_without_images); when both are, a disagreement is a problem.
// Either way the images the flow produced but no answer carried are listed
// as not obtained, with the reason.
func megviiRecord(rec *contract.Record, t contract.Terminal, parts []*Part) {
	s := megviiAnswers(parts)
	// The schedule's completion of a Megvii verification is the final
	// callback's receipt; the vendor's verify time, when get_result gives
	// one, is when the verification happened.
	rec.Times.CallbackReceivedAt = utcPtr(t.CompletedAt)
	if s.answer != nil && s.answer.VerifiedAt != nil {
		rec.Times.CompletedAt = utcPtr(s.answer.VerifiedAt)
	}
	if s.callback == nil && s.answer == nil {
		return
	}
	switch {
	case s.callback == nil:
		// No callback: what the answers could not be asked for is still
		// listed, from their own result.
	case s.answer == nil:
		if rec.Outcome != contract.OutcomeHarvested {
			why := cmp.Or(rec.Reason, rec.Outcome)
			rec.Outcome = contract.OutcomeHarvestedWithoutImages
			rec.Reason = "from the vendor-signed callback; get_result: " + why
		}
	default:
		rec.Problems = append(rec.Problems, megviiDisagreements(s.answer, s.callback)...)
	}
	expected := s.expected()
	for _, kind := range expected {
		if !s.got[kind] {
			rec.Media = append(rec.Media, contract.MediaRef{Kind: kind, Endpoint: megvii.EndpointGetResult, Status: contract.MediaNotObtained,
				Reason: s.notObtained(kind, expected, t.Reason)})
		}
	}
}

// megviiSources is what a Megvii verification's answers hold for its
// record.
type megviiSources struct {
	// answer is the first usable get_result answer's facts; callback the
	// last final signed callback's.
	answer, callback *Facts
	// asked are the return_image values of served get_result calls, in
	// the order first asked.
	asked []string
	// got are the media kinds the get_result answers carried.
	got map[string]bool
}

// megviiAnswers reads parts, in merge order.
func megviiAnswers(parts []*Part) megviiSources {
	s := megviiSources{got: map[string]bool{}}
	for _, p := range parts {
		switch {
		case p.Endpoint == contract.EndpointCallback:
			if p.Facts != nil && p.Facts.Problem == "" && megvii.Status(p.Facts.FlowStatus).Final() {
				s.callback = p.Facts
			}
		case p.Endpoint == megvii.EndpointGetResult && p.ErrorClass == "" && p.HTTPStatus == 200:
			if s.answer == nil && p.Facts != nil && p.Facts.Problem == "" {
				s.answer = p.Facts
			}
			if v := p.Params["return_image"]; v != "" && !slices.Contains(s.asked, v) {
				s.asked = append(s.asked, v)
			}
			for _, m := range p.Media {
				s.got[m.Kind] = true
			}
		}
	}
	return s
}

// expected are the images the flow produced: as get_result's answer says,
// else as the callback does.
func (s megviiSources) expected() []string {
	if s.answer != nil && len(s.answer.ExpectedImages) > 0 {
		return s.answer.ExpectedImages
	}
	if s.callback != nil {
		return s.callback.ExpectedImages
	}
	return nil
}

// notObtained says why an expected image (kind) is in no answer: the call
// budget went to a return_image value that did not ask for it, or one that
// did and was not answered with it, or no answer was usable (why: the
// terminal's reason).
func (s megviiSources) notObtained(kind string, expected []string, why string) string {
	if len(s.asked) == 0 {
		if why != "" && s.answer == nil {
			return "no usable get_result answer: " + why
		}
		return "no usable get_result answer"
	}
	reason := "not asked for: the call budget went to return_image=" + strings.Join(s.asked, ",")
	for _, v := range s.asked {
		if slices.Contains(megviiImageKinds(v, expected), kind) {
			reason = "asked for (return_image=" + v + ") but not in the answer"
		}
	}
	return reason
}

// megviiDisagreements compares get_result's answer with the signed callback.
func megviiDisagreements(answer, callback *Facts) []string {
	var out []string
	if answer.FlowStatus != callback.FlowStatus {
		out = append(out, fmt.Sprintf("get_result and the signed callback disagree: status %s, callback %s", answer.FlowStatus, callback.FlowStatus))
	}
	lr := func(f *Facts) string {
		if f.Liveness == nil {
			return "none"
		}
		return f.Liveness.Result
	}
	if lr(answer) != lr(callback) {
		out = append(out, fmt.Sprintf("get_result and the signed callback disagree: liveness %s, callback %s", lr(answer), lr(callback)))
	}
	scores := func(f *Facts) map[string]string {
		m := map[string]string{}
		for _, fm := range f.FaceMatch {
			v := fm.Error
			if fm.Score != nil {
				v = strconv.FormatFloat(*fm.Score, 'g', -1, 64)
			}
			m[fm.Source] = v
		}
		return m
	}
	a, c := scores(answer), scores(callback)
	for _, src := range sortedKeys(toAny(a, c)) {
		if a[src] != c[src] {
			out = append(out, fmt.Sprintf("get_result and the signed callback disagree: %s score %q, callback %q", src, a[src], c[src]))
		}
	}
	return out
}

func toAny(ms ...map[string]string) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k := range m {
			out[k] = nil
		}
	}
	return out
}
