package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/devs3"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/proctest"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

const (
	rawTopic     = "faceid.results.raw"
	resultsTopic = "faceid.results"
	dlqTopic     = "faceid.dlq"
	bucket       = "evidence"
)

// syncBuffer collects logs written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func minio(t *testing.T) (string, *devs3.Server) {
	return devs3test.Binary(t), devs3test.Start(t)
}

// megviiMessages is a harvested Megvii verification as the harvester
// publishes it: the get_result answer with three images, then the terminal.
func megviiMessages(t testing.TB, id string, seed int) []contract.Message {
	b64 := func(b []byte) string { return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(b) }
	body := mustJSON(t, map[string]any{"request_id": "r-" + id, "status": "OK", "biz_info": map[string]any{"biz_id": id, "biz_no": "no-" + id},
		"liveness_result": map[string]any{"result": "PASS", "procedure_type": "video"},
		"verify_result":   map[string]any{"result_faceid": map[string]any{"confidence": 77.1, "thresholds": map[string]any{"1e-3": 62.2}}},
		"images":          map[string]any{"image_best": b64(testJPEG(t, seed)), "image_idcard_front": b64(testJPEG(t, seed+1000)), "image_idcard_back": b64(testJPEG(t, seed+2000))}})
	r := response(contract.Megvii, id, "get_result", body)
	term := terminal(contract.Megvii, id, contract.OutcomeHarvested)
	term.Responses = []string{contract.ResponseID(contract.Megvii, id, "get_result", 0)}
	return []contract.Message{r.Message("/harvester"), term.Message("/harvester")}
}

func produce(t testing.TB, w *bus.Writer, ms ...contract.Message) {
	t.Helper()
	if err := w.WriteMessages(context.Background(), ms...); err != nil {
		t.Fatal(err)
	}
}

