package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/faceharvest/faceharvest/pkg/ops"
)

const monitoringComponent = "deploy/k8s/components/monitoring"

// kustomizeWrapped renders dir the way an operator's own overlay would use
// it: a kustomization listing it as a resource, with extra (components,
// namespace, patches) added, built as kubectl apply -k builds it.
func kustomizeWrapped(t *testing.T, dir, extra string) [][]byte {
	t.Helper()
	wrap := t.TempDir()
	rel := func(p string) string { // kustomize takes no absolute paths
		r, err := filepath.Rel(wrap, filepath.Join(root(t), p))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	extra = strings.ReplaceAll(extra, "@component", rel(monitoringComponent))
	extra = strings.ReplaceAll(extra, "@k8s/", rel("deploy/k8s")+"/")
	k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n%s", rel(dir), extra)
	if err := os.WriteFile(filepath.Join(wrap, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return kustomizeBuild(t, wrap)
}

// kustomizeOverlayWith renders an overlay with components listed in the
// overlay itself, as an operator adds them (docs/operations.md): the overlay's own
// patches then apply to the components' objects too, which a wrapping
// kustomization cannot show. It builds a copy of deploy/k8s.
func kustomizeOverlayWith(t *testing.T, overlay string, components ...string) [][]byte {
	t.Helper()
	k8s := filepath.Join(t.TempDir(), "k8s")
	if err := os.CopyFS(k8s, os.DirFS(filepath.Join(root(t), "deploy", "k8s"))); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(k8s, "overlays", overlay, "kustomization.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\ncomponents:") {
		t.Fatalf("%s lists components already: extend kustomizeOverlayWith", file)
	}
	b = append(b, "\ncomponents:\n"...)
	for _, c := range components {
		b = append(b, "  - ../../components/"+c+"\n"...)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return kustomizeBuild(t, filepath.Join(k8s, "overlays", overlay))
}

// base, dev and production render with and without the monitoring
// component. Without it nothing needs the Prometheus Operator's CRDs, so
// kubectl apply -k works on a cluster without them; with it the
// ServiceMonitor, the PrometheusRule and the dashboard come in the overlay's
// namespace, labelled release for the operator's selector (settable).
func TestRendersWithAndWithoutMonitoring(t *testing.T) {
	for _, dir := range []string{"deploy/k8s/base", "deploy/k8s/overlays/dev", "deploy/k8s/overlays/production"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			plain := decode(t, kustomize(t, dir))
			for gvk := range plain.kinds {
				if strings.HasPrefix(gvk, "monitoring.coreos.com/") {
					t.Errorf("%s renders %s without the monitoring component: apply fails on a cluster without the Prometheus Operator", dir, gvk)
				}
			}
			if plain.deployments["faceharvest-ingest"] == nil {
				t.Fatal("no ingest Deployment")
			}
			ns := plain.deployments["faceharvest-ingest"].Namespace
			nsLine := ""
			if ns != "" {
				nsLine = "namespace: " + ns + "\n"
			}
			for _, c := range []struct {
				name, extra, release string
			}{
				{"default release", "components:\n  - @component\n" + nsLine, "kube-prometheus-stack"},
				{"release set", "components:\n  - @component\n" + nsLine +
					"patches:\n  - target: {group: monitoring.coreos.com}\n    patch: '[{\"op\": \"replace\", \"path\": \"/metadata/labels/release\", \"value\": \"prom\"}]'\n", "prom"},
			} {
				docs := kustomizeWrapped(t, dir, c.extra)
				r := decode(t, docs)
				for _, gvk := range []string{"monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule"} {
					if r.kinds[gvk] == 0 {
						t.Errorf("%s: no %s", c.name, gvk)
					}
				}
				dash := 0
				for _, d := range docs {
					var m struct {
						Kind     string     `json:"kind"`
						Metadata objectMeta `json:"metadata"`
					}
					if err := yaml.Unmarshal(d, &m); err != nil {
						t.Fatal(err)
					}
					if m.Metadata.Namespace != ns {
						t.Errorf("%s: %s %s in namespace %q, not the overlay's %q", c.name, m.Kind, m.Metadata.Name, m.Metadata.Namespace, ns)
					}
					if m.Kind == "ServiceMonitor" || m.Kind == "PrometheusRule" {
						if m.Metadata.Labels["release"] != c.release {
							t.Errorf("%s: %s %s has release=%q, want %q", c.name, m.Kind, m.Metadata.Name, m.Metadata.Labels["release"], c.release)
						}
					}
					if m.Kind == "ConfigMap" && m.Metadata.Labels["grafana_dashboard"] == "1" {
						dash++
					}
				}
				if dash != 1 {
					t.Errorf("%s: %d dashboard ConfigMaps", c.name, dash)
				}
			}
		})
	}
}

// What bites on day one: probes that time out before /readyz's own checks,
// a harvester killed while it restores, ingest refusing requests during a
// rollout, replicas stacked on one node or zone, and settings edits that do
// not roll the pods.
func TestDeploymentsSurviveDayOne(t *testing.T) {
	for _, dir := range []string{"deploy/k8s/base", "deploy/k8s/overlays/dev", "deploy/k8s/overlays/production"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			r := decode(t, kustomize(t, dir))
			for _, c := range deployed {
				d := r.deployments["faceharvest-"+c]
				if d == nil {
					t.Fatalf("no Deployment faceharvest-%s", c)
				}
				checkProbes(t, c, d)
				checkSpread(t, c, d)
				checkGeneratedConfig(t, c, d, r)
			}
			checkShutdownDelay(t, r.deployments["faceharvest-ingest"])
		})
	}
	// A settings edit gives the ConfigMap a new name, so the Deployments'
	// pod templates change and roll.
	a := decode(t, kustomize(t, "deploy/k8s/overlays/production"))
	b := decode(t, kustomizeWrapped(t, "deploy/k8s/overlays/production",
		"configMapGenerator:\n  - name: faceharvest-config\n    behavior: merge\n    literals: [FACEHARVEST_LOG_LEVEL=warn]\n"))
	for _, c := range deployed {
		ra, rb := configRef(a.deployments["faceharvest-"+c]), configRef(b.deployments["faceharvest-"+c])
		if ra == "" || ra == rb {
			t.Errorf("%s: a settings edit leaves the pod template naming %q: the pods do not roll", c, ra)
		}
	}
}

