package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// renderWith builds the base with the given components through a
// throw-away overlay.
func renderWith(t *testing.T, components ...string) rendered {
	t.Helper()
	bin := filepath.Join(root(t), "bin", "tools", "kustomize")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kustomize missing: make test installs it")
		}
		t.Skip("kustomize not installed (make kustomize)")
	}
	dir := t.TempDir()
	rel := func(p ...string) string { // kustomize takes no absolute paths
		r, err := filepath.Rel(dir, filepath.Join(append([]string{root(t), "deploy", "k8s"}, p...)...))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - " + rel("base") + "\n"
	if len(components) > 0 {
		k += "components:\n"
		for _, c := range components {
			k += "  - " + rel("components", c) + "\n"
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "build", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kustomize build: %v\n%s", err, out)
	}
	var docs [][]byte
	for _, d := range bytes.Split(out, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return decode(t, docs)
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
		cm := r.configMaps["faceharvest-config"]
		for _, k := range []string{"FACEHARVEST_S3_SSE", "FACEHARVEST_S3_SSE_KMS_KEY_ID", "FACEHARVEST_S3_OBJECT_LOCK_MODE", "FACEHARVEST_S3_OBJECT_LOCK_DAYS"} {
			if _, ok := cm.Data[k]; !ok {
				t.Errorf("the ConfigMap lacks %s", k)
			}
		}
	}
}
