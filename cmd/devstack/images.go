package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
)

// imageTally counts the Megvii images of the records: those the flows
// produced (stored or listed not obtained), those asked for with get_result's
// return_image, those received in an answer, those not obtained by reason;
// and the selfie verifications whose images were all stored.
type imageTally struct {
	produced, asked, received, stored, notObtained int
	reasons                                        map[string]int
	selfies, selfiesComplete                       int
}

func tallyImages(records map[string]contract.Record) imageTally {
	t := imageTally{reasons: map[string]int{}}
	for _, r := range records {
		if r.Vendor != contract.Megvii {
			continue
		}
		complete, any := true, false
		for _, m := range r.Media {
			if m.Endpoint != megvii.EndpointGetResult {
				continue
			}
			any = true
			t.produced++
			switch {
			case m.Status == contract.MediaNotObtained:
				t.notObtained++
				complete = false
				reason, _, _ := strings.Cut(m.Reason, ":")
				if strings.HasPrefix(m.Reason, "asked for") {
					t.asked++
					reason = "asked for but not in the answer"
				}
				t.reasons[reason]++
			default: // carried by an answer: asked for and received
				t.asked++
				t.received++
				if m.Status == contract.MediaStored {
					t.stored++
				} else {
					complete = false
				}
			}
		}
		if r.Liveness != nil && r.Liveness.Procedure == megvii.ProcedureSelfie && r.Outcome != contract.OutcomeNotVerified {
			t.selfies++
			if complete && any {
				t.selfiesComplete++
			}
		}
	}
	return t
}

func (t imageTally) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Megvii images: %d the flows produced, %d asked for, %d received (%d stored), %d not obtained",
		t.produced, t.asked, t.received, t.stored, t.notObtained)
	if len(t.reasons) > 0 {
		rs := make([]string, 0, len(t.reasons))
		for r, n := range t.reasons {
			rs = append(rs, fmt.Sprintf("%d %s", n, r))
		}
		sort.Strings(rs)
		fmt.Fprintf(&b, " (%s)", strings.Join(rs, "; "))
	}
	fmt.Fprintf(&b, "\nselfie verifications with all their images stored: %d of %d", t.selfiesComplete, t.selfies)
	return b.String()
}
