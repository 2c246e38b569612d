package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// TestPlanWorkload: which verification goes where, in the order created,
// with a small workload that has one of each rule.
func TestPlanWorkload(t *testing.T) {
	o := opts{megvii: 6, megviiUnregistered: 2, megviiNoCB: 1, megviiEx: 1, baidu: 6, baiduNever: 1, large: true}
	const (
		H, E, L                = contract.OutcomeHarvested, contract.OutcomeExpired, contract.OutcomeLost
		cb, nocb, exp, bc, bn  = classMegviiCallback, classMegviiNoCallback, classMegviiExpired, classBaiduCompletes, classBaiduNever
		iss, reg, only         = entryIssued, entryRegistered, entryCallbackOnly
		M, B                   = contract.Megvii, contract.Baidu
		late, abuse, big, none = "late", "abuse", "large", ""
	)
	want := []struct {
		vendor contract.Vendor
		index  int
		class  class
		entry  entry
		bizNo  string
		want   string
		flag   string
		course string // the course's settings beyond the default, sorted
	}{
		{M, 4, cb, iss, "loan-m004", H, none, "<issued>"},
		{M, 0, cb, only, "loan-m000", H, none, ""},
		{M, 1, cb, only, "loan-m001", H, none, "procedure=selfie"},
		{M, 2, cb, reg, "loan-m002", H, abuse, ""},
		{M, 3, cb, reg, "loan-m003", H, none, ""},
		{M, 5, cb, reg, "loan-m005", H, none, ""},
		{M, 6, nocb, reg, "loan-m006", H, none, "no_callback=true"},
		{M, 7, exp, reg, "loan-m007", E, late, "no_callback=true procedure=selfie"},
		{B, 0, bc, iss, "loan-b000", H, none, "<issued>"},
		{B, 1, bc, reg, "loan-b001", H, none, "attempt_gap=10s attempts=2"},
		{B, 2, bc, iss, "loan-b002", H, none, "<issued>"},
		{B, 3, bc, reg, "loan-b003", H, none, "media=none"},
		{B, 4, bc, iss, "loan-b004", H, none, "<issued>"},
		{B, 5, bc, reg, "loan-b005", H, none, ""},
		{B, 6, bn, reg, "loan-b006", L, none, "never_completes=true"},
		{M, -1, cb, reg, "loan-large", H, big, "image_bytes=5242880"},
		{B, -1, bc, reg, "loan-large", H, big, "video_bytes=200000000"},
	}
	got := planWorkload(o)
	if len(got) != len(want) {
		t.Fatalf("%d planned, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		p := got[i]
		flag := none
		switch {
		case p.Late:
			flag = late
		case p.Abuse:
			flag = abuse
		case p.Large:
			flag = big
		}
		if p.Vendor != w.vendor || p.Index != w.index || p.Class != w.class || p.Entry != w.entry || p.BizNo != w.bizNo || p.Want != w.want || flag != w.flag {
			t.Errorf("%d: %s %d %q %q %s %s %q, want %s %d %q %q %s %s %q", i, p.Vendor, p.Index, p.Class, p.Entry, p.BizNo, p.Want, flag,
				w.vendor, w.index, w.class, w.entry, w.bizNo, w.want, w.flag)
		}
		if c := courseExtras(p); c != w.course {
			t.Errorf("%d (%s %d): course %q, want %q", i, p.Vendor, p.Index, c, w.course)
		}
		if p.callback() != (p.Class == classMegviiCallback) {
			t.Errorf("%d: callback %v for %s", i, p.callback(), p.Class)
		}
	}
}

// courseExtras names a planned course's settings beyond the simulator's
// default course of its vendor, sorted; "<issued>" when there is none.
func courseExtras(p planned) string {
	if p.Course == nil {
		return "<issued>"
	}
	def := map[string]any{"complete_after": "15s", "media": "process_video"}
	if p.Vendor == contract.Megvii {
		def = map[string]any{"biz_no": p.BizNo, "final_after": "20s", "start_after": "2s"}
	}
	if p.Class == classBaiduNever {
		def = map[string]any{}
	}
	var out []string
	for _, k := range sortedKeys(p.Course) {
		if v := p.Course[k]; def[k] != v {
			out = append(out, fmt.Sprintf("%s=%v", k, v))
		}
	}
	for k := range def {
		if _, ok := p.Course[k]; !ok {
			out = append(out, "without "+k)
		}
	}
	return strings.Join(out, " ")
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range maps.Keys(m) {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestPlanWorkloadCounts: the counts of the end-to-end test's workload
// (TestPipelineEndToEndWithKills) and the defaults, by class and by entry;
// and edge cases: no Megvii verification at all, and every one with a
// callback unregistered (the abuse target is then the last of them).
func TestPlanWorkloadCounts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       opts
		classes map[class]int
		entries map[entry]int
		abuse   int // the abuse target's Megvii index, -1 for none
	}{
		{"end-to-end", opts{megvii: 30, megviiUnregistered: 5, megviiEx: 3, baidu: 12, baiduNever: 2, large: true},
			map[class]int{classMegviiCallback: 31, classMegviiExpired: 3, classBaiduCompletes: 13, classBaiduNever: 2},
			map[entry]int{entryCallbackOnly: 5, entryIssued: 12 + 5, entryRegistered: 49 - 5 - 17}, 5},
		{"defaults", opts{megvii: 60, megviiNoCB: 10, megviiUnregistered: 5, megviiEx: 5, baidu: 30, baiduNever: 5},
			map[class]int{classMegviiCallback: 60, classMegviiNoCallback: 10, classMegviiExpired: 5, classBaiduCompletes: 30, classBaiduNever: 5},
			map[entry]int{entryCallbackOnly: 5, entryIssued: 27 + 12, entryRegistered: 110 - 5 - 39}, 5},
		{"no megvii", opts{megviiUnregistered: 5, baidu: 2},
			map[class]int{classBaiduCompletes: 2}, map[entry]int{entryIssued: 1, entryRegistered: 1}, -1},
		{"all unregistered", opts{megvii: 3, megviiUnregistered: 5},
			map[class]int{classMegviiCallback: 3}, map[entry]int{entryCallbackOnly: 3}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := planWorkload(tc.o)
			classes, entries := planCounts(plan)
			if !maps.Equal(classes, tc.classes) || !maps.Equal(entries, tc.entries) {
				t.Errorf("classes %v entries %v, want %v %v", classes, entries, tc.classes, tc.entries)
			}
			abuse := -1
			for _, p := range plan {
				if p.Abuse {
					if abuse != -1 || p.Vendor != contract.Megvii {
						t.Errorf("a second abuse target: %+v", p)
					}
					abuse = p.Index
				}
			}
			if abuse != tc.abuse {
				t.Errorf("abuse target %d, want %d", abuse, tc.abuse)
			}
			seen := map[string]bool{}
			for _, p := range plan {
				if !p.Large && seen[p.BizNo] {
					t.Errorf("biz_no %s planned twice", p.BizNo)
				}
				seen[p.BizNo] = true
			}
		})
	}
}

