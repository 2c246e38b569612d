package archiver

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// TestMegviiCallbackWithoutProcedureType: 002's liveness_result table and
// its selfie example carry no procedure_type. A record built from such a
// callback (get_result gave nothing) takes the procedure from the details'
// shape (face_front, face_side: selfie), says it was inferred, and lists the
// two selfies, not image_best, as not obtained.
func TestMegviiCallbackWithoutProcedureType(t *testing.T) {
	schema := schematest.Compile(t)
	m, lr := megviiSelfieExamples(t)
	if _, has := lr["procedure_type"]; has {
		t.Fatal("002's selfie example has procedure_type: the test's premise is gone")
	}
	lr["result"] = "PASS"
	id := "m-noproc"
	m["status"], m["liveness_result"], m["biz_info"] = "OK", lr, map[string]any{"biz_id": id}
	delete(m, "images")
	data := string(mustJSON(t, m))

	a := newTest(t, objstore.NewMemory(), nil)
	ctx := context.Background()
	r := callbackResponse(id, data)
	cid := r.ID()
	if _, err := a.ArchiveResponse(ctx, cid, r); err != nil {
		t.Fatal(err)
	}
	term := terminal(contract.Megvii, id, contract.OutcomeFailed)
	term.Reason, term.FlowStatus, term.Responses = "window closed after failures: timeout", "OK", []string{cid}
	raw, _ := json.Marshal(term)
	rec, err := a.Finish(ctx, term, raw)
	if err != nil {
		t.Fatal(err)
	}
	schematest.Validate(t, schema, mustJSON(t, rec))
	if rec.Liveness == nil || rec.Liveness.Procedure != "selfie" || !rec.Liveness.ProcedureInferred {
		t.Errorf("liveness %+v, want procedure selfie, inferred", rec.Liveness)
	}
	got := map[string]string{}
	for _, md := range rec.Media {
		got[md.Kind] = md.Status
	}
	want := map[string]string{"selfie_front": "not_obtained", "selfie_side": "not_obtained", "idcard_front": "not_obtained", "idcard_back": "not_obtained"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("media %s: %q, want %q (all %v)", k, got[k], v, got)
		}
	}
	if _, ok := got["image_best"]; ok {
		t.Errorf("image_best listed for a selfie flow: %v", got)
	}
}
