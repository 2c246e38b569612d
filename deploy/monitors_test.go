package deploy

import (
	"encoding/json"
	"slices"
	"testing"
)

// Every Service with a metrics port is scraped: the monitoring component's
// ServiceMonitor selects it by its app.kubernetes.io/name, and scrapes the
// port by that name.
func TestEveryMetricsPortIsScraped(t *testing.T) {
	r := renderWith(t, "monitoring")
	type expr struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	}
	selected := map[string]bool{}
	for _, m := range r.monitors {
		b, _ := json.Marshal(m.Spec.Selector)
		var sel struct {
			MatchExpressions []expr `json:"matchExpressions"`
		}
		if err := json.Unmarshal(b, &sel); err != nil {
			t.Fatal(err)
		}
		scrapesMetrics := slices.ContainsFunc(m.Spec.Endpoints, func(e struct {
			Port     string `json:"port"`
			Interval string `json:"interval"`
		}) bool {
			return e.Port == "metrics"
		})
		for _, e := range sel.MatchExpressions {
			if e.Key == "app.kubernetes.io/name" && e.Operator == "In" && scrapesMetrics {
				for _, v := range e.Values {
					selected[v] = true
				}
			}
		}
	}
	n := 0
	for name, svc := range r.services {
		for _, p := range svc.Spec.Ports {
			if p.Name == "metrics" {
				n++
				if app := svc.Labels["app.kubernetes.io/name"]; !selected[app] {
					t.Errorf("Service %s (%s) has a metrics port no ServiceMonitor scrapes", name, app)
				}
			}
		}
	}
	if n < 4 {
		t.Fatalf("%d Services with a metrics port, want the four components'", n)
	}
}
