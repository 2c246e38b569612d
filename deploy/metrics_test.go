package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/audit/web"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/harvester"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/ledger"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

// componentNames are the deployed components, in pipeline order, then the
// audit page.
var componentNames = []string{"ingest", "harvester", "archiver", "auditor", "ledger"}

// componentRegistries builds each component's registry as its binary builds
// it (ops.NewRegistry, the component's own metrics, its store wrapper, the
// collector of a writer from bus.NewWriter), with every collector it registers recorded so
// that it can be described. The dashboard, alert and metrics-doc tests all
// read the components' metrics from here.
func componentRegistries(t *testing.T) map[string]*recorder {
	t.Helper()
	out := map[string]*recorder{}
	for _, c := range componentNames {
		out[c] = &recorder{Registry: ops.NewRegistry()}
	}
	ingestCfg := ingest.DefaultConfig()
	ingestCfg.MegviiSecrets, ingestCfg.BearerTokens, ingestCfg.Registry = []config.Secret{config.NewSecret("s")}, []config.Secret{config.NewSecret("t")}, out["ingest"]
	if _, err := ingest.New(ingestCfg, nil); err != nil {
		t.Fatal(err)
	}
	harvester.NewMetrics(out["harvester"])
	archiver.NewMetrics(out["archiver"])
	objstore.Instrument(objstore.NewMemory(), out["archiver"], "archiver")
	web.NewMetrics(out["auditor"])
	if _, err := audit.NewLog(audit.LogConfig{Writer: bus.NewWriter(bus.WriterConfig{Topic: "audit"}), Via: "auditor", Registry: out["auditor"]}); err != nil {
		t.Fatal(err)
	}
	objstore.Instrument(objstore.NewMemory(), out["auditor"], "auditor")
	ledger.NewMetrics(out["ledger"])
	objstore.Instrument(objstore.NewMemory(), out["ledger"], "ledger")
	for _, c := range componentNames {
		out[c].MustRegister(bus.NewWriterCollector(bus.NewWriter(bus.WriterConfig{Topic: c}), c))
	}
	return out
}

// describe sends every descriptor of cs to fn.
func describe(cs []prometheus.Collector, fn func(*prometheus.Desc)) {
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			fn(d)
		}
	}
}

var (
	descName   = regexp.MustCompile(`fqName: "([a-zA-Z0-9_:]+)"`)
	descHelp   = regexp.MustCompile(`help: ("(?:[^"\\]|\\.)*")`)
	descConsts = regexp.MustCompile(`constLabels: \{([^}]*)\}`)
	descVars   = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
)

// descLabels reads a descriptor's constant and variable label names.
func descLabels(d *prometheus.Desc) (consts, vars []string) {
	s := d.String()
	if c := descConsts.FindStringSubmatch(s); c != nil {
		for _, kv := range strings.Split(c[1], ",") {
			if k, _, ok := strings.Cut(kv, "="); ok {
				consts = append(consts, strings.TrimSpace(k))
			}
		}
	}
	if v := descVars.FindStringSubmatch(s); v != nil {
		for _, k := range strings.Split(v[1], ",") {
			if k = strings.TrimSpace(k); k != "" {
				vars = append(vars, k)
			}
		}
	}
	return consts, vars
}

// docMetric is one metric as docs/metrics.md lists it.
type docMetric struct {
	name, typ, help string
	consts, vars    []string
	values          map[string]map[string]bool // variable label → values exported from the start
}

