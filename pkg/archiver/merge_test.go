package archiver

import (
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// TestMergeOrder: which answer's facts the record takes when two answers
// state the same fact. getall wins over every other answer and the later
// getall over the earlier; a Megvii callback loses to every answer; other
// answers tie and the one harvested first wins.
func TestMergeOrder(t *testing.T) {
	at := func(endpoint string, minute int) *Part {
		name := endpoint + "@" + time.Duration(minute*int(time.Minute)).String()
		return &Part{ID: name, Endpoint: endpoint, HTTPStatus: 200, FetchedAt: t0.Add(time.Duration(minute) * time.Minute),
			Facts: &Facts{BizNo: name, FlowStatus: name}}
	}
	for _, c := range []struct {
		name          string
		winner, loser *Part
		tie           bool // neither outranks the other: the first harvested wins
	}{
		{"getall over detail harvested first", at("result/getall", 2), at("result/detail", 1), false},
		{"getall over detail harvested later", at("result/getall", 1), at("result/detail", 2), false},
		{"getall over media/query", at("result/getall", 2), at("result/media/query", 1), false},
		{"the later getall over the earlier", at("result/getall", 5), at("result/getall", 1), false},
		{"get_result over the callback received first", at("get_result", 2), at("callback", 1), false},
		{"get_result over the callback received later", at("get_result", 1), at("callback", 2), false},
		{"detail over a callback", at("result/detail", 3), at("callback", 1), false},
		{"the first detail over a later one", at("result/detail", 1), at("result/detail", 2), true},
		{"detail over media/query harvested later", at("result/detail", 1), at("result/media/query", 2), true},
		{"the first get_result over a later one", at("get_result", 1), at("get_result", 2), true},
		{"the first callback over a later one", at("callback", 1), at("callback", 2), true},
		{"of two getall fetched at once, the first", at("result/getall", 1), at("result/getall", 1), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := outranks(c.winner, c.loser); got == c.tie {
				t.Errorf("outranks(%s, %s) = %v", c.winner.ID, c.loser.ID, got)
			}
			if outranks(c.loser, c.winner) {
				t.Errorf("outranks(%s, %s) = true", c.loser.ID, c.winner.ID)
			}
			// Whatever order they were harvested in (ties: the winner
			// first), the record states the winner's facts.
			orders := [][]*Part{{c.winner, c.loser}}
			if !c.tie {
				orders = append(orders, []*Part{c.loser, c.winner})
			}
			for _, parts := range orders {
				term := terminal(contract.Megvii, "merge", contract.OutcomeHarvested)
				rec := buildRecord(term, Evidence{Responses: parts}, contract.ObjectRef{}, t0, true)
				if rec.BizNo != c.winner.Facts.BizNo {
					t.Errorf("answers %s, %s: biz_no %q, want the winner's %q", parts[0].ID, parts[1].ID, rec.BizNo, c.winner.Facts.BizNo)
				}
			}
		})
	}
}

// TestFillFacts: each fact comes from the first answer that states it;
// liveness scores the first left out come from a later one.
func TestFillFacts(t *testing.T) {
	yes, no := true, false
	s1, s2, s3 := 0.5, 0.7, 0.9
	first := &Part{Facts: &Facts{Passed: &yes, Liveness: &contract.Liveness{Result: "unknown", Attacks: []contract.Attack{}},
		FaceMatch: []contract.FaceMatch{{Source: "baidu_verify", Score: &s1}}, Attempts: []contract.Attempt{{Order: 1}}}}
	second := &Part{Facts: &Facts{FlowStatus: "success", Passed: &no, Liveness: &contract.Liveness{Result: "pass", Score: &s2, SpoofingScore: &s3},
		FaceMatch: []contract.FaceMatch{{Source: "baidu_detail", Score: &s2}}, Identity: &contract.Identity{Name: "张三", IDNumber: "110101199001011234"},
		Attempts: []contract.Attempt{{Order: 1}, {Order: 2}}, Problem: "second's problem"}}
	rec := contract.Record{Problems: []string{}, FaceMatch: []contract.FaceMatch{}, Attempts: []contract.Attempt{}}
	from := fillFacts(&rec, []*Part{first, second}, true)
	if from != first || len(rec.Attempts) != 1 {
		t.Errorf("attempts %+v from %p, want the first answer's (%p)", rec.Attempts, from, first)
	}
	if rec.Passed != &yes || rec.FlowStatus != "success" {
		t.Errorf("passed %v flow %q: want the first's verdict and the second's flow (the first has none)", *rec.Passed, rec.FlowStatus)
	}
	if l := rec.Liveness; l == nil || l.Result != "unknown" || l.Score != &s2 || l.SpoofingScore != &s3 {
		t.Errorf("liveness %+v: want the first's, with the second's scores", l)
	}
	if first.Facts.Liveness.Score != nil {
		t.Errorf("the first answer's liveness was changed: %+v", first.Facts.Liveness)
	}
	if len(rec.FaceMatch) != 1 || rec.FaceMatch[0].Source != "baidu_verify" {
		t.Errorf("face match %+v", rec.FaceMatch)
	}
	if id := rec.Identity; id == nil || !id.Masked || id.Name != "张*" {
		t.Errorf("identity %+v", id)
	}
	if len(rec.Problems) != 1 || rec.Problems[0] != "second's problem" {
		t.Errorf("problems %q", rec.Problems)
	}
}
