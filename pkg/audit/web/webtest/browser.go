// Package webtest drives headless Chromium over the audit page as a person
// would: it logs in through the form, opens a verification's page, reads
// the record's fields from the DOM, waits for every image to load and takes
// a screenshot. cmd/auditor's browser test and devstack's audit check use
// it (development and tests only).
package webtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// Chromium finds the browser (Debian's chromium package).
func Chromium() (string, error) { return exec.LookPath("chromium") }

// Browser is one headless Chromium with one tab.
type Browser struct {
	ctx    context.Context
	cancel []context.CancelFunc
}

// Start runs chromium headless; Close ends it.
func Start(chromium string) (*Browser, error) {
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 2000))...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{ctx: ctx, cancel: []context.CancelFunc{cancel, cancelA}}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		b.Close()
		return nil, fmt.Errorf("starting %s: %w", chromium, err)
	}
	return b, nil
}

// Close stops the browser.
func (b *Browser) Close() {
	for _, c := range b.cancel {
		c()
	}
}

// do runs steps within d.
func (b *Browser) do(d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// run runs one action with a result within d.
func run[T any](b *Browser, d time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// Login opens pageURL without a session, expects the login form (its text
// returned), types token into it and waits for the verification's page it
// leads to.
func (b *Browser) Login(pageURL, token string) (string, error) {
	if err := b.do(30*time.Second, chromedp.Navigate(pageURL), chromedp.WaitVisible(`input[name=token]`)); err != nil {
		return "", fmt.Errorf("login form: %w", err)
	}
	form, err := run(b, 10*time.Second, chromedp.Text(`main`))
	if err != nil {
		return "", err
	}
	if err := b.do(10*time.Second, chromedp.SendKeys(`input[name=token]`, token), chromedp.Submit(`input[name=token]`)); err != nil {
		return form, fmt.Errorf("login: %w", err)
	}
	if err := b.do(20*time.Second, chromedp.WaitVisible(`#verification`)); err != nil {
		after, _ := run(b, 5*time.Second, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
		return form, fmt.Errorf("after login: %w; the browser shows %s", err, after)
	}
	return form, nil
}

// Open navigates to a verification's page (with the session Login opened).
func (b *Browser) Open(pageURL string) error {
	return b.do(30*time.Second, chromedp.Navigate(pageURL), chromedp.WaitVisible(`#verification`))
}

// Image is one <img> of the page.
type Image struct {
	Src      string `json:"src"`
	Complete bool   `json:"complete"`
	Width    int    `json:"width"`
}

// Page is what the browser shows of a verification.
type Page struct {
	Fields   map[string]string // by element id: outcome, biz-no, identity-id, identity-shown, window-left, timeline, viewer
	Text     string            // the whole <main>
	Attempts string            // the attempts table (Baidu), empty without one
	Images   []Image           // once every image finished loading, or 30 s passed
}

// FieldIDs are the page's elements Read returns in Fields.
var FieldIDs = []string{"outcome", "biz-no", "identity-id", "identity-shown", "window-left", "timeline", "viewer"}

// Read reads the open page, waiting up to 30 s for its images to finish
// loading.
func (b *Browser) Read() (Page, error) {
	p := Page{Fields: map[string]string{}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if p.Images, err = run(b, 10*time.Second, chromedp.Evaluate[[]Image](`Array.from(document.images).map(i => ({src: i.src, complete: i.complete, width: i.naturalWidth}))`)); err != nil {
			return p, err
		}
		all := true
		for _, im := range p.Images {
			all = all && im.Complete
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range FieldIDs {
		s, err := run(b, 10*time.Second, chromedp.Text("#"+id))
		if err != nil {
			return p, fmt.Errorf("#%s: %w", id, err)
		}
		p.Fields[id] = strings.TrimSpace(s)
	}
	var err error
	if p.Text, err = run(b, 10*time.Second, chromedp.Text(`main`)); err != nil {
		return p, err
	}
	n, err := run(b, 10*time.Second, chromedp.Evaluate[int](`document.querySelectorAll("#attempts").length`))
	if err != nil {
		return p, err
	}
	if n > 0 {
		if p.Attempts, err = run(b, 10*time.Second, chromedp.Text(`#attempts`)); err != nil {
			return p, err
		}
	}
	return p, nil
}

// Screenshot saves a screenshot of the whole page as a PNG file.
func (b *Browser) Screenshot(file string) error {
	shot, err := run(b, 30*time.Second, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	return os.WriteFile(file, shot, 0o644)
}

// Check compares what a viewer's page shows with the record it was made
// from: the outcome, biz_no, the identity masked as in the record, the
// decision time, the window left, the viewer's name, the attempts, and
// every stored image of the record (and of its attempts) but its ID-card
// images (identity data, never on the masked page) loaded through the page
// (pagePrefix, the page's URL). It returns what differs.
func Check(p Page, rec contract.Record, pagePrefix, viewer string) []string {
	var out []string
	bad := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	f := p.Fields
	idNumber := ""
	if rec.Identity != nil {
		idNumber = rec.Identity.IDNumber
	}
	if f["outcome"] != rec.Outcome || f["biz-no"] != rec.BizNo || f["identity-id"] != idNumber ||
		(rec.Identity != nil && f["identity-shown"] != "masked") || !strings.Contains(f["timeline"], rec.Times.DecidedAt.UTC().Format("2006-01-02 15:04:05")) ||
		f["window-left"] != time.Duration(rec.WindowLeftSeconds*float64(time.Second)).Round(time.Second).String() ||
		!strings.HasPrefix(f["viewer"], viewer) {
		bad("the page shows %v for the record %s/%s/%s/%s", f, rec.Outcome, rec.BizNo, idNumber, rec.Times.DecidedAt)
	}
	if len(rec.Attempts) > 0 && strings.Count(p.Attempts, "\n") < len(rec.Attempts) {
		bad("attempts table %q, want %d attempts", p.Attempts, len(rec.Attempts))
	}
	// The record's stored images, each once (Baidu's record lists its
	// attempts' images, which the attempts list again).
	stored := map[string]bool{}
	all := append([]contract.MediaRef{}, rec.Media...)
	for _, a := range rec.Attempts {
		all = append(all, a.Media...)
	}
	for _, m := range all {
		if m.Status == contract.MediaStored && strings.HasPrefix(m.ContentType, "image/") && !contract.IdentityMedia(m.Kind) {
			stored[m.Key] = true
		}
	}
	if len(p.Images) != len(stored) {
		bad("%d images on the page, want the record's %d stored images", len(p.Images), len(stored))
	}
	for _, im := range p.Images {
		if !im.Complete || im.Width == 0 {
			bad("image %s did not load (complete %v, naturalWidth %d)", im.Src, im.Complete, im.Width)
		}
		if !strings.HasPrefix(im.Src, pagePrefix+"/media/") {
			bad("image %s is not served through the page", im.Src)
		}
	}
	return out
}