// TestPlanChaos: the steps in their order and windows, the same plan for
// the same seed, replicas chosen among the replicas.
func TestPlanChaos(t *testing.T) {
	plan := planChaos(7, 2)
	kinds := []chaosKind{chaosKill, chaosKillStable, chaosKill, chaosKillLedger, chaosStopBroker, chaosStoreOutage}
	if len(plan) != len(kinds) {
		t.Fatalf("%d steps: %v", len(plan), plan)
	}
	windows := [][2]time.Duration{{3 * time.Second, 9 * time.Second}, {10 * time.Second, 16 * time.Second}, {17 * time.Second, 22 * time.Second}, {}, {}, {}}
	harvested := []int{0, 0, 0, 2, 3, 10}
	targets := []string{"archiver", "harvester", "ingest", "ledger", "devkafka", "store"}
	for i, st := range plan {
		if st.Kind != kinds[i] || st.Harvested != harvested[i] || !strings.HasPrefix(st.Target, targets[i]) {
			t.Errorf("step %d: %+v, want %s %s… after %d harvested", i, st, kinds[i], targets[i], harvested[i])
		}
		if w := windows[i]; st.At < w[0] || (w[1] > 0 && st.At >= w[1]) {
			t.Errorf("step %d at %s, want in [%s, %s)", i, st.At, w[0], w[1])
		}
	}
	for range 20 {
		if again := planChaos(7, 2); fmt.Sprint(again) != fmt.Sprint(plan) || again[0].At != plan[0].At {
			t.Fatalf("seed 7 planned %v, then %v", plan, again)
		}
	}
	targetsSeen := map[string]bool{}
	for seed := range uint64(50) {
		p := planChaos(seed+1, 2)
		targetsSeen[p[0].Target], targetsSeen[p[1].Target] = true, true
		if one := planChaos(seed+1, 1); one[0].Target != "archiver" || one[1].Target != "harvester" {
			t.Fatalf("one replica: %v", one)
		}
	}
	for _, want := range []string{"archiver", "archiver-2", "harvester", "harvester-2"} {
		if !targetsSeen[want] {
			t.Errorf("50 seeds never chose %s: %v", want, targetsSeen)
		}
	}
	st := chaosStep{At: 5 * time.Second, Harvested: 3}
	for _, tc := range []struct {
		elapsed   time.Duration
		harvested int
		due       bool
	}{{4 * time.Second, 10, false}, {5 * time.Second, 10, false}, {6 * time.Second, 2, false}, {6 * time.Second, 3, true}} {
		if got := st.due(tc.elapsed, tc.harvested); got != tc.due {
			t.Errorf("due after %s with %d harvested: %v", tc.elapsed, tc.harvested, got)
		}
	}
}
