package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/audit/audittest"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/proctest"
)

var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// world is MinIO with three verifications the real archiver stored (two
// sharing biz_no loan-7), the embedded broker, and the built binary.
type world struct {
	bin     string
	env     []string
	bucket  *objstore.S3
	cluster bus.Cluster
	recs    []contract.Record
}

func newWorld(t *testing.T) *world {
	t.Helper()
	bin := proctest.Build(t, t.TempDir(), "faceharvest")
	srv, b := audittest.MinIOBucket(t)
	broker, err := devkafka.Start(devkafka.Config{Topics: []string{contract.DefaultResultsTopic, contract.DefaultDLQTopic, contract.DefaultRawTopic, contract.DefaultAuditTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	recs := audittest.Archive(t, b,
		audittest.Verification{Vendor: contract.Megvii, ID: "m-1", BizNo: "loan-7", DecidedAt: t0.Add(2 * time.Hour), Seed: 1},
		audittest.Verification{Vendor: contract.Baidu, ID: "b-1", BizNo: "loan-7", DecidedAt: t0.Add(time.Hour), Seed: 2},
		audittest.Verification{Vendor: contract.Megvii, ID: "m-2", BizNo: "loan-8", DecidedAt: t0.Add(3 * time.Hour), Seed: 3})
	return &world{bin: bin, bucket: b, cluster: bus.Plain(broker.Addr()), recs: recs, env: []string{
		"AWS_EC2_METADATA_DISABLED=true", "HOME=" + t.TempDir(), "USER=root", "FACEHARVEST_VIEWER=ana@compliance",
		"FACEHARVEST_S3_ENDPOINT=" + srv.Endpoint, "FACEHARVEST_S3_BUCKET=evidence",
		"AWS_ACCESS_KEY_ID=" + srv.User, "AWS_SECRET_ACCESS_KEY=" + srv.Password,
		"FACEHARVEST_KAFKA_BROKERS=" + broker.Addr()}}
}

// run runs the binary and returns its stdout, stderr and exit code.
func (w *world) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return w.runEnv(t, w.env, args...)
}

// runEnv runs the binary with env.
func (w *world) runEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.bin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (w *world) views(t *testing.T, args ...string) []audit.View {
	t.Helper()
	out, errs, code := w.run(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, errs)
	}
	var vs []audit.View
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return vs
}

func download(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return b
}

func TestShowAndFind(t *testing.T) {
	w := newWorld(t)
	stored := map[string][]byte{}
	for _, r := range w.recs {
		b, _ := json.Marshal(r)
		stored[contract.Key(r.Vendor, r.VerificationID)] = b
	}
	t.Run("show", func(t *testing.T) {
		vs := w.views(t, "show", "baidu:b-1", "--output", "json", "--url-expiry", "2m", "--identity")
		if len(vs) != 1 || vs[0].Key != "baidu:b-1" || vs[0].RecordID != contract.RecordID(contract.Baidu, "b-1") {
			t.Fatalf("%+v", vs)
		}
		v := vs[0]
		if !bytes.Equal(v.Record, stored["baidu:b-1"]) {
			t.Fatalf("record:\n%s\nwant the published\n%s", v.Record, stored["baidu:b-1"])
		}
		var what []string
		for _, m := range v.Timeline {
			what = append(what, m.What)
		}
		if strings.Join(what, ",") != "issued,completed,harvested,decided,archived" {
			t.Fatalf("timeline %v", what)
		}
		// The evidence, the record, and six images of two attempts.
		if len(v.Links) != 8 || v.Links[0].What != "evidence" || v.Links[1].What != "record" {
			t.Fatalf("%d links: %+v", len(v.Links), v.Links)
		}
		attempts := map[int]int{}
		for _, l := range v.Links {
			u, _ := url.Parse(l.URL)
			if u.Query().Get("X-Amz-Expires") != "120" {
				t.Fatalf("link expiry %s", u.Query().Get("X-Amz-Expires"))
			}
			body := download(t, l.URL)
			sum := sha256.Sum256(body)
			if hex.EncodeToString(sum[:]) != l.SHA256 {
				t.Fatalf("%s: the download does not match its SHA-256", l.Key)
			}
			attempts[l.Attempt]++
		}
		if attempts[1] != 3 || attempts[2] != 3 {
			t.Fatalf("links by attempt %v", attempts)
		}
		text, _, code := w.run(t, "show", "megvii:m-1")
		for _, s := range []string{"megvii:m-1", "biz_no", "loan-7", "harvested", "window left at harvest", "23h0m0s", "image_best", "X-Amz-Expires=900"} {
			if code != 0 || !strings.Contains(text, s) {
				t.Fatalf("text lacks %q (exit %d):\n%s", s, code, text)
			}
		}
		if strings.Contains(text, audittest.MegviiIDNumber) {
			t.Fatal("the full ID number was shown")
		}
		// Without --identity: the record and image_best are linked; the
		// evidence document and both ID-card sides are named as withheld.
		if n := strings.Count(text, "X-Amz-Expires="); n != 2 || !strings.Contains(text, "withheld") || !strings.Contains(text, "idcard_front") {
			t.Fatalf("without --identity: %d links, want 2 and the rest withheld:\n%s", n, text)
		}
	})
	t.Run("find two verifications sharing a biz_no", func(t *testing.T) {
		vs := w.views(t, "find", "--biz-no", "loan-7", "--output", "json")
		if len(vs) != 2 || vs[0].Key != "baidu:b-1" || vs[1].Key != "megvii:m-1" {
			t.Fatalf("%d views", len(vs))
		}
		for _, v := range vs {
			if !bytes.Equal(v.Record, stored[v.Key]) {
				t.Fatalf("%s: not the stored record", v.Key)
			}
		}
	})
	t.Run("not found and bad usage", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			code int
		}{
			{[]string{"show", "megvii:nope"}, 3},
			{[]string{"find", "--biz-no", "loan-9"}, 3},
			{[]string{"show", "other:m-1"}, 2},
			{[]string{"show"}, 2},
			{[]string{"show", "megvii:m-1", "--url-expiry", "200h"}, 2},
			{[]string{"show", "megvii:m-1", "--output", "xml"}, 2},
			{[]string{"nope"}, 2},
		} {
			_, errs, code := w.run(t, c.args...)
			if code != c.code {
				t.Errorf("%v: exit %d, want %d (%s)", c.args, code, c.code, errs)
			}
			if strings.Contains(errs, "faceharvest-dev-password") {
				t.Fatal("the secret key reached stderr")
			}
		}
	})
}