// readTopic calls fn for every message of topic, partition by partition,
// from next[p] (a partition's start when absent) to the end the partition
// has when its read begins, and moves next past what it read; next may be
// nil. (A timed poll could end before a slow broker answered.)
func readTopic(t testing.TB, brokers []string, topic string, next map[int]int64, fn func(contract.Message)) {
	t.Helper()
	cl := bus.Plain(brokers...)
	ctx := context.Background()
	parts, err := bus.PartitionCount(ctx, cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	for p := range parts {
		from, ok := next[p]
		if !ok {
			from = -1
		}
		err := bus.ReadRange(ctx, cl, topic, p, from, func(m contract.Message) {
			if next != nil {
				next[p] = m.Offset + 1
			}
			fn(m)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// collector reads the results and dead-letter topics on from where its last
// read ended.
type collector struct {
	brokers []string
	next    map[string]map[int]int64 // topic -> partition -> next offset
	records map[string][]byte        // ce_id -> value
	dups    int
	dlq     []string
}

func newCollector(brokers []string) *collector {
	return &collector{brokers: brokers, records: map[string][]byte{},
		next: map[string]map[int]int64{resultsTopic: {}, dlqTopic: {}}}
}

// poll reads both topics to their ends until until holds, for within at
// most.
func (c *collector) poll(t *testing.T, until func() bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !until() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out with %d records and %d dead letters", len(c.records), len(c.dlq))
		}
		c.read(t)
		if !until() {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// read reads both topics from where the last read ended to their ends.
func (c *collector) read(t *testing.T) {
	t.Helper()
	readTopic(t, c.brokers, dlqTopic, c.next[dlqTopic], func(m contract.Message) {
		reason, _ := m.Header(contract.HeaderDLQReason)
		c.dlq = append(c.dlq, string(reason))
	})
	readTopic(t, c.brokers, resultsTopic, c.next[resultsTopic], func(m contract.Message) {
		b, _ := m.Header(contract.HeaderID)
		id := string(b)
		if prev, ok := c.records[id]; ok {
			c.dups++
			if !bytes.Equal(prev, m.Value) {
				t.Errorf("record %s published twice with different content", id)
			}
		}
		c.records[id] = m.Value
	})
}

// The archiver against a real MinIO process and the embedded broker: both
// vendors, a 12 MB video, expired links, duplicates, garbage envelopes, and
// the store going down mid-stream and coming back. Every record validates,
// every referenced object exists, nothing is lost, and awscli reads what was
// stored.
func TestArchiverWithMinIOAndKafka(t *testing.T) {
	bin, s3srv := minio(t)
	defer func() { s3srv.Stop() }()
	broker, err := devkafka.Start(devkafka.Config{Topics: []string{rawTopic, resultsTopic, dlqTopic}, MaxMessageBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}
	s3b, err := objstore.NewS3(objstore.S3Config{Endpoint: s3srv.Endpoint, Bucket: bucket, PathStyle: true, PartSize: 5 << 20,
		AccessKey: config.NewSecret(s3srv.User), SecretKey: config.NewSecret(s3srv.Password)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s3b.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	media, _ := mediaServer(t)
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := DefaultConfig()
	cfg.Store, cfg.HTTP, cfg.SpoolDir, cfg.RetryMin, cfg.RetryMax, cfg.Logger = s3b, media.Client(), t.TempDir(), 20*time.Millisecond, 200*time.Millisecond, log
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := testRunConfig(brokers, "archiver-test")
	rc.Logger = log
	r, err := NewRunner(ctx, rc, a)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	w := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(brokers...), Topic: rawTopic, BatchBytes: 64 << 20})
	defer w.Close()
	want := map[string]bool{}
	for i := range 20 {
		id := fmt.Sprintf("m-%02d", i)
		produce(t, w, megviiMessages(t, id, i)...)
		want[contract.RecordID(contract.Megvii, id)] = true
	}
	// Baidu: a video, a link that expired, and the documents' examples.
	for i := range 3 {
		id := fmt.Sprintf("b-%d", i)
		mq := response(contract.Baidu, id, "result/media/query", mustJSON(t, map[string]any{"success": true, "result": map[string]any{
			"processVideo": []string{media.URL + fmt.Sprintf("/v/%d.mp4?authorization=signed-secret", i)}, "images": []string{media.URL + "/expired/x.jpg?authorization=signed-secret"}}}))
		ga := response(contract.Baidu, id, "result/getall", vendordocs.MustExample("baidu_result_getall.json"))
		term := terminal(contract.Baidu, id, contract.OutcomeHarvested)
		term.Responses = []string{contract.ResponseID(contract.Baidu, id, "result/getall", 0), contract.ResponseID(contract.Baidu, id, "result/media/query", 0)}
		produce(t, w, ga.Message("/harvester"), mq.Message("/harvester"), term.Message("/harvester"))
		want[contract.RecordID(contract.Baidu, id)] = true
	}
	// Duplicates: a harvester that crashed before committing publishes again.
	produce(t, w, megviiMessages(t, "m-03", 3)...)
	// Garbage: no CloudEvents headers, an unknown type, a terminal of an
	// unknown vendor, a response whose key lies.
	bad := terminal(contract.Megvii, "m-x", contract.OutcomeHarvested).Message("/harvester")
	bad.Value = []byte(`{"vendor":"acme","verification_id":"m-x","outcome":"harvested","decided_at":"2026-11-23T08:00:00Z"}`)
	liar := response(contract.Megvii, "m-y", "get_result", []byte(`{}`)).Message("/harvester")
	liar.Key = []byte("megvii:someone-else")
	unknown := terminal(contract.Megvii, "m-z", contract.OutcomeHarvested).Message("/harvester")
	for i := range unknown.Headers {
		if unknown.Headers[i].Key == contract.HeaderType {
			unknown.Headers[i].Value = []byte("com.example.other")
		}
	}
	produce(t, w, contract.Message{Key: []byte("megvii:junk"), Value: []byte("junk")}, bad, liar, unknown)

	c := newCollector(brokers)
	c.poll(t, func() bool { return len(c.records) == len(want) && len(c.dlq) == 4 && c.dups == 1 }, 90*time.Second)
	schema := schematest.Compile(t)
	check := func() {
		for id, v := range c.records {
			if !want[id] {
				t.Errorf("unexpected record %s", id)
			}
			schematest.Validate(t, schema, v)
			var rec contract.Record
			if err := json.Unmarshal(v, &rec); err != nil {
				t.Fatal(err)
			}
			refs := []contract.ObjectRef{*rec.Evidence}
			for _, m := range rec.Media {
				if m.Status == contract.MediaStored {
					refs = append(refs, m.ObjectRef)
				}
			}
			for _, ref := range refs {
				at, err := s3b.Attributes(context.Background(), ref.Key)
				if err != nil || at.Size != ref.Size {
					t.Errorf("%s references %s: %v (size %d, want %d)", id, ref.Key, err, at.Size, ref.Size)
				}
			}
		}
	}
	check()
	var video contract.MediaRef
	{
		var rec contract.Record
		_ = json.Unmarshal(c.records[contract.RecordID(contract.Baidu, "b-0")], &rec)
		for _, m := range rec.Media {
			if m.Kind == "process_video" {
				video = m
			}
		}
		if video.Status != contract.MediaStored || video.Size != int64(len(mp4(3<<20))) || len(rec.Problems) == 0 {
			t.Fatalf("baidu record: %+v problems %q", rec.Media, rec.Problems)
		}
	}

	// The store goes down mid-stream: nothing is published until it is back.
	s3srv.Stop()
	for i := 20; i < 30; i++ {
		id := fmt.Sprintf("m-%02d", i)
		produce(t, w, megviiMessages(t, id, i)...)
		want[contract.RecordID(contract.Megvii, id)] = true
	}
	// Ten store retries: the archiver has been at the new verifications for
	// a while (a second at least, at RetryMin 20 ms doubling to RetryMax).
	retries0 := testutil.ToFloat64(a.m.storeRetry)
	deadline := time.Now().Add(3 * time.Minute)
	for testutil.ToFloat64(a.m.storeRetry) < retries0+10 {
		if time.Now().After(deadline) {
			t.Fatalf("%v store retries in 3 minutes while the store was down, want 10", testutil.ToFloat64(a.m.storeRetry)-retries0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the results topic holds now is what was published without a
	// store.
	c.read(t)
	if n := len(c.records); n != 23 {
		t.Fatalf("%d records before the store came back, want the 23 published before it went down", n)
	}
	if s3srv, err = devs3.StartOn(bin, s3srv.DataDir, s3srv.User, s3srv.Password, s3srv.Addr()); err != nil {
		t.Fatal(err)
	}
	c.poll(t, func() bool { return len(c.records) == len(want) }, 120*time.Second)
	check()
	if testutil.ToFloat64(a.m.storeDown) != 0 {
		t.Error("store still marked failing")
	}
	// Law 6: every dead letter counted. Law 7: the full ID number of the
	// getall example and the links' signatures are in no record and no log.
	if n := testutil.ToFloat64(a.m.deadLetters.WithLabelValues("bad_envelope")) + testutil.ToFloat64(a.m.deadLetters.WithLabelValues("bad_terminal")) +
		testutil.ToFloat64(a.m.deadLetters.WithLabelValues("bad_key")) + testutil.ToFloat64(a.m.deadLetters.WithLabelValues("unknown_type")); n != 4 {
		t.Errorf("dead letters counted: %v, want 4", n)
	}
	for id, v := range c.records {
		for _, secret := range []string{"36213219923232X", "signed-secret"} {
			if strings.Contains(string(v), secret) {
				t.Errorf("record %s carries %q", id, secret)
			}
		}
	}
	for _, secret := range []string{"36213219923232X", "signed-secret", s3srv.Password} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs carry %q", secret)
		}
	}
	if !strings.Contains(logs.String(), "store operation failed; retrying") {
		t.Error("the store outage was not logged")
	}

	// A real S3 client lists and downloads what was archived.
	aws, err := exec.LookPath("aws")
	proctest.NeedTool(t, "awscli", err)
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3srv.User, "AWS_SECRET_ACCESS_KEY="+s3srv.Password, "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	ls := exec.Command(aws, "--endpoint-url", s3srv.Endpoint, "s3", "ls", "--recursive", "s3://"+bucket+"/baidu/")
	ls.Env = env
	out, err := ls.CombinedOutput()
	if err != nil || !strings.Contains(string(out), video.Key) {
		t.Fatalf("aws s3 ls: %v\n%s", err, out)
	}
	dst := filepath.Join(t.TempDir(), "video.mp4")
	cp := exec.Command(aws, "--endpoint-url", s3srv.Endpoint, "s3", "cp", "s3://"+bucket+"/"+video.Key, dst)
	cp.Env = env
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("aws s3 cp: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(dst)
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != video.SHA256 {
		t.Fatal("awscli downloaded other bytes than the record's sha256")
	}
}
