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
	Produced        int            `json:"produced"`
	Asked           int            `json:"asked"`
	Received        int            `json:"received"`
	Stored          int            `json:"stored"`
	NotObtained     int            `json:"not_obtained"`
	Reasons         map[string]int `json:"not_obtained_reasons"`
	Selfies         int            `json:"selfies"`
	SelfiesComplete int            `json:"selfies_complete"`
}

func tallyImages(records map[string]contract.Record) imageTally {
	t := imageTally{Reasons: map[string]int{}}
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
			t.Produced++
			switch {
			case m.Status == contract.MediaNotObtained:
				t.NotObtained++
				complete = false
				reason, _, _ := strings.Cut(m.Reason, ":")
				if strings.HasPrefix(m.Reason, "asked for") {
					t.Asked++
					reason = "asked for but not in the answer"
				}
				t.Reasons[reason]++
			default: // carried by an answer: asked for and received
				t.Asked++
				t.Received++
				if m.Status == contract.MediaStored {
					t.Stored++
				} else {
					complete = false
				}
			}
		}
		if r.Liveness != nil && r.Liveness.Procedure == megvii.ProcedureSelfie && r.Outcome != contract.OutcomeNotVerified {
			t.Selfies++
			if complete && any {
				t.SelfiesComplete++
			}
		}
	}
	return t
}

func (t imageTally) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Megvii images: %d the flows produced, %d asked for, %d received (%d stored), %d not obtained",
		t.Produced, t.Asked, t.Received, t.Stored, t.NotObtained)
	if len(t.Reasons) > 0 {
		rs := make([]string, 0, len(t.Reasons))
		for r, n := range t.Reasons {
			rs = append(rs, fmt.Sprintf("%d %s", n, r))
		}
		sort.Strings(rs)
		fmt.Fprintf(&b, " (%s)", strings.Join(rs, "; "))
	}
	fmt.Fprintf(&b, "\nselfie verifications with all their images stored: %d of %d", t.SelfiesComplete, t.Selfies)
	return b.String()
}