// auditEvents reads every event on the audit topic, oldest first.
func (w *world) auditEvents(t *testing.T) []contract.AuditEvent {
	t.Helper()
	var out []contract.AuditEvent
	for _, m := range readTopic(t, w.cluster, contract.DefaultAuditTopic) {
		var e contract.AuditEvent
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatal(err)
		}
		if header(m, contract.HeaderID) != e.ID || string(m.Key) != e.Viewer || header(m, "ce_type") != contract.TypeAudit || header(m, "ce_source") != "faceharvest" {
			t.Fatalf("message %s %v does not carry event %+v", m.Key, m.Headers, e)
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// linked is every key the views linked, and their one expiry.
func linked(t *testing.T, vs []audit.View) ([]string, time.Time) {
	t.Helper()
	var keys []string
	var exp time.Time
	for _, v := range vs {
		for _, l := range v.Links {
			keys = append(keys, l.Key)
			if !exp.IsZero() && !l.ExpiresAt.Equal(exp) {
				t.Fatalf("links expire at %s and %s", exp, l.ExpiresAt)
			}
			exp = l.ExpiresAt
		}
	}
	return keys, exp
}

func TestShowAndFindAreAudited(t *testing.T) {
	w := newWorld(t)
	before := time.Now().UTC()
	vs := w.views(t, "show", "baidu:b-1", "--output", "json", "--url-expiry", "2m", "--identity")
	es := w.auditEvents(t)
	if len(es) != 1 {
		t.Fatalf("show wrote %d audit events, want 1: %+v", len(es), es)
	}
	keys, exp := linked(t, vs)
	e := es[0]
	if e.ID == "" || e.Viewer != "ana@compliance" || e.Role != contract.RoleOperator || e.Via != "faceharvest" || e.Action != contract.AuditRecord ||
		e.Vendor != contract.Baidu || e.VerificationID != "b-1" || e.BizNo != "loan-7" || !e.Record || !e.IdentityUnmasked ||
		strings.Join(e.Verifications, ",") != "baidu:b-1" || e.At.Before(before.Add(-time.Second)) {
		t.Fatalf("event %+v", e)
	}
	if len(keys) != 8 || strings.Join(e.LinkedKeys, ",") != strings.Join(keys, ",") || e.LinksExpireAt == nil || !e.LinksExpireAt.Equal(exp) {
		t.Fatalf("event links %v until %v, want %v until %s", e.LinkedKeys, e.LinksExpireAt, keys, exp)
	}
	if d := exp.Sub(e.At); d < 2*time.Minute-time.Second || d > 2*time.Minute+time.Second {
		t.Fatalf("links expire %s after the event", d)
	}

	// The text display and a find are one event each; the find names
	// both verifications and every link it printed.
	if _, errs, code := w.run(t, "show", "megvii:m-1", "--viewer", "bo"); code != 0 {
		t.Fatal(errs)
	}
	vs = w.views(t, "find", "--biz-no", "loan-7", "--output", "json", "--identity")
	es = w.auditEvents(t)
	if len(es) != 3 {
		t.Fatalf("%d audit events after three displays", len(es))
	}
	// Without --identity nothing linked shows the identity.
	if e := es[1]; e.Viewer != "bo" || e.Action != contract.AuditRecord || e.VerificationID != "m-1" || len(e.LinkedKeys) != 2 || e.IdentityUnmasked {
		t.Fatalf("text show: %+v", e)
	}
	keys, exp = linked(t, vs)
	e = es[2]
	// A link to an evidence document is a link to the unmasked identity.
	if e.Action != contract.AuditSearch || e.BizNo != "loan-7" || e.Vendor != "" || e.VerificationID != "" || !e.Record || !e.IdentityUnmasked ||
		strings.Join(e.Verifications, ",") != "baidu:b-1,megvii:m-1" || strings.Join(e.LinkedKeys, ",") != strings.Join(keys, ",") ||
		e.LinksExpireAt == nil || !e.LinksExpireAt.Equal(exp) {
		t.Fatalf("find: %+v", e)
	}

	// What shows nothing records nothing: not found, no viewer.
	noViewer := w.env[:0:0]
	for _, kv := range w.env {
		if !strings.HasPrefix(kv, "FACEHARVEST_VIEWER=") {
			noViewer = append(noViewer, kv)
		}
	}
	for _, c := range []struct {
		env  []string
		args []string
		code int
	}{
		{w.env, []string{"show", "megvii:nope"}, 3},
		{w.env, []string{"find", "--biz-no", "loan-9"}, 3},
		{noViewer, []string{"show", "megvii:m-1"}, 2},
	} {
		out, errs, code := w.runEnv(t, c.env, c.args...)
		if code != c.code || out != "" {
			t.Fatalf("%v: exit %d, want %d; stdout %q; %s", c.args, code, c.code, out, errs)
		}
	}
	if n := len(w.auditEvents(t)); n != 3 {
		t.Fatalf("%d audit events, want still 3", n)
	}

	// When the event cannot be written nothing is shown: a missing audit
	// topic, brokers that do not answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"topic missing", w.env, []string{"show", "megvii:m-1", "--audit-topic", "faceid.audit.missing"}, "faceid.audit.missing"},
		{"broker unreachable", append(slices.Clone(w.env), "FACEHARVEST_KAFKA_BROKERS="+dead), []string{"show", "megvii:m-1"}, "nothing was shown"},
		{"broker unreachable, find", append(slices.Clone(w.env), "FACEHARVEST_KAFKA_BROKERS="+dead), []string{"find", "--biz-no", "loan-7", "--output", "json"}, "nothing was shown"},
	} {
		out, errs, code := w.runEnv(t, c.env, c.args...)
		if code != 1 || out != "" || !strings.Contains(errs, c.want) {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q (want exit 1, nothing printed, %q)", c.name, code, out, errs, c.want)
		}
	}
	if n := len(w.auditEvents(t)); n != 3 {
		t.Fatalf("%d audit events, want still 3", n)
	}
}

// readTopic reads every record of topic: ce_id -> values in order.
func readTopic(t *testing.T, cl bus.Cluster, topic string) []contract.Message {
	t.Helper()
	parts, err := bus.PartitionCount(context.Background(), cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []contract.Message
	for p := range parts {
		if err := bus.ReadRange(context.Background(), cl, topic, p, -1, func(m contract.Message) { out = append(out, m) }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func header(m contract.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

func TestReplayFromTheStore(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	c := w.cluster.Client(time.Minute)
	// faceid.results lost everything: deleted and created again, empty.
	if _, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{contract.DefaultResultsTopic}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: contract.DefaultResultsTopic, NumPartitions: 3, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{} // ce_id -> the published record
	for _, r := range w.recs {
		b, _ := json.Marshal(r)
		want[contract.RecordID(r.Vendor, r.VerificationID)] = b
	}
	check := func(ms []contract.Message) map[string][]byte {
		t.Helper()
		dedup := map[string][]byte{}
		for _, m := range ms {
			id := header(m, contract.HeaderID)
			if prev, ok := dedup[id]; ok && !bytes.Equal(prev, m.Value) {
				t.Fatalf("%s published with different bytes", id)
			}
			dedup[id] = m.Value
			if !bytes.Equal(m.Value, want[id]) {
				t.Fatalf("%s:\n%s\nwant\n%s", id, m.Value, want[id])
			}
			if header(m, "ce_type") != contract.TypeRecord || header(m, "ce_source") != "/archiver" {
				t.Fatalf("headers %v", m.Headers)
			}
		}
		return dedup
	}
	cp := filepath.Join(t.TempDir(), "replay.checkpoint")
	// A bounded run, then its resumption from the checkpoint.
	out, errs, code := w.run(t, "replay", "--from-store", "--to-topic", contract.DefaultResultsTopic, "--limit", "1", "--checkpoint", cp, "--progress")
	if code != 0 || !strings.Contains(errs, "1 published") {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	if ms := readTopic(t, w.cluster, contract.DefaultResultsTopic); len(ms) != 1 {
		t.Fatalf("--limit 1 published %d", len(ms))
	}
	out, errs, code = w.run(t, "replay", "--from-store", "--to-topic", contract.DefaultResultsTopic, "--checkpoint", cp)
	var pr audit.ReplayProgress
	if code != 0 || json.Unmarshal([]byte(out), &pr) != nil || pr.Published != 2 || pr.Changed != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	ms := readTopic(t, w.cluster, contract.DefaultResultsTopic)
	if got := check(ms); len(ms) != 3 || len(got) != 3 {
		t.Fatalf("%d messages, %d ids", len(ms), len(got))
	}
	// A second full run: the same ids and bytes, nothing new to a
	// consumer that deduplicates on ce_id.
	if _, errs, code := w.run(t, "replay", "--from-store", "--to-topic", contract.DefaultResultsTopic); code != 0 {
		t.Fatal(errs)
	}
	ms = readTopic(t, w.cluster, contract.DefaultResultsTopic)
	if got := check(ms); len(ms) != 6 || len(got) != 3 {
		t.Fatalf("%d messages, %d ids", len(ms), len(got))
	}
	// Filters.
	out, _, _ = w.run(t, "replay", "--from-store", "--to-topic", contract.DefaultResultsTopic, "--vendor", "baidu", "--since", "2026-11-23T08:30:00Z")
	if json.Unmarshal([]byte(out), &pr) != nil || pr.Published != 1 || pr.Total != 1 {
		t.Fatalf("%s", out)
	}
	out, _, _ = w.run(t, "replay", "--from-store", "--to-topic", contract.DefaultResultsTopic, "--vendor", "megvii", "--since", "2026-11-23T10:30:00Z")
	if json.Unmarshal([]byte(out), &pr) != nil || pr.Published != 1 || pr.Skipped != 1 {
		t.Fatalf("%s", out)
	}
}

func TestDeadLettersListAndRedriveOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	dls := bus.NewDeadLetters(bus.DeadLetterConfig{})
	// Two raw messages the archiver could not use: one dead-lettered
	// inline, one with its payload in the store.
	srcs := []contract.Message{
		{Topic: contract.DefaultRawTopic, Partition: 1, Offset: 41, Key: []byte("megvii:x-1"), Value: []byte(`{"inline":true}`), Headers: []contract.Header{{Key: contract.HeaderID, Value: []byte("id-1")}}},
		{Topic: contract.DefaultRawTopic, Partition: 2, Offset: 42, Key: []byte("baidu:x-2"), Value: []byte(`{"stored":true,"id_number":"110101199003071234"}`), Headers: []contract.Header{{Key: contract.HeaderID, Value: []byte("id-2")}}},
	}
	first := dls.Message(srcs[0], "bad_envelope: no ce_type")
	second, err := bus.DeadLetterPayloads{Store: w.bucket}.Apply(ctx, srcs[1], dls.Message(srcs[1], "bad_terminal: unknown outcome"))
	if err != nil {
		t.Fatal(err)
	}
	dw := bus.NewWriter(bus.WriterConfig{Cluster: w.cluster, Topic: contract.DefaultDLQTopic})
	defer dw.Close()
	if err := dw.WriteMessages(ctx, first, second); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Partition  int    `json:"partition"`
		Offset     int64  `json:"offset"`
		Reason     string `json:"reason"`
		Source     string `json:"source"`
		Size       int    `json:"size"`
		PayloadRef string `json:"payload_ref"`
		Redriven   bool   `json:"redriven"`
	}
	list := func() []row {
		out, errs, code := w.run(t, "dlq", "list", "--output", "json")
		var rs []row
		if code != 0 || json.Unmarshal([]byte(out), &rs) != nil {
			t.Fatalf("exit %d: %s %s", code, out, errs)
		}
		return rs
	}
	rs := list()
	if len(rs) != 2 {
		t.Fatalf("%+v", rs)
	}
	var ids []string
	for _, r := range rs {
		if r.Redriven || r.Size == 0 || !strings.HasPrefix(r.Source, contract.DefaultRawTopic+"/") {
			t.Fatalf("%+v", r)
		}
		if strings.HasPrefix(r.Reason, "bad_terminal") != (r.PayloadRef != "") {
			t.Fatalf("%+v", r)
		}
		ids = append(ids, jsonPos(r.Partition, r.Offset))
	}
	text, _, _ := w.run(t, "dlq", "list")
	if !strings.Contains(text, "bad_envelope: no ce_type") || !strings.Contains(text, "payload in the store") {
		t.Fatalf("%s", text)
	}
	for run := 0; run < 2; run++ {
		if _, errs, code := w.run(t, "dlq", "redrive", "--offset", strings.Join(ids, ",")); code != 0 {
			t.Fatalf("run %d: exit %d: %s", run, code, errs)
		}
	}
	if _, errs, code := w.run(t, "dlq", "redrive", "--reason", "bad_"); code != 0 {
		t.Fatalf("by reason: %s", errs)
	}
	raw := readTopic(t, w.cluster, contract.DefaultRawTopic)
	if len(raw) != 2 {
		t.Fatalf("%d messages sent back, want 2 (once each)", len(raw))
	}
	got := map[string]string{}
	for _, m := range raw {
		got[string(m.Key)] = string(m.Value)
		if header(m, bus.HeaderDLQReason) != "" || header(m, bus.HeaderDLQPayloadRef) != "" || header(m, contract.HeaderID) == "" {
			t.Fatalf("headers %v", m.Headers)
		}
	}
	if got["megvii:x-1"] != string(srcs[0].Value) || got["baidu:x-2"] != string(srcs[1].Value) {
		t.Fatalf("%v", got)
	}
	for _, r := range list() {
		if !r.Redriven {
			t.Fatalf("%+v not marked", r)
		}
	}
	if _, _, code := w.run(t, "dlq", "redrive", "--offset", "0/999"); code != 3 {
		t.Fatalf("an unknown offset: exit %d", code)
	}
}

func jsonPos(p int, o int64) string {
	b, _ := json.Marshal(p)
	c, _ := json.Marshal(o)
	return string(b) + "/" + string(c)
}
