package archiver

import (
	"cmp"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// MaskName keeps a name's first character.
func MaskName(s string) string {
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(s)
	return string(r) + strings.Repeat("*", max(n-1, 1))
}

// MaskIDNumber keeps the first three and last four characters of numbers long
// enough to stay anonymous that way.
func MaskIDNumber(s string) string {
	r := []rune(strings.TrimSpace(s))
	if len(r) < 10 {
		return strings.Repeat("*", len(r))
	}
	return string(r[:3]) + strings.Repeat("*", len(r)-7) + string(r[len(r)-4:])
}

// buildRecord merges a verification's terminal and its responses' facts.
// Each fact comes from the first answer in merge order that states it
// (answersInMergeOrder); a Baidu flow status and verdict come from those
// answers only, never from the terminal (harvesters before the landing
// became a hint copied the browser's page there); the landing is carried as
// the hint it is.
func buildRecord(t contract.Terminal, ev Evidence, evidence contract.ObjectRef, archivedAt time.Time, mask bool) contract.Record {
	rec := recordOf(t, evidence, archivedAt)
	parts := answersInMergeOrder(ev.Responses)
	rec.Times.HarvestedAt = harvestedAt(parts)
	attemptsFrom := fillFacts(&rec, parts, mask)
	addResponses(&rec, ev)
	if attemptsFrom != nil {
		attachAttemptMedia(rec.Attempts, attemptsFrom.Media)
	}
	switch t.Vendor {
	case contract.Megvii:
		megviiRecord(&rec, t, parts)
	case contract.Baidu:
		rec.MediaRecording = mediaRecording(parts)
	}
	return rec
}

// recordOf is the record a terminal alone makes: what the answers say is
// merged in afterwards.
func recordOf(t contract.Terminal, evidence contract.ObjectRef, archivedAt time.Time) contract.Record {
	flow, landing := t.FlowStatus, ""
	if t.Vendor == contract.Baidu {
		flow = ""
		if t.Landing == "success" || t.Landing == "failure" {
			landing = t.Landing
		}
	}
	return contract.Record{Schema: contract.RecordSchemaVersion, Vendor: t.Vendor, VerificationID: t.VerificationID, BizNo: t.BizNo,
		Outcome: t.Outcome, Reason: t.Reason, FlowStatus: flow, Landing: landing, FaceMatch: []contract.FaceMatch{}, Attempts: []contract.Attempt{},
		Media: []contract.MediaRef{}, Problems: []string{}, Responses: []contract.ResponseIn{}, Evidence: &evidence,
		WindowLeftSeconds: t.WindowLeftSeconds,
		Times:             contract.RecordTimes{IssuedAt: utcPtr(t.IssuedAt), CompletedAt: utcPtr(t.CompletedAt), DecidedAt: t.DecidedAt.UTC(), ArchivedAt: archivedAt}}
}

// Merge ranks: an answer of a lower rank wins over one of a higher rank.
const (
	// rankGetAll: Baidu getall's attempt list is the fullest account.
	rankGetAll = iota
	// rankAnswer: every other answer (Baidu detail, media/query; Megvii
	// get_result), in the order they were harvested.
	rankAnswer
	// rankCallback: a Megvii callback comes last: get_result's answer,
	// when there is one, is the record.
	rankCallback
)

func mergeRank(p *Part) int {
	switch p.Endpoint {
	case baidu.EndpointGetAll:
		return rankGetAll
	case contract.EndpointCallback:
		return rankCallback
	}
	return rankAnswer
}

// outranks reports whether answer p's facts win over q's: the lower merge
// rank wins; of two getall answers (a token polled while its user retried)
// the later lists the most attempts and wins; otherwise neither does, and
// the one harvested first wins.
func outranks(p, q *Part) bool {
	if rp, rq := mergeRank(p), mergeRank(q); rp != rq {
		return rp < rq
	}
	return mergeRank(p) == rankGetAll && p.FetchedAt.After(q.FetchedAt)
}

// answersInMergeOrder returns the answers, winners first (outranks), ties
// in harvest order.
func answersInMergeOrder(responses []*Part) []*Part {
	parts := append([]*Part(nil), responses...)
	sort.SliceStable(parts, func(i, j int) bool { return outranks(parts[i], parts[j]) })
	return parts
}

// harvestedAt is when the last successful answer was fetched.
func harvestedAt(parts []*Part) *time.Time {
	var at *time.Time
	for _, p := range parts {
		if p.ErrorClass == "" && p.HTTPStatus == 200 {
			ft := p.FetchedAt
			if at == nil || ft.After(*at) {
				at = &ft
			}
		}
	}
	return at
}

// fillFacts fills the record from the answers' facts, parts in merge order:
// each fact is the first answer's that states it, except liveness scores
// the first left out (getall's reserved ones), which a later answer fills
// (detail's). Every answer's problem is kept. It returns the answer the
// attempts came from.
func fillFacts(rec *contract.Record, parts []*Part, mask bool) (attemptsFrom *Part) {
	for _, p := range parts {
		f := p.Facts
		if f == nil {
			continue
		}
		if f.Problem != "" {
			rec.Problems = append(rec.Problems, f.Problem)
		}
		rec.FlowStatus = cmp.Or(rec.FlowStatus, f.FlowStatus)
		rec.BizNo = cmp.Or(rec.BizNo, f.BizNo)
		if rec.Passed == nil {
			rec.Passed = f.Passed
		}
		rec.Liveness = mergeLiveness(rec.Liveness, f.Liveness)
		if len(rec.FaceMatch) == 0 {
			rec.FaceMatch = append(rec.FaceMatch, f.FaceMatch...)
		}
		if rec.IDExceptions == nil && f.IDExceptions != nil {
			x := *f.IDExceptions
			rec.IDExceptions = &x
		}
		if rec.Identity == nil && f.Identity != nil {
			rec.Identity = identityOf(*f.Identity, mask)
		}
		if len(rec.Attempts) == 0 && len(f.Attempts) > 0 {
			rec.Attempts = append(rec.Attempts, f.Attempts...)
			attemptsFrom = p
		}
		if rec.Billing == nil {
			rec.Billing = f.Billing
		}
	}
	return attemptsFrom
}

// mergeLiveness is the record's liveness (have, a copy of the first
// answer's) with the scores it lacks filled from a later answer's (next).
func mergeLiveness(have, next *contract.Liveness) *contract.Liveness {
	switch {
	case next == nil:
		return have
	case have == nil:
		l := *next
		return &l
	}
	if have.Score == nil {
		have.Score = next.Score
	}
	if have.SpoofingScore == nil {
		have.SpoofingScore = next.SpoofingScore
	}
	return have
}

// identityOf is an identity as a record shows it: masked unless asked not.
func identityOf(id contract.Identity, mask bool) *contract.Identity {
	if mask {
		id.Name, id.IDNumber, id.Masked = MaskName(id.Name), MaskIDNumber(id.IDNumber), true
	}
	return &id
}

// addResponses lists the responses, their media and their problems in the
// harvest's order, and the responses that were not archived.
func addResponses(rec *contract.Record, ev Evidence) {
	type seenKey struct {
		endpoint, kind, key string
		attempt             int
	}
	seen := map[seenKey]bool{}
	for _, p := range ev.Responses {
		rec.Responses = append(rec.Responses, contract.ResponseIn{ID: p.ID, Endpoint: p.Endpoint, HTTPStatus: p.HTTPStatus, ErrorClass: p.ErrorClass})
		if p.Problem != "" {
			rec.Problems = append(rec.Problems, p.Endpoint+": "+p.Problem)
		}
		for _, m := range p.Media {
			// A polled getall lists earlier attempts' images again: the
			// same object is listed once.
			if k := (seenKey{m.Endpoint, m.Kind, m.Key, m.Attempt}); m.Key != "" {
				if seen[k] {
					continue
				}
				seen[k] = true
			}
			rec.Media = append(rec.Media, m)
			if m.Status != contract.MediaStored {
				rec.Problems = append(rec.Problems, fmt.Sprintf("%s %s %s: %s", p.Endpoint, m.Kind, m.Status, m.Reason))
			}
		}
	}
	for _, id := range ev.Missing {
		rec.Problems = append(rec.Problems, "response "+id+" was not archived (see the dead-letter topic)")
	}
}

// attachAttemptMedia gives each attempt the media of the answer the
// attempts came from that belong to it.
func attachAttemptMedia(attempts []contract.Attempt, media []contract.MediaRef) {
	for i := range attempts {
		for _, m := range media {
			if m.Attempt == attempts[i].Order {
				attempts[i].Media = append(attempts[i].Media, m)
			}
		}
	}
}

// mediaRecording is what Baidu's media/query answers say of the
// verification's recording: recorded when any carried a link, not recorded
// when they answered without one, not queried without an answer.
func mediaRecording(parts []*Part) string {
	state := contract.MediaNotQueried
	for _, p := range parts {
		if p.Endpoint != baidu.EndpointMedia || p.Facts == nil || p.Facts.MediaRecorded == nil {
			continue
		}
		if *p.Facts.MediaRecorded {
			state = contract.MediaRecorded
		} else if state != contract.MediaRecorded {
			state = contract.MediaNotRecorded
		}
	}
	return state
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