func probeBudget(p *corev1.Probe) time.Duration {
	period, threshold := p.PeriodSeconds, p.FailureThreshold
	if period == 0 {
		period = 10
	}
	if threshold == 0 {
		threshold = 3
	}
	return time.Duration(period*threshold) * time.Second
}

func checkProbes(t *testing.T, c string, d *appsv1.Deployment) {
	t.Helper()
	ctr := d.Spec.Template.Spec.Containers[0]
	for name, p := range map[string]*corev1.Probe{"liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe} {
		if p == nil {
			t.Errorf("%s: no %s probe", c, name)
			continue
		}
		timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
		if timeout <= ops.CheckTimeout {
			t.Errorf("%s: %s probe times out after %s, not above /readyz's own %s: a slow check fails it", c, name, timeout, ops.CheckTimeout)
		}
	}
	if c == "harvester" {
		sp := ctr.StartupProbe
		// --startup-wait (2 min) for the brokers, a rebalance (30 s) and the
		// restore (a million pending verifications: about 10 s).
		if sp == nil || sp.HTTPGet == nil || sp.HTTPGet.Path != "/readyz" || probeBudget(sp) < 3*time.Minute || time.Duration(sp.TimeoutSeconds)*time.Second <= ops.CheckTimeout {
			t.Errorf("harvester: the startupProbe must wait on /readyz (started after its restore) for at least 3 min: %+v", sp)
		}
	}
}

func checkSpread(t *testing.T, c string, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Labels
	keys := map[string]bool{}
	for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
		if tsc.LabelSelector == nil || tsc.MaxSkew != 1 {
			continue
		}
		matches := len(tsc.LabelSelector.MatchLabels) > 0
		for k, v := range tsc.LabelSelector.MatchLabels {
			matches = matches && pod[k] == v
		}
		if matches {
			keys[tsc.TopologyKey] = true
		}
	}
	if !keys["kubernetes.io/hostname"] || !keys["topology.kubernetes.io/zone"] {
		t.Errorf("%s: replicas must spread over nodes and zones (maxSkew 1, selecting its own pods): %+v", c, d.Spec.Template.Spec.TopologySpreadConstraints)
	}
}

func configRef(d *appsv1.Deployment) string {
	if d == nil {
		return ""
	}
	for _, ef := range d.Spec.Template.Spec.Containers[0].EnvFrom {
		if ef.ConfigMapRef != nil && strings.HasPrefix(ef.ConfigMapRef.Name, "faceharvest-config") {
			return ef.ConfigMapRef.Name
		}
	}
	return ""
}

func checkGeneratedConfig(t *testing.T, c string, d *appsv1.Deployment, r rendered) {
	t.Helper()
	ref := configRef(d)
	if !strings.HasPrefix(ref, "faceharvest-config-") || r.configMaps[ref] == nil {
		t.Errorf("%s: envFrom names %q: want the generated faceharvest-config-<hash>, rendered", c, ref)
	}
}

// ingest keeps serving for --shutdown-delay while /readyz fails; the
// readiness probe must notice within the delay, and the pod's grace cover
// the delay, --shutdown-grace and the flush.
func checkShutdownDelay(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ctr := d.Spec.Template.Spec.Containers[0]
	var delay, grace time.Duration = -1, 20 * time.Second
	for _, e := range ctr.Env {
		var err error
		switch e.Name {
		case "FACEHARVEST_SHUTDOWN_DELAY":
			delay, err = time.ParseDuration(e.Value)
		case "FACEHARVEST_SHUTDOWN_GRACE":
			grace, err = time.ParseDuration(e.Value)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if delay <= 0 {
		t.Fatal("ingest: FACEHARVEST_SHUTDOWN_DELAY is not set: a rollout drops the requests still routed to a terminating pod")
	}
	if rp := ctr.ReadinessProbe; rp == nil || probeBudget(rp) > delay {
		t.Errorf("ingest: the readiness probe notices a drain only after %s, beyond --shutdown-delay %s", probeBudget(rp), delay)
	}
	if g := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second; g < delay+grace+10*time.Second {
		t.Errorf("ingest: termination grace %s < --shutdown-delay %s + --shutdown-grace %s + 10 s", g, delay, grace)
	}
}
