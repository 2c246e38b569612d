package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/audit/web/webtest"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/proctest"
)

// checkViewer is who the audit check's views are recorded as, both by
// faceharvest show (--viewer) and by the page (its own bearer token), so
// that its events can be told from a person's browsing the page meanwhile.
const checkViewer = "devstack check"

// published is one record on faceid.results.
type published struct {
	key   string // <vendor>:<id>
	value []byte
}

// auditCheck is what the audit step found; problems are its failures.
type auditCheck struct {
	records             int
	shown, pages, media int // answered as they should
	views, events       int // views answered (each should be one event), events found
	published, changed  int // by the replay from the store
	replayed, identical int
	browsed             []string // the pages opened in the browser
	browserSkipped      bool     // no chromium
	problems            []string
}

func (c *auditCheck) fail(format string, a ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, a...))
}

// auditSummary is the audit check in the run's summary (--summary-out).
type auditSummary struct {
	Records         int      `json:"records"`
	Shown           int      `json:"shown"`
	Pages           int      `json:"pages"`
	Media           int      `json:"media"`
	Views           int      `json:"views"`
	Events          int      `json:"events"`
	ReplayPublished int      `json:"replay_published"`
	ReplayChanged   int      `json:"replay_changed"`
	Replayed        int      `json:"replayed"`
	Identical       int      `json:"identical"`
	Browsed         []string `json:"browsed"`
	BrowserSkipped  bool     `json:"browser_skipped"`
	Problems        []string `json:"problems"`
	Passed          bool     `json:"passed"`
}

func (c auditCheck) summary() *auditSummary {
	return &auditSummary{Records: c.records, Shown: c.shown, Pages: c.pages, Media: c.media, Views: c.views, Events: c.events,
		ReplayPublished: c.published, ReplayChanged: c.changed, Replayed: c.replayed, Identical: c.identical,
		Browsed: c.browsed, BrowserSkipped: c.browserSkipped, Problems: c.problems, Passed: len(c.problems) == 0}
}

// auditWorkers is how many shows and page views run at once.
const auditWorkers = 4

