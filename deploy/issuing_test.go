package deploy

import (
	"strings"
	"testing"
)

// The base gives ingest no vendor credentials, so its issuing routes answer
// 404; the token-issuing component mounts them from ingest's Secret, each
// _FILE variable naming a key of the mounted Secret, and keeps the keys the
// base mounts.
func TestTokenIssuingComponent(t *testing.T) {
	creds := map[string]string{
		"FACEHARVEST_MEGVII_API_KEY_FILE":   "megvii-api-key",
		"FACEHARVEST_BAIDU_API_KEY_FILE":    "baidu-api-key",
		"FACEHARVEST_BAIDU_SECRET_KEY_FILE": "baidu-secret-key",
	}
	for _, c := range []struct {
		components []string
		issuing    bool
	}{{nil, false}, {[]string{"token-issuing"}, true}} {
		d := renderWith(t, c.components...).deployments["faceharvest-ingest"]
		if d == nil {
			t.Fatal("no ingest Deployment")
		}
		p := d.Spec.Template.Spec
		mounted := map[string]string{} // file path -> Secret key
		for _, m := range p.Containers[0].VolumeMounts {
			for _, v := range p.Volumes {
				if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == "faceharvest-ingest" {
					for _, it := range v.Secret.Items {
						mounted[m.MountPath+"/"+it.Path] = it.Key
					}
				}
			}
		}
		env := map[string]string{}
		for _, e := range p.Containers[0].Env {
			env[e.Name] = e.Value
		}
		for name, key := range creds {
			file, set := env[name]
			if set != c.issuing {
				t.Errorf("%v: %s set %v, want %v", c.components, name, set, c.issuing)
				continue
			}
			if set && mounted[file] != key {
				t.Errorf("%v: %s=%s is not the key %s of the mounted Secret (mounted %v)", c.components, name, file, key, mounted)
			}
		}
		for _, key := range []string{"megvii-api-secret", "ingest-tokens", "landing-key"} {
			found := false
			for f, k := range mounted {
				found = found || (k == key && strings.HasSuffix(f, "/"+key))
			}
			if !found {
				t.Errorf("%v: the Secret's key %s is no longer mounted", c.components, key)
			}
		}
	}
}
