package contract_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
)

// The schema accepts a minimal record and rejects what breaks it.
func TestRecordSchema(t *testing.T) {
	s := schematest.Compile(t)
	base := contract.Record{Schema: contract.RecordSchemaVersion, Vendor: contract.Megvii, VerificationID: "b1", Outcome: contract.OutcomeExpired,
		FaceMatch: []contract.FaceMatch{}, Attempts: []contract.Attempt{}, Media: []contract.MediaRef{}, Problems: []string{}, Responses: []contract.ResponseIn{},
		Times: contract.RecordTimes{DecidedAt: time.Unix(1700000000, 0).UTC(), ArchivedAt: time.Unix(1700000001, 0).UTC()}}
	b, _ := json.Marshal(base)
	schematest.Validate(t, s, b)
	for name, edit := range map[string]func(*contract.Record){
		"unknown outcome": func(r *contract.Record) { r.Outcome = "maybe" },
		"unknown vendor":  func(r *contract.Record) { r.Vendor = "acme" },
		"stored media without key": func(r *contract.Record) {
			r.Media = []contract.MediaRef{{Kind: "image_best", Endpoint: "get_result", Status: contract.MediaStored}}
		},
		"bad sha256": func(r *contract.Record) {
			r.Evidence = &contract.ObjectRef{Key: "k", SHA256: "xyz", Size: 1, ContentType: "application/json"}
		},
	} {
		r := base
		edit(&r)
		b, _ := json.Marshal(r)
		v, _ := schematest.Valid(s, b)
		if v {
			t.Errorf("%s: accepted", name)
		}
	}
	m, err := base.Message("/archiver")
	if err != nil || string(m.Key) != "megvii:b1" || !strings.Contains(string(m.Value), contract.RecordSchemaVersion) {
		t.Fatal(err, string(m.Key))
	}
	env, err := contract.FromMessage(m)
	if err != nil || env.ID != contract.RecordID(contract.Megvii, "b1") || env.Type != contract.TypeRecord {
		t.Fatal(env, err)
	}
}
