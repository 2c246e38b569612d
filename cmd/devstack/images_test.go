package main

import (
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// TestImageTally: the summary's image counts come from the records' media:
// carried images are asked for and received, not-obtained ones are asked for
// only when the reason says so; a selfie verification is complete when every
// image it produced is stored.
func TestImageTally(t *testing.T) {
	media := func(kind, status, reason string) contract.MediaRef {
		return contract.MediaRef{Kind: kind, Endpoint: "get_result", Status: status, Reason: reason}
	}
	selfie := &contract.Liveness{Result: "pass", Procedure: "selfie", Attacks: []contract.Attack{}}
	recs := map[string]contract.Record{
		"a": {Vendor: contract.Megvii, Outcome: contract.OutcomeHarvested, Liveness: selfie, Media: []contract.MediaRef{
			media("selfie_front", "stored", ""), media("selfie_side", "stored", ""), media("idcard_front", "stored", "")}},
		"b": {Vendor: contract.Megvii, Outcome: contract.OutcomeHarvested, Liveness: selfie, Media: []contract.MediaRef{
			media("selfie_front", "stored", ""), media("selfie_side", "not_obtained", "asked for (return_image=4) but not in the answer")}},
		"c": {Vendor: contract.Megvii, Outcome: contract.OutcomeHarvestedWithoutImages, Media: []contract.MediaRef{
			media("image_best", "not_obtained", "no usable get_result answer: expired")}},
		"d": {Vendor: contract.Baidu, Outcome: contract.OutcomeHarvested, Media: []contract.MediaRef{{Kind: "face_image", Endpoint: "result/getall", Status: "stored"}}},
	}
	got := tallyImages(recs).String()
	want := "Megvii images: 6 the flows produced, 5 asked for, 4 received (4 stored), 2 not obtained (1 asked for but not in the answer; 1 no usable get_result answer)\n" +
		"selfie verifications with all their images stored: 1 of 2"
	if got != want {
		t.Fatalf("tally\n%s\nwant\n%s", got, want)
	}
}
