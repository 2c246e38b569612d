package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// Every topic states how long it keeps what it holds, the same in the
// Strimzi resources and in create-topics.sh; topics that delete by time say
// so with retention.ms, and the events topic's retention stays within the
// harvester's --closed-retention (a closed verification's marker must
// outlive every event that could reopen it).
func TestTopicRetention(t *testing.T) {
	dir := filepath.Join(root(t), "deploy", "k8s", "topics")
	raw, err := os.ReadFile(filepath.Join(dir, "kafkatopics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yamlTopics := map[string]map[string]string{}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var k kafkaTopic
		if err := yaml.UnmarshalStrict([]byte(doc), &k); err != nil {
			t.Fatal(err)
		}
		name := k.Spec.TopicName
		yamlTopics[name] = k.Spec.Config
		comment := strings.ToLower(doc[:strings.Index(doc, "apiVersion:")])
		if !strings.Contains(comment, "retention") || !strings.Contains(comment, "personal data") {
			t.Errorf("%s: its comment must say what personal data it holds and why its retention is what it is", name)
		}
		switch k.Spec.Config["cleanup.policy"] {
		case "delete":
			if _, err := strconv.ParseInt(k.Spec.Config["retention.ms"], 10, 64); err != nil {
				t.Errorf("%s: deletes by time but sets no retention.ms", name)
			}
		case "compact":
			if k.Spec.Config["delete.retention.ms"] == "" {
				t.Errorf("%s: compacted without delete.retention.ms (how long tombstones stay)", name)
			}
		case "compact,delete":
			if _, err := strconv.ParseInt(k.Spec.Config["retention.ms"], 10, 64); err != nil || k.Spec.Config["delete.retention.ms"] == "" {
				t.Errorf("%s: compacted and deleted by time needs retention.ms and delete.retention.ms", name)
			}
		default:
			t.Errorf("%s: cleanup.policy %q", name, k.Spec.Config["cleanup.policy"])
		}
	}
	script, err := os.ReadFile(filepath.Join(dir, "create-topics.sh"))
	if err != nil {
		t.Fatal(err)
	}
	scriptTopics := map[string]map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^create (\S+)(.*)$`).FindAllStringSubmatch(string(script), -1) {
		cfg := map[string]string{}
		for _, c := range regexp.MustCompile(`--config (\S+)=(\S+)`).FindAllStringSubmatch(m[2], -1) {
			cfg[c[1]] = c[2]
		}
		scriptTopics[m[1]] = cfg
	}
	if len(scriptTopics) != len(yamlTopics) {
		t.Errorf("create-topics.sh makes %d topics, kafkatopics.yaml %d", len(scriptTopics), len(yamlTopics))
	}
	for name, cfg := range yamlTopics {
		for k, v := range cfg {
			if scriptTopics[name][k] != v {
				t.Errorf("%s: %s is %q in kafkatopics.yaml, %q in create-topics.sh", name, k, v, scriptTopics[name][k])
			}
		}
		if len(scriptTopics[name]) != len(cfg) {
			t.Errorf("%s: create-topics.sh sets %v, kafkatopics.yaml %v", name, scriptTopics[name], cfg)
		}
	}
	ms, _ := strconv.ParseInt(yamlTopics["faceid.events"]["retention.ms"], 10, 64)
	closed := harvesterDefault(t, "closed-retention")
	if time.Duration(ms)*time.Millisecond > closed {
		t.Errorf("faceid.events keeps events %s, longer than the harvester's --closed-retention %s", time.Duration(ms)*time.Millisecond, closed)
	}
}

// harvesterDefault reads a duration flag's default from the harvester's --help.
func harvesterDefault(t *testing.T, flag string) time.Duration {
	t.Helper()
	help := helpText(t, "harvester")
	m := regexp.MustCompile(`--` + regexp.QuoteMeta(flag) + ` duration\n[^\n]*\(default ([0-9hms.]+)\)`).FindStringSubmatch(help)
	if m == nil {
		t.Fatalf("no default for --%s in the harvester's --help", flag)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}
