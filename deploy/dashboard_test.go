package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"
)

// targetLabels are the labels Prometheus (with the Prometheus Operator's
// ServiceMonitor) adds to every scraped series.
var targetLabels = []string{"namespace", "job", "instance", "pod", "service", "container", "endpoint"}

// metricLabels is every metric the three components register, with its
// label names (variable and constant), read from their descriptors.
func metricLabels(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for _, reg := range componentRegistries(t) {
		describe(reg.cs, func(d *prometheus.Desc) {
			m := descName.FindStringSubmatch(d.String())
			if m == nil {
				return
			}
			ls := map[string]bool{}
			for _, l := range targetLabels {
				ls[l] = true
			}
			consts, vars := descLabels(d)
			for _, l := range append(consts, vars...) {
				ls[l] = true
			}
			out[m[1]] = ls
		})
	}
	return out
}

type dashboard struct {
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title       string `json:"title"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardQueriesMatchRegistries: every panel's expression parses in
// Prometheus's own parser (promtool check rules, each expression a recording
// rule), names only metrics the components register, and uses only labels
// those metrics carry (matchers and by-clauses); rates use $__rate_interval,
// every selector is scoped by the namespace and job variables, and every
// panel has a unit.
func TestDashboardQueriesMatchRegistries(t *testing.T) {
	bin := promtool(t)
	metrics := metricLabels(t)
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "k8s", "components", "monitoring", "dashboards", "faceharvest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, v := range []string{"datasource", "namespace", "job"} {
		if !vars[v] {
			t.Errorf("no $%s variable", v)
		}
	}
	selector := regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcher := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"`)
	metricName := regexp.MustCompile(`\bfaceharvest_[a-z0-9_]+`)
	grouping := regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	rng := regexp.MustCompile(`\[([^\]]+)\]`)
	var rules []map[string]string
	for _, p := range d.Panels {
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("panel %q has no unit", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, x := range p.Targets {
			e := x.Expr
			rules = append(rules, map[string]string{"record": "dashboard:query", "expr": strings.NewReplacer("$__rate_interval", "1m", "$namespace", "ns", "$job", "job").Replace(e)})
			for _, r := range rng.FindAllStringSubmatch(e, -1) {
				if strings.Contains(e, "rate(") && r[1] != "$__rate_interval" && r[1] != "1h" {
					t.Errorf("panel %q: range [%s]: use $__rate_interval", p.Title, r[1])
				}
			}
			allowed := map[string]bool{}
			names := metricName.FindAllString(e, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: %s names no faceharvest metric", p.Title, e)
			}
			for _, n := range names {
				ls := metrics[n]
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suf); ok && metrics[b] != nil {
						ls = metrics[b]
						if suf == "_bucket" {
							allowed["le"] = true
						}
					}
				}
				if ls == nil {
					t.Errorf("panel %q: %s is registered by no component", p.Title, n)
					continue
				}
				for l := range ls {
					allowed[l] = true
				}
			}
			for _, s := range selector.FindAllStringSubmatch(e, -1) {
				if !strings.Contains(s[2], `namespace="$namespace"`) || !strings.Contains(s[2], `job=~"$job"`) {
					t.Errorf("panel %q: %s is not scoped by $namespace and $job", p.Title, s[0])
				}
				for _, m := range matcher.FindAllStringSubmatch(s[2], -1) {
					if !allowed[m[1]] {
						t.Errorf("panel %q: label %q is on none of %v", p.Title, m[1], names)
					}
				}
			}
			for _, g := range grouping.FindAllStringSubmatch(e, -1) {
				for _, l := range strings.Split(g[1], ",") {
					if l = strings.TrimSpace(l); l != "" && !allowed[l] {
						t.Errorf("panel %q: groups by %q, a label none of %v carries", p.Title, l, names)
					}
				}
			}
		}
	}
	y, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboard.yaml")
	if err := os.WriteFile(f, y, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", f).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
