// Package deploy holds the Kubernetes manifests, dashboards and alert rules;
// its test renders them and checks them against the code.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/proctest"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// The custom resources, as far as the manifests use them; decoded strictly,
// so a misspelt field fails.
type objectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

type serviceMonitor struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Selector  map[string]any `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

type kafkaTopic struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		TopicName  string            `json:"topicName"`
		Partitions int               `json:"partitions"`
		Replicas   int               `json:"replicas"`
		Config     map[string]string `json:"config"`
	} `json:"spec"`
}

func root(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

func kustomize(t *testing.T, dir string) [][]byte {
	t.Helper()
	return kustomizeBuild(t, filepath.Join(root(t), dir))
}

// kustomizeBuild renders the kustomization in dir (an absolute path) as
// kubectl apply -k would.
func kustomizeBuild(t *testing.T, dir string) [][]byte {
	t.Helper()
	bin := filepath.Join(root(t), "bin", "tools", "kustomize")
	_, err := os.Stat(bin)
	proctest.NeedTool(t, "kustomize (make kustomize)", err)
	out, err := exec.Command(bin, "build", "--load-restrictor=LoadRestrictionsNone", dir).CombinedOutput()
	if err != nil {
		k, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		t.Fatalf("kustomize build %s: %v\n%s\nkustomization.yaml:\n%s", dir, err, out, k)
	}
	return splitDocs(out)
}

func splitDocs(out []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(out, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// rendered is one overlay decoded into typed objects.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	configMaps  map[string]*corev1.ConfigMap
	services    map[string]*corev1.Service
	rules       []*prometheusRule
	monitors    []*serviceMonitor
	kinds       map[string]int
}

func decode(t *testing.T, docs [][]byte) rendered {
	t.Helper()
	r := rendered{deployments: map[string]*appsv1.Deployment{}, configMaps: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{}, kinds: map[string]int{}}
	for _, d := range docs {
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(d, &tm); err != nil {
			t.Fatal(err)
		}
		gvk := tm.APIVersion + "/" + tm.Kind
		r.kinds[gvk]++
		var obj any
		switch gvk {
		case "apps/v1/Deployment":
			o := &appsv1.Deployment{}
			obj = o
			defer func() { r.deployments[o.Name] = o }()
		case "v1/ConfigMap":
			o := &corev1.ConfigMap{}
			obj = o
			defer func() { r.configMaps[o.Name] = o }()
		case "v1/Service":
			o := &corev1.Service{}
			obj = o
			defer func() { r.services[o.Name] = o }()
		case "policy/v1/PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "autoscaling/v2/HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "networking.k8s.io/v1/NetworkPolicy":
			obj = &networkingv1.NetworkPolicy{}
		case "networking.k8s.io/v1/Ingress":
			obj = &networkingv1.Ingress{}
		case "monitoring.coreos.com/v1/ServiceMonitor":
			o := &serviceMonitor{}
			obj = o
			r.monitors = append(r.monitors, o)
		case "monitoring.coreos.com/v1/PrometheusRule":
			o := &prometheusRule{}
			obj = o
			r.rules = append(r.rules, o)
		case "kafka.strimzi.io/v1beta2/KafkaTopic":
			obj = &kafkaTopic{}
		case "v1/ServiceAccount":
			obj = &corev1.ServiceAccount{}
		default:
			t.Fatalf("unexpected object %s", gvk)
		}
		if err := yaml.UnmarshalStrict(d, obj); err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", gvk, err, d)
		}
	}
	return r
}

// deployed are the components deploy/k8s runs, each a Deployment
// faceharvest-<name> of the binary <name>.
var deployed = []string{"ingest", "harvester", "archiver", "auditor", "ledger"}

// helpNames reads each binary's --help: the environment names of its flags
// ("env NAME" lines) and of its secrets (the Secrets section), which may
// also be given as NAME_FILE.
func helpNames(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for _, c := range deployed {
		flags, secrets, _ := strings.Cut(helpText(t, c), "\nSecrets")
		out[c] = map[string]bool{}
		for _, m := range regexp.MustCompile(`env (FACEHARVEST_[A-Z0-9_]+)`).FindAllStringSubmatch(flags, -1) {
			out[c][m[1]] = true
		}
		for _, m := range regexp.MustCompile(`(?m)^  ((?:FACEHARVEST|AWS)_[A-Z0-9_]+)$`).FindAllStringSubmatch(secrets, -1) {
			out[c][m[1]], out[c][m[1]+"_FILE"] = true, true
		}
		if len(out[c]) < 5 {
			t.Fatalf("%s --help lists only %v", c, out[c])
		}
	}
	return out
}

// helpText builds a binary and returns its --help (of the subcommand sub).
func helpText(t *testing.T, name string, sub ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	build := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	build.Dir = root(t)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, b)
	}
	help, err := exec.Command(bin, append(sub, "--help")...).Output()
	if err != nil {
		t.Fatalf("%s --help: %v", name, err)
	}
	return string(help)
}

// docs/configuration.md is every binary's --help: generated from the code,
// so it cannot drift. make docs rewrites it.
func TestConfigurationDocIsCurrent(t *testing.T) {
	var b strings.Builder
	b.WriteString("# Configuration\n\nGenerated from each binary's `--help` by `make docs`; a test fails when it differs from the code.\n")
	b.WriteString("Every flag is also an environment variable (`FACEHARVEST_` + the flag in upper snake case); secrets are read from\n")
	b.WriteString("the environment only, or with a `_FILE` suffix from a file.\n")
	for _, c := range []string{"ingest", "harvester", "archiver", "auditor", "ledger", "vendorsim", "devkafka"} {
		fmt.Fprintf(&b, "\n## %s\n\n```\n%s```\n", c, helpText(t, c))
	}
	for _, sub := range [][]string{{"show"}, {"find"}, {"replay"}, {"dlq", "list"}, {"dlq", "redrive"}, {"export"}, {"verify"}, {"ledger", "check"}} {
		fmt.Fprintf(&b, "\n## faceharvest %s\n\n```\n%s```\n", strings.Join(sub, " "), helpText(t, "faceharvest", sub...))
	}
	path := filepath.Join(root(t), "docs", "configuration.md")
	if os.Getenv("FACEHARVEST_UPDATE_DOCS") != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil || string(have) != b.String() {
		t.Fatalf("docs/configuration.md differs from the binaries' --help: run make docs (%v)", err)
	}
}

// The overlays render, every object decodes strictly into its API type, and
// every Deployment keeps the rules operators rely on.
func TestOverlays(t *testing.T) {
	help := helpNames(t)
	shutdownGrace := map[string]time.Duration{"ingest": 20 * time.Second, "harvester": 90 * time.Second, "archiver": 20 * time.Second, "auditor": 20 * time.Second, "ledger": 10 * time.Second}
	for _, overlay := range []string{"deploy/k8s/overlays/dev", "deploy/k8s/overlays/production"} {
		t.Run(filepath.Base(overlay), func(t *testing.T) {
			r := decode(t, kustomizeWrapped(t, overlay, "components:\n  - @component\n"))
			if r.kinds["v1/Secret"] > 0 {
				t.Error("a Secret is committed: secrets are referenced, never included")
			}
			for _, gvk := range []string{"apps/v1/Deployment", "v1/Service", "policy/v1/PodDisruptionBudget", "autoscaling/v2/HorizontalPodAutoscaler",
				"networking.k8s.io/v1/NetworkPolicy", "monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule", "v1/ConfigMap"} {
				if r.kinds[gvk] == 0 {
					t.Errorf("no %s", gvk)
				}
			}
			shared := r.configMaps[configRef(r.deployments["faceharvest-ingest"])]
			if shared == nil {
				t.Fatal("no faceharvest-config ConfigMap")
			}
			for key := range shared.Data {
				known := false
				for _, names := range help {
					known = known || names[key]
				}
				if !known {
					t.Errorf("ConfigMap sets %s, which no binary reads", key)
				}
			}
			for _, c := range deployed {
				d := r.deployments["faceharvest-"+c]
				if d == nil {
					t.Fatalf("no Deployment faceharvest-%s", c)
				}
				p := d.Spec.Template.Spec
				ctr := p.Containers[0]
				if ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet.Path != "/healthz" || ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
					t.Errorf("%s: probes must use /healthz and /readyz", c)
				}
				if ctr.Resources.Requests.Cpu().IsZero() || ctr.Resources.Limits.Memory().IsZero() {
					t.Errorf("%s: requests and limits", c)
				}
				sc := ctr.SecurityContext
				if p.SecurityContext == nil || p.SecurityContext.RunAsNonRoot == nil || !*p.SecurityContext.RunAsNonRoot ||
					sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: must run non-root with a read-only root file system", c)
				}
				if g := time.Duration(*p.TerminationGracePeriodSeconds) * time.Second; g < shutdownGrace[c]+10*time.Second {
					t.Errorf("%s: termination grace %s leaves no room for --shutdown-grace %s", c, g, shutdownGrace[c])
				}
				for _, e := range ctr.Env {
					if e.Value != "" && strings.Contains(strings.ToLower(e.Name), "secret") && !strings.HasSuffix(e.Name, "_FILE") {
						t.Errorf("%s: %s carries a secret value", c, e.Name)
					}
					if e.Name == "GOMEMLIMIT" {
						// The Go runtime's soft limit: below the container's.
						q, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B"))
						if err != nil || q.Cmp(*ctr.Resources.Limits.Memory()) >= 0 {
							t.Errorf("%s: GOMEMLIMIT %q must be below the memory limit %s", c, e.Value, ctr.Resources.Limits.Memory())
						}
						continue
					}
					if !help[c][e.Name] {
						t.Errorf("%s: env %s is not a flag or secret of the %s binary", c, e.Name, c)
					}
				}
				for _, ef := range ctr.EnvFrom {
					if ef.ConfigMapRef == nil || r.configMaps[ef.ConfigMapRef.Name] == nil {
						t.Errorf("%s: envFrom names a ConfigMap that is not rendered", c)
					}
				}
			}
			if svc := r.services["faceharvest-ingest"]; svc == nil || svc.Spec.Ports[0].Port != 8028 {
				t.Error("ingest's Service must listen on 8028, a port Megvii calls")
			}
			checkLandingWiring(t, r.deployments["faceharvest-ingest"])
		})
	}
	t.Run("topics", func(t *testing.T) {
		docs := kustomize(t, "deploy/k8s/topics")
		topics := map[string]*kafkaTopic{}
		for _, d := range docs {
			var k kafkaTopic
			if err := yaml.UnmarshalStrict(d, &k); err != nil {
				t.Fatal(err)
			}
			topics[k.Spec.TopicName] = &k
		}
		ev, st, raw := topics["faceid.events"], topics["faceid.harvester.state"], topics["faceid.results.raw"]
		if ev == nil || st == nil || raw == nil || topics["faceid.results"] == nil || topics["faceid.dlq"] == nil {
			t.Fatalf("topics: %v", topics)
		}
		if ev.Spec.Partitions != st.Spec.Partitions || st.Spec.Config["cleanup.policy"] != "compact" {
			t.Error("state must be compacted and co-partitioned with events")
		}
		// Answers go by reference: every topic keeps Kafka's default
		// message size, which any managed Kafka allows.
		for name, k := range topics {
			if v, ok := k.Spec.Config["max.message.bytes"]; ok {
				t.Errorf("%s sets max.message.bytes=%s: the topics keep Kafka's default", name, v)
			}
		}
	})
}

// recorder keeps the collectors registered through it.
type recorder struct {
	*prometheus.Registry
	cs []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.cs = append(r.cs, c)
	return r.Registry.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// describeAll is every metric name the components register, labelled series
// or not: their collectors are built as the binaries build them, then
// described.
func describeAll(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, reg := range componentRegistries(t) {
		describe(reg.cs, func(d *prometheus.Desc) {
			if m := descName.FindStringSubmatch(d.String()); m != nil {
				names[m[1]] = true
			}
		})
	}
	if len(names) < 40 {
		t.Fatalf("only %d metrics described", len(names))
	}
	return names
}

// Every metric the dashboard and the alert rules name exists in the
// components' registries.
func TestDashboardAndAlertsNameRealMetrics(t *testing.T) {
	names := describeAll(t)
	r := decode(t, kustomizeWrapped(t, "deploy/k8s/overlays/production", "components:\n  - @component\n"))
	runbook, err := os.ReadFile(filepath.Join(root(t), "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, rule := range r.rules {
		for _, g := range rule.Spec.Groups {
			for _, x := range g.Rules {
				exprs = append(exprs, x.Expr)
				if x.Annotations["runbook_url"] == "" || x.Annotations["summary"] == "" || x.Labels["severity"] == "" {
					t.Errorf("alert %s lacks a summary, runbook_url or severity", x.Alert)
				}
				if !strings.Contains(string(runbook), "## "+x.Alert+" (") {
					t.Errorf("docs/runbook.md has no section for %s", x.Alert)
				}
			}
		}
	}
	dash, err := os.ReadFile(filepath.Join(root(t), "deploy", "k8s", "components", "monitoring", "dashboards", "faceharvest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		for _, x := range p.Targets {
			exprs = append(exprs, x.Expr)
		}
	}
	re := regexp.MustCompile(`faceharvest_[a-z0-9_]+`)
	var missing []string
	seen := map[string]bool{}
	for _, e := range exprs {
		for _, m := range re.FindAllString(e, -1) {
			base := m
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(m, suf); ok && names[b] {
					base = b
				}
			}
			seen[base] = true
			if !names[base] {
				missing = append(missing, m)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("named but not registered by any component: %v", missing)
	}
	if len(seen) < 20 {
		t.Errorf("only %d metrics named: is the dashboard complete?", len(seen))
	}
}

// checkLandingWiring: ingest refuses to start without a public URL and a
// landing key, so every overlay gives it both, the key as a file from the
// ingest Secret.
func checkLandingWiring(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if d == nil {
		t.Fatal("no ingest Deployment")
	}
	p := d.Spec.Template.Spec
	env := map[string]string{}
	for _, e := range p.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if u := env["FACEHARVEST_PUBLIC_URL"]; !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		t.Errorf("ingest: FACEHARVEST_PUBLIC_URL %q: want ingest's external base URL", u)
	}
	file := env["FACEHARVEST_LANDING_KEY_FILE"]
	if file == "" || env["FACEHARVEST_LANDING_KEY"] != "" {
		t.Fatal("ingest: the landing key must come from FACEHARVEST_LANDING_KEY_FILE")
	}
	for _, m := range p.Containers[0].VolumeMounts {
		rel, ok := strings.CutPrefix(file, m.MountPath+"/")
		if !ok {
			continue
		}
		for _, v := range p.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel && it.Key == "landing-key" {
					return
				}
			}
		}
	}
	t.Errorf("ingest: %s is not the key landing-key of a mounted Secret", file)
}
