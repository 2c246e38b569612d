package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/proctest"
	"sigs.k8s.io/yaml"
)

// promtool is Prometheus's own rule checker and unit-test runner (make
// promtool extracts it from Debian's prometheus package into bin/tools).
func promtool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(root(t), "bin", "tools", "promtool")
	if p := os.Getenv("PROMTOOL"); p != "" {
		bin = p
	}
	_, err := os.Stat(bin)
	proctest.NeedTool(t, "promtool (make promtool)", err)
	return bin
}

// ruleObjects reads the PrometheusRule objects of the base, strictly.
func ruleObjects(t *testing.T) []*prometheusRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "k8s", "components", "monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*prometheusRule
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		r := &prometheusRule{}
		if err := yaml.UnmarshalStrict(d, r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// ruleFile writes the objects' groups as a Prometheus rule file; without
// annotations when bare (the unit tests check labels, promtool check rules
// the annotations' templates).
func ruleFile(t *testing.T, dir string, objs []*prometheusRule, bare bool) string {
	t.Helper()
	var groups []any
	for _, o := range objs {
		for _, g := range o.Spec.Groups {
			var rules []map[string]any
			for _, r := range g.Rules {
				m := map[string]any{"alert": r.Alert, "expr": r.Expr, "labels": r.Labels}
				if r.For != "" {
					m["for"] = r.For
				}
				if !bare {
					m["annotations"] = r.Annotations
				}
				rules = append(rules, m)
			}
			groups = append(groups, map[string]any{"name": g.Name, "rules": rules})
		}
	}
	b, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runbookAnchors are the anchors of docs/runbook.md's headings, as GitHub
// makes them.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, l := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(l, "## "); ok {
			out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return out
}

// TestAlertRules: the rules parse (templates included) in Prometheus's own
// checker, every alert fires on one synthetic series and stays silent on a
// healthy one in Prometheus's rule engine (deploy/rules/alerts_test.yaml),
// and every alert is annotated for the person it pages.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	objs := ruleObjects(t)
	dir := t.TempDir()
	if out, err := exec.Command(bin, "check", "rules", ruleFile(t, dir, objs, false)).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	ruleFile(t, dir, objs, true)
	tests, err := os.ReadFile(filepath.Join(root(t), "deploy", "rules", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "test", "rules", "alerts_test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	// Each alert has a firing case and a silent one.
	var suite struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &suite); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, c := range suite.Tests {
		for _, a := range c.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	anchors := runbookAnchors(t)
	by := regexp.MustCompile(`\b(sum|min|max|avg|count) by \(([^)]*)\)`)
	bare := regexp.MustCompile(`\b(sum|min|max|avg|count)\s*\(`)
	n := 0
	for _, o := range objs {
		for _, g := range o.Spec.Groups {
			for _, r := range g.Rules {
				n++
				if !fires[r.Alert] || !silent[r.Alert] {
					t.Errorf("%s: want a case that fires and one that stays silent (fires %v, silent %v)", r.Alert, fires[r.Alert], silent[r.Alert])
				}
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("%s: severity %q", r.Alert, s)
				}
				for _, k := range []string{"summary", "description", "runbook_url"} {
					if r.Annotations[k] == "" {
						t.Errorf("%s: no %s annotation", r.Alert, k)
					}
				}
				if len(r.Annotations) != 3 {
					t.Errorf("%s: annotations %v: want summary, description and runbook_url", r.Alert, r.Annotations)
				}
				u := r.Annotations["runbook_url"]
				if _, anchor, _ := strings.Cut(u, "/docs/runbook.md#"); !anchors[anchor] || anchor != strings.ToLower(r.Alert)+"-"+r.Labels["severity"] {
					t.Errorf("%s: runbook_url %q names no section \"## %s (%s)\" of docs/runbook.md", r.Alert, u, r.Alert, r.Labels["severity"])
				}
				if bare.MatchString(r.Expr) {
					t.Errorf("%s: an aggregation without by (namespace, ...): %s", r.Alert, r.Expr)
				}
				for _, m := range by.FindAllStringSubmatch(r.Expr, -1) {
					if !strings.Contains(m[2], "namespace") {
						t.Errorf("%s: %q drops the namespace", r.Alert, m[0])
					}
				}
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d alerts", n)
	}
	for a := range fires {
		found := false
		for _, o := range objs {
			for _, g := range o.Spec.Groups {
				for _, r := range g.Rules {
					found = found || r.Alert == a
				}
			}
		}
		if !found {
			t.Errorf("alerts_test.yaml tests %s, which no rule defines", a)
		}
	}
}

// Development pages nobody: with the monitoring component added to it, the
// dev overlay ships the warnings only, and production every alert.
func TestOnlyProductionShipsCriticalRules(t *testing.T) {
	want := 0
	for _, o := range ruleObjects(t) {
		for _, g := range o.Spec.Groups {
			want += len(g.Rules)
		}
	}
	for overlay, critical := range map[string]bool{"dev": false, "production": true} {
		r := decode(t, kustomizeOverlayWith(t, overlay, "monitoring"))
		n, crit := 0, 0
		for _, o := range r.rules {
			for _, g := range o.Spec.Groups {
				for _, x := range g.Rules {
					n++
					if x.Labels["severity"] == "critical" {
						crit++
					}
				}
			}
		}
		switch {
		case critical && n != want:
			t.Errorf("%s ships %d of the %d alerts", overlay, n, want)
		case critical && crit == 0, !critical && crit > 0:
			t.Errorf("%s ships %d critical alerts", overlay, crit)
		case n == 0:
			t.Errorf("%s ships no alert", overlay)
		}
	}
}
