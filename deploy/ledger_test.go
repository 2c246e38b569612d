package deploy

import "testing"

// The ledger runs as its own ServiceAccount, faceharvest-ledger. The base
// mounts the store's static keys; the aws-workload-identity component
// removes them, as for the archiver and the harvester, so that the SDK's
// default chain finds the role bound to that ServiceAccount. The log's
// signing key stays mounted either way.
func TestLedgerStoreCredentials(t *testing.T) {
	for _, c := range []struct {
		components []string
		keys       bool
	}{{nil, true}, {[]string{"aws-workload-identity"}, false}} {
		r := renderWith(t, c.components...)
		d := r.deployments["faceharvest-ledger"]
		if d == nil {
			t.Fatal("no ledger")
		}
		p := d.Spec.Template.Spec
		if p.ServiceAccountName != "faceharvest-ledger" {
			t.Errorf("%v: the ledger runs as %q", c.components, p.ServiceAccountName)
		}
		env := map[string]bool{}
		for _, e := range p.Containers[0].Env {
			env[e.Name] = true
		}
		volumes := map[string]string{}
		for _, v := range p.Volumes {
			if v.Secret != nil {
				volumes[v.Name] = v.Secret.SecretName
			}
		}
		mounts := map[string]bool{}
		for _, m := range p.Containers[0].VolumeMounts {
			mounts[m.Name] = true
		}
		static := []bool{env["AWS_ACCESS_KEY_ID_FILE"], env["AWS_SECRET_ACCESS_KEY_FILE"], volumes["secrets"] == "faceharvest-store", mounts["secrets"]}
		for i, got := range static {
			if got != c.keys {
				t.Errorf("%v: static store key piece %d present %v, want %v (env %v, volumes %v)", c.components, i, got, c.keys, env, volumes)
			}
		}
		if !env["FACEHARVEST_LEDGER_SIGNING_KEY_FILE"] || volumes["signing-key"] != "faceharvest-ledger" || !mounts["signing-key"] {
			t.Errorf("%v: the signing key is not mounted (env %v, volumes %v)", c.components, env, volumes)
		}
	}
}
