package main

import (
	"fmt"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// The workload's plan: which verifications devstack creates, how each one
// enters the pipeline, and which record it must end with. planWorkload is
// pure: the same counts give the same plan, in the order it is carried out.

// class is what a verification of the workload stands for.
type class string

const (
	// classMegviiCallback: the simulator sends the callback; harvested with
	// most of the window left.
	classMegviiCallback class = "megvii callback"
	// classMegviiNoCallback: the callback never comes; harvested at the
	// last chance.
	classMegviiNoCallback class = "megvii no callback"
	// classMegviiExpired: registered after its window closed; expired.
	classMegviiExpired class = "megvii expired"
	// classBaiduCompletes: the user completes the flow; harvested.
	classBaiduCompletes class = "baidu completes"
	// classBaiduNever: the user never completes it; lost (after its two
	// hours an unused token answers as one used with a mismatched
	// access_token, so whether a verification happened is unknown).
	classBaiduNever class = "baidu never"
)

// entry is how a verification reaches the pipeline.
type entry string

const (
	// entryIssued: issued through ingest (POST /v1/{vendor}/tokens), which
	// calls the vendor and registers the token in the same request.
	entryIssued entry = "issued"
	// entryRegistered: created at the vendor (the simulator's /sim/ API)
	// and registered with POST /v1/tokens, as a customer that issues its
	// own tokens does.
	entryRegistered entry = "registered"
	// entryCallbackOnly: created at the vendor and never registered; only
	// its callback tells ingest about it.
	entryCallbackOnly entry = "callback only"
)

// planned is one verification of the workload.
type planned struct {
	Vendor contract.Vendor
	// Index numbers the verification in its vendor's series (its biz_no,
	// and which course it takes); -1 for the large ones.
	Index int
	Class class
	Entry entry
	BizNo string
	// Course is what the simulator is told the verification does (POST
	// /sim/{vendor}/verifications); nil when issued through ingest, which
	// gets the simulator's default course.
	Course map[string]any
	// Want is the outcome its record must have.
	Want string
	// Late: registered with an issue time four minutes ago, after its
	// three-minute window closed.
	Late bool
	// Abuse: the verification whose callback the abuse step replays and
	// forges once its record arrived.
	Abuse bool
	// Large: a Megvii answer of about 20 MiB or a 200 MB Baidu video.
	Large bool
}

// callback reports whether ingest is sent the verification's callback,
// so that it must be harvested with most of its window left.
func (p planned) callback() bool { return p.Class == classMegviiCallback }

// planWorkload plans the workload o asks for, in the order it is created:
// the Megvii verifications issued through ingest, the other Megvii ones in
// index order, the Baidu ones in index order, then the large ones.
//
// Megvii 0 … megvii-1 get a callback: the first megvii-unregistered of them
// are never registered; of the rest, every even one is issued through
// ingest (half of those with the simulator's default course), except the
// abuse step's target, the first one registered (or the last when all are
// unregistered). Then megvii-no-callback without a callback, and
// megvii-expired registered late. Every third Megvii verification created
// at the simulator takes the selfie procedure. Baidu 0 … baidu-1 complete
// (baiduIssued says which are issued through ingest; every fourth records
// no video; every fifth fails once and retries on the same token), then
// baidu-never never complete.
func planWorkload(o opts) []planned {
	var plan []planned
	abuse := min(o.megviiUnregistered, o.megvii-1)
	issued := func(i int) bool {
		return i < o.megvii && i >= o.megviiUnregistered && i%2 == 0 && i != abuse
	}
	for i := range o.megvii {
		if issued(i) {
			plan = append(plan, planned{Vendor: contract.Megvii, Index: i, Class: classMegviiCallback, Entry: entryIssued,
				BizNo: fmt.Sprintf("loan-m%03d", i), Want: contract.OutcomeHarvested})
		}
	}
	for i := range o.megvii + o.megviiNoCB + o.megviiEx {
		if !issued(i) {
			plan = append(plan, megviiAtVendor(o, i, i == abuse))
		}
	}
	for i := range o.baidu + o.baiduNever {
		plan = append(plan, baiduPlanned(o, i))
	}
	if o.large {
		plan = append(plan,
			planned{Vendor: contract.Megvii, Index: -1, Class: classMegviiCallback, Entry: entryRegistered, BizNo: "loan-large",
				Course: map[string]any{"biz_no": "loan-large", "final_after": "20s", "start_after": "2s", "image_bytes": 5 << 20},
				Want:   contract.OutcomeHarvested, Large: true},
			planned{Vendor: contract.Baidu, Index: -1, Class: classBaiduCompletes, Entry: entryRegistered, BizNo: "loan-large",
				Course: map[string]any{"complete_after": "15s", "media": "process_video", "video_bytes": 200_000_000},
				Want:   contract.OutcomeHarvested, Large: true})
	}
	return plan
}

// megviiAtVendor plans Megvii verification i, created at the simulator.
func megviiAtVendor(o opts, i int, abuse bool) planned {
	bizNo := fmt.Sprintf("loan-m%03d", i)
	course := map[string]any{"biz_no": bizNo, "final_after": "20s", "start_after": "2s"}
	if i%3 == 1 {
		course["procedure"] = "selfie" // two selfies and the ID card: all come with return_image=4
	}
	p := planned{Vendor: contract.Megvii, Index: i, Class: classMegviiCallback, Entry: entryRegistered, BizNo: bizNo, Course: course,
		Want: contract.OutcomeHarvested, Abuse: abuse}
	switch {
	case i >= o.megvii+o.megviiNoCB:
		course["no_callback"] = true
		p.Class, p.Want, p.Late = classMegviiExpired, contract.OutcomeExpired, true
	case i >= o.megvii:
		course["no_callback"] = true
		p.Class = classMegviiNoCallback
	case i < o.megviiUnregistered:
		p.Entry = entryCallbackOnly
	}
	return p
}

// baiduPlanned plans Baidu verification i. Most accounts record the flow
// (media/query answers a video); some do not (001: recording is off by
// default); some users fail once and retry on the same token (001: the URL
// stays valid on failure).
func baiduPlanned(o opts, i int) planned {
	p := planned{Vendor: contract.Baidu, Index: i, Class: classBaiduCompletes, Entry: entryRegistered, BizNo: fmt.Sprintf("loan-b%03d", i),
		Want: contract.OutcomeHarvested}
	switch {
	case baiduIssued(i, o.baidu):
		p.Entry = entryIssued
	case i >= o.baidu:
		p.Class, p.Want = classBaiduNever, contract.OutcomeLost
		p.Course = map[string]any{"never_completes": true}
	default:
		p.Course = map[string]any{"complete_after": "15s", "media": "process_video"}
		if i%4 == 3 {
			p.Course["media"] = "none"
		}
		if i%5 == 1 {
			p.Course["attempts"], p.Course["attempt_gap"] = 2, "10s"
		}
	}
	return p
}

// planCounts counts a plan's verifications by class and by entry.
func planCounts(plan []planned) (byClass map[class]int, byEntry map[entry]int) {
	byClass, byEntry = map[class]int{}, map[entry]int{}
	for _, p := range plan {
		byClass[p.Class]++
		byEntry[p.Entry]++
	}
	return byClass, byEntry
}