// checkAudit shows that the store and the audit trail answer for every
// verification on faceid.results: the built faceharvest shows each one's
// record (the same bytes as published, one audit event each), the audit
// page answers each one's page and media (one event per view), and after
// faceid.results is deleted and created again a replay from the store
// publishes the same ce_ids with the same bytes. It prints one line per
// check, and where to look at one verification by hand.
func (s *stack) checkAudit(ctx context.Context) (auditCheck, error) {
	var c auditCheck
	start := time.Now()
	cl := bus.Plain(s.broker)
	recs, err := readRecords(ctx, cl, contract.DefaultResultsTopic)
	if err != nil {
		return c, err
	}
	c.records = len(recs)
	ids := make([]string, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Printf("\naudit check: %d verifications on %s, each shown with faceharvest and on the audit page, then replayed from the store\n", len(ids), contract.DefaultResultsTopic)
	from, err := topicEnds(ctx, cl, contract.DefaultAuditTopic)
	if err != nil {
		return c, err
	}
	if err := s.viewAll(ctx, &c, recs, ids); err != nil {
		return c, err
	}
	// One Megvii and one Baidu page in a real browser.
	br := s.browse(recs, ids)
	c.views += br.views
	c.browsed, c.browserSkipped = br.opened, br.skipped
	c.problems = append(c.problems, br.problems...)
	if err := countEvents(ctx, cl, from, &c); err != nil {
		return c, err
	}
	if err := s.checkReplay(ctx, cl, recs, &c); err != nil {
		return c, err
	}
	for _, p := range c.problems {
		fmt.Println("  UNEXPECTED:", p)
	}
	verdict := "passed"
	if len(c.problems) > 0 {
		verdict = fmt.Sprintf("FAILED (%d problems)", len(c.problems))
	}
	fmt.Printf("  audit check %s in %.1f s\n", verdict, time.Since(start).Seconds())
	s.printTry(recs, ids)
	return c, nil
}

// topicEnds returns the end of each of topic's partitions.
func topicEnds(ctx context.Context, cl bus.Cluster, topic string) ([]int64, error) {
	parts, err := bus.PartitionCount(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	ends := make([]int64, parts)
	for p := range ends {
		if _, ends[p], err = bus.PartitionBounds(ctx, cl, topic, p); err != nil {
			return nil, err
		}
	}
	return ends, nil
}

// viewAll shows each verification with faceharvest show and opens its
// page and media on the audit page, auditWorkers at a time.
func (s *stack) viewAll(ctx context.Context, c *auditCheck, recs map[string]published, ids []string) error {
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range auditWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				sh := s.showOne(ctx, recs[id])
				pg := s.pageOne(ctx, recs[id])
				mu.Lock()
				c.shown += sh.ok
				c.pages += pg.ok
				c.media += pg.mediaOK
				c.views += sh.views + pg.views
				c.problems = append(append(c.problems, sh.problems...), pg.problems...)
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Printf("  faceharvest show:  %d of %d verifications answered with the record published on %s (same ce_id and bytes)\n", c.shown, len(ids), contract.DefaultResultsTopic)
	fmt.Printf("  audit page:        %d of %d pages answered 200; %d media answered 200 image/* or video/*\n", c.pages, len(ids), c.media)
	return nil
}

// countEvents counts the audit events by the check's viewer on faceid.audit
// after from (each partition's end before the views): every view answered
// is one event (shows, pages, media, the browser's).
func countEvents(ctx context.Context, cl bus.Cluster, from []int64, c *auditCheck) error {
	for p := range from {
		err := bus.ReadRange(ctx, cl, contract.DefaultAuditTopic, p, from[p], func(m contract.Message) {
			var e contract.AuditEvent
			if json.Unmarshal(m.Value, &e) == nil && e.Viewer == checkViewer {
				c.events++
			}
		})
		if err != nil {
			return err
		}
	}
	fmt.Printf("  audit events:      %d on %s for %d views answered (shows, pages, media, the browser's)\n", c.events, contract.DefaultAuditTopic, c.views)
	if c.events != c.views {
		c.fail("%d audit events for %d views", c.events, c.views)
	}
	return nil
}

// checkReplay loses faceid.results (deleted, created again), replays it
// from the store with faceharvest replay, and compares it with recs.
func (s *stack) checkReplay(ctx context.Context, cl bus.Cluster, recs map[string]published, c *auditCheck) error {
	if err := s.recreateTopic(ctx, cl, contract.DefaultResultsTopic); err != nil {
		return err
	}
	out, errs, err := s.faceharvest(ctx, "replay", "--from-store", "--to-topic", contract.DefaultResultsTopic)
	if err != nil {
		return fmt.Errorf("faceharvest replay: %w: %s", err, errs)
	}
	var pr audit.ReplayProgress
	if err := json.Unmarshal(out, &pr); err != nil {
		return fmt.Errorf("faceharvest replay printed %q: %w", out, err)
	}
	c.published, c.changed = pr.Published, pr.Changed
	again, err := readRecords(ctx, cl, contract.DefaultResultsTopic)
	if err != nil {
		return err
	}
	c.replayed = len(again)
	for id, r := range recs {
		switch a, ok := again[id]; {
		case !ok:
			c.fail("replay: %s (%s) is missing", r.key, id)
		case !bytes.Equal(a.value, r.value):
			c.fail("replay: %s differs: %s", r.key, jsonDiff(r.value, a.value))
		default:
			c.identical++
		}
	}
	for id, a := range again {
		if _, ok := recs[id]; !ok {
			c.fail("replay: %s (%s) was not on %s before", a.key, id, contract.DefaultResultsTopic)
		}
	}
	if pr.Changed != 0 {
		c.fail("replay: %d records changed", pr.Changed)
	}
	fmt.Printf("  replay:            %s deleted and created again; faceharvest replay --from-store published %d (changed %d); %d of %d ce_ids back with identical bytes, %d others\n",
		contract.DefaultResultsTopic, pr.Published, pr.Changed, c.identical, len(recs), c.replayed-c.identical)
	return nil
}

// printTry prints how to look at one verification by hand: a Megvii one
// with media, when there is one.
func (s *stack) printTry(recs map[string]published, ids []string) {
	if len(ids) == 0 {
		return
	}
	key := recs[ids[0]].key
	for _, id := range ids {
		if strings.HasPrefix(recs[id].key, "megvii:") && bytes.Contains(recs[id].value, []byte(`"`+contract.MediaStored+`"`)) {
			key = recs[id].key
			break
		}
	}
	v, vid, _ := audit.ParseKey(key)
	fmt.Printf("  try:  FACEHARVEST_KAFKA_BROKERS=%s FACEHARVEST_S3_ENDPOINT=%s FACEHARVEST_S3_BUCKET=%s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s %s show %s --viewer \"$USER\"\n",
		s.broker, s.minio.Endpoint, bucket, s.minio.User, s.minio.Password, filepath.Join(s.o.bin, "faceharvest"), key)
	fmt.Printf("  page: http://%s/v/%s/%s (token %s)\n", s.addr("auditor"), v, url.PathEscape(vid), s.auditorTokens[0])
}

// readRecords reads every record of topic by ce_id; a ce_id published
// twice with different bytes is an error (law 2).
func readRecords(ctx context.Context, cl bus.Cluster, topic string) (map[string]published, error) {
	parts, err := bus.PartitionCount(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	out := map[string]published{}
	var bad error
	for p := range parts {
		err := bus.ReadRange(ctx, cl, topic, p, -1, func(m contract.Message) {
			id := ""
			for _, h := range m.Headers {
				if h.Key == contract.HeaderID {
					id = string(h.Value)
				}
			}
			if prev, ok := out[id]; ok && !bytes.Equal(prev.value, m.Value) && bad == nil {
				bad = fmt.Errorf("%s: %s published twice with different bytes", topic, id)
			}
			out[id] = published{key: string(m.Key), value: m.Value}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, bad
}

// faceharvest runs the built operator command against the stack.
func (s *stack) faceharvest(ctx context.Context, args ...string) (stdout []byte, stderr string, err error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.o.bin, "faceharvest"), args...)
	cmd.Env = append(os.Environ(), devEnv...)
	cmd.Env = append(cmd.Env, "FACEHARVEST_KAFKA_BROKERS="+s.broker, "FACEHARVEST_S3_ENDPOINT="+s.minio.Endpoint, "FACEHARVEST_S3_BUCKET="+bucket,
		"FACEHARVEST_VIEWER="+checkViewer)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.Bytes(), strings.TrimSpace(errb.String()), err
}

// viewed is what one verification's shows or page views did: ok when all
// answered as they should, views the answers given (each one audit event).
type viewed struct {
	ok, mediaOK, views int
	problems           []string
	opened             []string // the browser's pages
	skipped            bool     // no browser
}

func (v *viewed) fail(format string, a ...any) viewed {
	v.problems = append(v.problems, fmt.Sprintf(format, a...))
	return *v
}

// showOne runs faceharvest show on one verification and checks that it
// printed the published record.
func (s *stack) showOne(ctx context.Context, r published) viewed {
	var res viewed
	out, errs, err := s.faceharvest(ctx, "show", r.key, "--output", "json")
	if err != nil {
		return res.fail("faceharvest show %s: %v: %s", r.key, err, errs)
	}
	res.views = 1
	var vs []audit.View
	if err := json.Unmarshal(out, &vs); err != nil || len(vs) != 1 {
		return res.fail("faceharvest show %s printed %d views (%v)", r.key, len(vs), err)
	}
	v := vs[0]
	var rec contract.Record
	_ = json.Unmarshal(r.value, &rec)
	if v.Key != r.key || v.RecordID != contract.RecordID(rec.Vendor, rec.VerificationID) {
		return res.fail("faceharvest show %s showed %s (%s)", r.key, v.Key, v.RecordID)
	}
	if !bytes.Equal(v.Record, r.value) {
		return res.fail("faceharvest show %s: not the published record: %s", r.key, jsonDiff(r.value, v.Record))
	}
	res.ok = 1
	return res
}

var mediaRoute = regexp.MustCompile(`"(/v/[^"/]+/[^"/]+/media/[0-9]+)"`)

// pageOne opens one verification's audit page and every media route it
// links, with the check's bearer token.
func (s *stack) pageOne(ctx context.Context, r published) viewed {
	var res viewed
	v, id, err := audit.ParseKey(r.key)
	if err != nil {
		return res.fail("%v", err)
	}
	base := "http://" + s.addr("auditor")
	page := "/v/" + string(v) + "/" + url.PathEscape(id)
	body, ct, code, err := s.auditorGet(ctx, base+page)
	if code == 200 {
		res.views++
	}
	if err != nil || code != 200 || !strings.HasPrefix(ct, "text/html") {
		return res.fail("audit page %s: %d %s %v", page, code, ct, err)
	}
	var rec contract.Record
	_ = json.Unmarshal(r.value, &rec)
	if !bytes.Contains(body, []byte(rec.VerificationID)) || !bytes.Contains(body, []byte(rec.Outcome)) {
		res.fail("audit page %s lacks the record's id or outcome", page)
	}
	// The masked page links every stored media object but the ID-card
	// images (identity data: only the unmasked page shows them).
	stored := 0
	for _, m := range rec.Media {
		if m.Status == contract.MediaStored && !contract.IdentityMedia(m.Kind) {
			stored++
		}
	}
	seen := map[string]bool{}
	for _, m := range mediaRoute.FindAllSubmatch(body, -1) {
		u := string(m[1])
		if seen[u] || !strings.HasPrefix(u, page+"/media/") {
			continue
		}
		seen[u] = true
		b, ct, code, err := s.auditorGet(ctx, base+u)
		if code == 200 {
			res.views++
		}
		if err != nil || code != 200 || !(strings.HasPrefix(ct, "image/") || strings.HasPrefix(ct, "video/")) || len(b) == 0 {
			res.fail("audit page %s: %d %s (%d bytes) %v", u, code, ct, len(b), err)
			continue
		}
		res.mediaOK++
	}
	if len(seen) < stored {
		res.fail("audit page %s links %d media, its record stored %d", page, len(seen), stored)
	}
	if len(res.problems) == 0 {
		res.ok = 1
	}
	return res
}

// auditorGet GETs u with the check's bearer token.
func (s *stack) auditorGet(ctx context.Context, u string) ([]byte, string, int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+s.auditorTokens[2])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.Header.Get("Content-Type"), resp.StatusCode, err
}

// recreateTopic deletes topic and creates it again, empty, with the same
// partitions and message size limit, as a lost topic restored by an
// operator would be.
func (s *stack) recreateTopic(ctx context.Context, cl bus.Cluster, topic string) error {
	parts, err := bus.PartitionCount(ctx, cl, topic)
	if err != nil {
		return err
	}
	set, err := bus.TopicSettings(ctx, cl, topic, "max.message.bytes")
	if err != nil {
		return err
	}
	if err := bus.DeleteTopic(ctx, cl, topic); err != nil {
		return err
	}
	spec := bus.TopicSpec{Name: topic, Partitions: parts, Replicas: 1, Configs: map[string]string{}}
	if v := set["max.message.bytes"]; v != "" {
		spec.Configs["max.message.bytes"] = v
	}
	created := false
	return waitFor(ctx, 30*time.Second, 200*time.Millisecond, func(ctx context.Context) error {
		if !created { // ErrTopicExists while the deletion completes: tried again
			if err := bus.CreateTopic(ctx, cl, spec); err != nil {
				return err
			}
			created = true
		}
		if n, err := bus.PartitionCount(ctx, cl, topic); err != nil || n != parts {
			return fmt.Errorf("%s has %d partitions (%v)", topic, n, err)
		}
		if _, end, err := bus.PartitionBounds(ctx, cl, topic, 0); err != nil || end != 0 {
			return fmt.Errorf("%s not empty yet (end %d, %v)", topic, end, err)
		}
		return nil
	})
}

// browse opens one Megvii and one Baidu verification with stored images in
// headless Chromium, logged in through the form with the check's token,
// and compares the DOM with the record (webtest.Check): its fields, its
// images all loaded through the page. Screenshots go to the data
// directory. Without chromium it is skipped, except under CI=true.
func (s *stack) browse(recs map[string]published, ids []string) viewed {
	var res viewed
	chromium, err := webtest.Chromium()
	if err != nil {
		if proctest.InCI() {
			return res.fail("browser: %v (make chromium installs it)", err)
		}
		fmt.Printf("  browser:           skipped: no chromium (make chromium installs it)\n")
		res.skipped = true
		return res
	}
	var pick []published
	for _, vendor := range []string{"megvii:", "baidu:"} {
		for _, id := range ids {
			r := recs[id]
			var rec contract.Record
			if strings.HasPrefix(r.key, vendor) && json.Unmarshal(r.value, &rec) == nil && rec.Outcome == contract.OutcomeHarvested && hasStoredImage(rec) {
				pick = append(pick, r)
				break
			}
		}
	}
	b, err := webtest.Start(chromium)
	if err != nil {
		return res.fail("browser: %v", err)
	}
	defer b.Close()
	dir := filepath.Join(s.o.dataDir, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res.fail("browser: %v", err)
	}
	var shown []string
	for i, r := range pick {
		var rec contract.Record
		_ = json.Unmarshal(r.value, &rec)
		v, id, _ := audit.ParseKey(r.key)
		page := "http://" + s.addr("auditor") + "/v/" + string(v) + "/" + url.PathEscape(id)
		if i == 0 {
			if _, err := b.Login(page, s.auditorTokens[2]); err != nil {
				return res.fail("browser: %s: %v", r.key, err)
			}
		} else if err := b.Open(page); err != nil {
			return res.fail("browser: %s: %v", r.key, err)
		}
		res.views++
		p, err := b.Read()
		if err != nil {
			return res.fail("browser: %s: %v", r.key, err)
		}
		loaded := 0
		for _, im := range p.Images {
			if im.Width > 0 {
				loaded++
			}
		}
		res.views += loaded
		for _, problem := range webtest.Check(p, rec, page, checkViewer) {
			res.fail("browser: %s: %s", r.key, problem)
		}
		file := filepath.Join(dir, "auditor-"+string(v)+".png")
		if err := b.Screenshot(file); err != nil {
			return res.fail("browser: %s: %v", r.key, err)
		}
		shown = append(shown, fmt.Sprintf("%s (%d of %d images loaded)", r.key, loaded, len(p.Images)))
		res.opened = append(res.opened, r.key)
	}
	if len(pick) < 2 {
		res.fail("browser: no harvested Megvii and Baidu verification with stored images to open")
	}
	fmt.Printf("  browser:           headless Chromium logged in and opened %s; the DOM shows the records' fields; screenshots in %s\n", strings.Join(shown, ", "), dir)
	return res
}

func hasStoredImage(r contract.Record) bool {
	for _, m := range r.Media {
		if m.Status == contract.MediaStored && strings.HasPrefix(m.ContentType, "image/") {
			return true
		}
	}
	return false
}
