package deploy

import (
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

type kafkaUser struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Authentication struct {
			Type string `json:"type"`
		} `json:"authentication"`
		Authorization struct {
			Type string `json:"type"`
			ACLs []struct {
				Resource struct {
					Type        string `json:"type"`
					Name        string `json:"name"`
					PatternType string `json:"patternType"`
				} `json:"resource"`
				Operations []string `json:"operations"`
			} `json:"acls"`
		} `json:"authorization"`
	} `json:"spec"`
}

// may reports whether u's ACLs allow op on the topic or group name.
func (u *kafkaUser) may(typ, name, op string) bool {
	for _, a := range u.Spec.Authorization.ACLs {
		if a.Resource.Type == typ && a.Resource.Name == name && (a.Resource.PatternType == "" || a.Resource.PatternType == "literal") && slices.Contains(a.Operations, op) {
			return true
		}
	}
	return false
}

// TestKafkaUserPerComponent: each component has its own Kafka user, whose
// ACLs grant what it does and nothing more: a compromised ingest cannot
// read faceid.results.raw nor forge audit events; the auditor can only
// write audit events; and the production overlay gives each Deployment its
// own user name and password.
func TestKafkaUserPerComponent(t *testing.T) {
	users := map[string]*kafkaUser{}
	for _, d := range kustomize(t, "deploy/k8s/kafkausers") {
		var u kafkaUser
		if err := yaml.UnmarshalStrict(d, &u); err != nil {
			t.Fatal(err)
		}
		if u.Kind != "KafkaUser" || u.Spec.Authentication.Type != "scram-sha-512" || u.Spec.Authorization.Type != "simple" {
			t.Errorf("%s: %s, authentication %q, authorization %q", u.Metadata.Name, u.Kind, u.Spec.Authentication.Type, u.Spec.Authorization.Type)
		}
		users[u.Metadata.Name] = &u
	}
	type grant struct{ typ, name, op string }
	want := map[string][]grant{
		"faceharvest-ingest": {{"topic", "faceid.events", "Write"}, {"topic", "faceid.ingest.idempotency", "Write"}, {"topic", "faceid.ingest.idempotency", "Read"}},
		"faceharvest-harvester": {{"topic", "faceid.events", "Read"}, {"group", "faceharvest-harvester", "Read"}, {"topic", "faceid.harvester.state", "Read"},
			{"topic", "faceid.harvester.state", "Write"}, {"topic", "faceid.results.raw", "Write"}, {"topic", "faceid.results.raw", "Read"}, {"topic", "faceid.dlq", "Write"}},
		"faceharvest-archiver": {{"topic", "faceid.results.raw", "Read"}, {"group", "faceharvest-archiver", "Read"}, {"topic", "faceid.results", "Write"}, {"topic", "faceid.dlq", "Write"},
			{"topic", "faceid.ledger.leaves", "Write"}},
		"faceharvest-auditor": {{"topic", "faceid.audit", "Write"}},
		"faceharvest-ledger":  {{"topic", "faceid.ledger.leaves", "Read"}, {"group", "faceharvest-ledger", "Read"}, {"topic", "faceid.ledger.checkpoints", "Write"}},
	}
	refused := map[string][]grant{
		"faceharvest-ingest":    {{"topic", "faceid.results.raw", "Read"}, {"topic", "faceid.audit", "Write"}, {"topic", "faceid.results", "Write"}, {"topic", "faceid.harvester.state", "Write"}},
		"faceharvest-harvester": {{"topic", "faceid.audit", "Write"}, {"topic", "faceid.results", "Write"}},
		"faceharvest-archiver":  {{"topic", "faceid.audit", "Write"}, {"topic", "faceid.events", "Write"}},
		"faceharvest-auditor":   {{"topic", "faceid.results.raw", "Read"}, {"topic", "faceid.events", "Write"}, {"topic", "faceid.audit", "Read"}},
		"faceharvest-ledger":    {{"topic", "faceid.ledger.leaves", "Write"}, {"topic", "faceid.results", "Write"}, {"topic", "faceid.audit", "Write"}},
	}
	for name, gs := range want {
		u := users[name]
		if u == nil {
			t.Errorf("no KafkaUser %s", name)
			continue
		}
		for _, g := range gs {
			if !u.may(g.typ, g.name, g.op) {
				t.Errorf("%s may not %s %s %s", name, g.op, g.typ, g.name)
			}
		}
		for _, g := range refused[name] {
			if u.may(g.typ, g.name, g.op) {
				t.Errorf("%s may %s %s %s", name, g.op, g.typ, g.name)
			}
		}
		for _, a := range u.Spec.Authorization.ACLs {
			if a.Resource.Name == "*" || a.Resource.PatternType == "prefix" || slices.Contains(a.Operations, "All") {
				t.Errorf("%s: a wildcard ACL %+v", name, a)
			}
		}
	}
	r := decode(t, kustomize(t, "deploy/k8s/overlays/production"))
	for _, c := range deployed {
		d := r.deployments["faceharvest-"+c]
		env := map[string]string{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		if env["FACEHARVEST_KAFKA_SASL_USERNAME"] != "faceharvest-"+c || env["FACEHARVEST_KAFKA_SASL_PASSWORD_FILE"] == "" {
			t.Errorf("%s: SASL user %q, password file %q; want its own user", c, env["FACEHARVEST_KAFKA_SASL_USERNAME"], env["FACEHARVEST_KAFKA_SASL_PASSWORD_FILE"])
		}
	}
}
