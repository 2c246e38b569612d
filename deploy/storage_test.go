package deploy

import (
	"testing"
)

// renderWith builds the base with the given components through a
// throw-away overlay.
func renderWith(t *testing.T, components ...string) rendered {
	t.Helper()
	extra := ""
	if len(components) > 0 {
		extra = "components:\n"
		for _, c := range components {
			extra += "  - @k8s/components/" + c + "\n"
		}
	}
	return decode(t, kustomizeWrapped(t, "deploy/k8s/base", extra))
}

// The archiver runs as its own ServiceAccount (an IAM role binds to it:
// IRSA or EKS Pod Identity). The base mounts static keys; the
// aws-workload-identity component removes them so that the SDK's default
// chain finds the role, and the store settings are in the ConfigMap.
func TestArchiverStoreCredentials(t *testing.T) {
	for _, c := range []struct {
		components []string
		keys       bool
	}{{nil, true}, {[]string{"aws-workload-identity"}, false}} {
		r := renderWith(t, c.components...)
		d := r.deployments["faceharvest-archiver"]
		if d == nil {
			t.Fatal("no archiver")
		}
		p := d.Spec.Template.Spec
		if p.ServiceAccountName != "faceharvest-archiver" || r.kinds["v1/ServiceAccount"] == 0 {
			t.Errorf("%v: the archiver runs as %q", c.components, p.ServiceAccountName)
		}
		env := map[string]bool{}
		for _, e := range p.Containers[0].Env {
			env[e.Name] = true
		}
		secret := false
		for _, v := range p.Volumes {
			secret = secret || (v.Secret != nil && v.Secret.SecretName == "faceharvest-store")
		}
		mounted := false
		for _, m := range p.Containers[0].VolumeMounts {
			mounted = mounted || m.Name == "secrets"
		}
		if got := env["AWS_ACCESS_KEY_ID_FILE"] && env["AWS_SECRET_ACCESS_KEY_FILE"] && secret && mounted; got != c.keys {
			t.Errorf("%v: static keys mounted %v, want %v (env %v)", c.components, got, c.keys, env)
		}
		if !c.keys && (env["AWS_ACCESS_KEY_ID_FILE"] || env["AWS_SECRET_ACCESS_KEY_FILE"] || secret || mounted) {
			t.Errorf("%v: a piece of the static keys is left", c.components)
		}
		cm := r.configMaps[configRef(d)]
		if cm == nil {
			t.Fatalf("%v: the archiver names no rendered ConfigMap", c.components)
		}
		for _, k := range []string{"FACEHARVEST_S3_SSE", "FACEHARVEST_S3_SSE_KMS_KEY_ID", "FACEHARVEST_S3_OBJECT_LOCK_MODE", "FACEHARVEST_S3_OBJECT_LOCK_DAYS"} {
			if _, ok := cm.Data[k]; !ok {
				t.Errorf("the ConfigMap lacks %s", k)
			}
		}
	}
}