// componentMetrics lists a component's faceharvest_ metrics: names, help and
// labels from the descriptors, types and the label values exported from the
// start from what the registry gathers. A labelled metric without series yet
// (a Vec) takes its type from its collector; the others are always gathered.
func componentMetrics(t *testing.T, reg *recorder) []*docMetric {
	t.Helper()
	byName := map[string]*docMetric{}
	describe(reg.cs, func(d *prometheus.Desc) {
		s := d.String()
		n := descName.FindStringSubmatch(s)
		h := descHelp.FindStringSubmatch(s)
		if n == nil || h == nil {
			return
		}
		var help string
		if _, err := fmt.Sscanf(h[1], "%q", &help); err != nil {
			t.Fatalf("%s: help %s: %v", n[1], h[1], err)
		}
		m := &docMetric{name: n[1], help: help, values: map[string]map[string]bool{}}
		m.consts, m.vars = descLabels(d)
		byName[m.name] = m
	})
	for _, c := range reg.cs {
		var typ string
		switch c.(type) {
		case *prometheus.CounterVec:
			typ = "counter"
		case *prometheus.GaugeVec:
			typ = "gauge"
		case *prometheus.HistogramVec:
			typ = "histogram"
		case *prometheus.SummaryVec:
			typ = "summary"
		default:
			continue
		}
		describe([]prometheus.Collector{c}, func(d *prometheus.Desc) {
			if m := descName.FindStringSubmatch(d.String()); m != nil && byName[m[1]] != nil {
				byName[m[1]].typ = typ
			}
		})
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "faceharvest_") {
			continue
		}
		m := byName[f.GetName()]
		if m == nil { // registered by ops.NewRegistry, which records no collector
			m = &docMetric{name: f.GetName(), help: f.GetHelp(), values: map[string]map[string]bool{}}
			if len(f.GetMetric()) > 0 {
				for _, lp := range f.GetMetric()[0].GetLabel() {
					m.consts = append(m.consts, lp.GetName())
				}
			}
			byName[m.name] = m
		}
		m.typ = strings.ToLower(f.GetType().String())
		vars := map[string]bool{}
		for _, v := range m.vars {
			vars[v] = true
		}
		for _, s := range f.GetMetric() {
			for _, lp := range s.GetLabel() {
				if vars[lp.GetName()] {
					if m.values[lp.GetName()] == nil {
						m.values[lp.GetName()] = map[string]bool{}
					}
					m.values[lp.GetName()][lp.GetValue()] = true
				}
			}
		}
	}
	var out []*docMetric
	for _, m := range byName {
		if m.typ == "" {
			t.Fatalf("%s: no type known (a custom collector that exports nothing yet?)", m.name)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// metricsDoc renders docs/metrics.md from the components' registries.
func metricsDoc(t *testing.T) string {
	t.Helper()
	regs := componentRegistries(t)
	var b strings.Builder
	b.WriteString("# Metrics\n\n")
	b.WriteString("Generated from the components' Prometheus registries by `make docs`; a test (`TestMetricsDocIsCurrent` in\n")
	b.WriteString("`deploy`) fails when it differs from the code. Each process serves its metrics on `--metrics-addr` at `/metrics`,\n")
	b.WriteString("beside `/healthz` and `/readyz`, and also exports the Go runtime's and the process's standard metrics (`go_*`,\n")
	b.WriteString("`process_*`), not listed here.\n\n")
	b.WriteString("Labels in *italics* are constant for a process (`topic`: the writer's topic; `faceharvest_build_info`'s: the\n")
	b.WriteString("build). The values shown for the other labels are those exported at 0 from the start, so that a series exists\n")
	b.WriteString("before its first increment and `increase()` sees it; a label without values gets them as work arrives.\n")
	b.WriteString("Alerts on these metrics: [runbook.md](runbook.md).\n")
	for _, c := range componentNames {
		fmt.Fprintf(&b, "\n## %s\n\n| metric | type | labels | help |\n| --- | --- | --- | --- |\n", c)
		for _, m := range componentMetrics(t, regs[c]) {
			var ls []string
			for _, l := range m.consts {
				ls = append(ls, "*"+l+"*")
			}
			for _, l := range m.vars {
				vs := make([]string, 0, len(m.values[l]))
				for v := range m.values[l] {
					vs = append(vs, v)
				}
				sort.Strings(vs)
				if len(vs) > 0 {
					l += ": " + strings.Join(vs, ", ")
				}
				ls = append(ls, "`"+strings.ReplaceAll(l, "|", `\|`)+"`")
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.name, m.typ, strings.Join(ls, "<br>"), strings.ReplaceAll(m.help, "|", `\|`))
		}
	}
	return b.String()
}

// docs/metrics.md is every metric of the three components, generated from
// their registries so that it cannot drift. make docs rewrites it.
func TestMetricsDocIsCurrent(t *testing.T) {
	doc := metricsDoc(t)
	path := filepath.Join(root(t), "docs", "metrics.md")
	if os.Getenv("FACEHARVEST_UPDATE_DOCS") != "" {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(path)
	if err != nil || string(have) != doc {
		t.Fatalf("docs/metrics.md differs from the components' registries: run make docs (%v)", err)
	}
}
