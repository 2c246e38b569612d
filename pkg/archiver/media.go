package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// blob is an image carried inside a response (a Megvii data URI, a Baidu
// plain base64 string).
type blob struct {
	kind     string
	dataURI  bool // Megvii: "data:image/jpeg;base64,..." (leniently parsed) or plain base64
	value    string
	endpoint string
}

// sniff names the content type of b from its bytes; it answers "" for
// content that is neither an image nor a video.
func sniff(b []byte) string {
	ct := http.DetectContentType(b)
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	if strings.HasPrefix(ct, "image/") || strings.HasPrefix(ct, "video/") {
		return ct
	}
	return ""
}

// extension gives a stored object's file extension for its content type.
func extension(ct string) string {
	switch ct {
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "image/webp":
		return ".webp"
	case "image/gif":
		return ".gif"
	case "image/bmp":
		return ".bmp"
	case "video/mp4":
		return ".mp4"
	case "video/webm":
		return ".webm"
	}
	return ".bin"
}

// mediaKey is the content-addressed key of a media object: the same bytes
// on the same day always land on the same key, so re-processing writes
// nothing new.
func mediaKey(v contract.Vendor, day time.Time, sum, ct string) string {
	return string(v) + "/" + day.UTC().Format("2006/01/02") + "/media/" + sum + extension(ct)
}

// decodeBlob decodes and checks an embedded image. A failure is a rejected
// media item with its reason, never an error of the whole response.
func (a *Archiver) decodeBlob(b blob) ([]byte, string, error) {
	payload, declared := b.value, ""
	if b.dataURI {
		d, err := megvii.ParseImage(b.value)
		if err != nil {
			return nil, "", err
		}
		payload, declared = d.Base64, d.MediaType
	}
	if int64(base64.StdEncoding.DecodedLen(len(payload))) > a.cfg.MaxImageBytes {
		return nil, "", fmt.Errorf("image of about %d bytes exceeds the %d-byte cap", base64.StdEncoding.DecodedLen(len(payload)), a.cfg.MaxImageBytes)
	}
	data, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return nil, "", fmt.Errorf("base64 payload (%d chars): %w", len(payload), err)
	}
	if len(data) == 0 {
		return nil, "", errors.New("empty image")
	}
	ct := sniff(data)
	if ct == "" {
		return nil, "", fmt.Errorf("content is %s, not an image", http.DetectContentType(data))
	}
	if declared != "" && declared != ct && !(declared == "image/jpg" && ct == "image/jpeg") {
		return nil, "", fmt.Errorf("declared %.40s but content is %s", declared, ct)
	}
	return data, ct, nil
}

// storeBlob stores an embedded image under its content key.
func (a *Archiver) storeBlob(ctx context.Context, v contract.Vendor, day time.Time, b blob) (contract.MediaRef, error) {
	ref := contract.MediaRef{Kind: b.kind, Endpoint: b.endpoint}
	data, ct, err := a.decodeBlob(b)
	if err != nil {
		ref.Status, ref.Reason = contract.MediaRejected, err.Error()
		a.m.media.WithLabelValues(string(v), contract.MediaRejected).Inc()
		return ref, nil
	}
	sum := sha256.Sum256(data)
	ref.SHA256, ref.Size, ref.ContentType = hex.EncodeToString(sum[:]), int64(len(data)), ct
	ref.Key = mediaKey(v, day, ref.SHA256, ct)
	if err := a.putOnce(ctx, ref.Key, "image", func() (io.Reader, int64, error) { return bytes.NewReader(data), int64(len(data)), nil }, ct,
		map[string]string{"sha256": ref.SHA256, "vendor": string(v), "kind": b.kind}); err != nil {
		return ref, err
	}
	ref.Status = contract.MediaStored
	a.m.media.WithLabelValues(string(v), contract.MediaStored).Inc()
	return ref, nil
}

// errDownload is a download failure worth another try (transport errors,
// 5xx, 429, a body cut short).
type errDownload struct{ msg string }

func (e errDownload) Error() string { return e.msg }

// download fetches u into a spool file while hashing it, so a 200 MB video
// never sits in memory; an expired link (403, 404, 410) or a page that is
// not media is a final answer, not an error. The caller removes the file.
func (a *Archiver) download(ctx context.Context, u string) (f *os.File, sum string, size int64, ct, status, reason string, err error) {
	var last error
	spent := errors.New("download tries spent")
	werr := retry.Do(ctx, a.retryPolicy(func(int, error) { a.m.downloads.WithLabelValues("retry").Inc() }), func(try int) error {
		f, sum, size, ct, status, reason, err = a.downloadOnce(ctx, u)
		if !errors.As(err, new(errDownload)) {
			return nil // an answer, or an error no try mends: returned as it is
		}
		last = err
		if try >= a.cfg.DownloadTries {
			a.m.downloads.WithLabelValues("retry").Inc()
			return retry.Permanent(spent)
		}
		return err
	})
	switch {
	case werr == nil:
		return
	case errors.Is(werr, spent):
		return nil, "", 0, "", contract.MediaFailed, fmt.Sprintf("%d tries: %v", a.cfg.DownloadTries, last), nil
	}
	return nil, "", 0, "", "", "", werr // ctx ended between tries
}

func (a *Archiver) downloadOnce(ctx context.Context, u string) (*os.File, string, int64, string, string, string, error) {
	dctx, cancel := context.WithTimeout(ctx, a.cfg.DownloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(dctx, http.MethodGet, u, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return nil, "", 0, "", contract.MediaRejected, "not an http(s) URL", nil
	}
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		if r, ok := refusal(err); ok { // the policy's answer, final: not retried
			a.m.refused.WithLabelValues(r.Reason).Inc()
			return nil, "", 0, "", contract.MediaRefused, r.Detail, nil
		}
		if ctx.Err() != nil {
			return nil, "", 0, "", "", "", ctx.Err()
		}
		return nil, "", 0, "", "", "", errDownload{transportReason(err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, "", 0, "", contract.MediaExpired, fmt.Sprintf("link answered %d", resp.StatusCode), nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, "", 0, "", "", "", errDownload{fmt.Sprintf("HTTP %d", resp.StatusCode)}
	case resp.StatusCode != http.StatusOK:
		return nil, "", 0, "", contract.MediaRejected, fmt.Sprintf("link answered %d", resp.StatusCode), nil
	}
	if resp.ContentLength > a.cfg.MaxMediaBytes {
		return nil, "", 0, "", contract.MediaRejected, fmt.Sprintf("%d bytes exceed the %d-byte cap", resp.ContentLength, a.cfg.MaxMediaBytes), nil
	}
	f, err := os.CreateTemp(a.cfg.SpoolDir, "media-*")
	if err != nil {
		return nil, "", 0, "", "", "", fmt.Errorf("spool file: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	head := make([]byte, 0, 512)
	n, err := io.Copy(io.MultiWriter(f, h, &headWriter{buf: &head}), io.LimitReader(resp.Body, a.cfg.MaxMediaBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", 0, "", "", "", ctx.Err()
		}
		return nil, "", 0, "", "", "", errDownload{"body: " + transportReason(err)}
	}
	if n > a.cfg.MaxMediaBytes {
		return nil, "", 0, "", contract.MediaRejected, fmt.Sprintf("more than the %d-byte cap", a.cfg.MaxMediaBytes), nil
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return nil, "", 0, "", "", "", errDownload{fmt.Sprintf("body cut short: %d of %d bytes", n, resp.ContentLength)}
	}
	ct := sniff(head)
	if ct == "" {
		declared, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if strings.HasPrefix(declared, "video/") && http.DetectContentType(head) == "application/octet-stream" {
			ct = declared // containers the sniffer does not know (QuickTime, for one)
		} else {
			return nil, "", 0, "", contract.MediaRejected, "not media: " + http.DetectContentType(head), nil
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", 0, "", "", "", err
	}
	keep = true
	return f, hex.EncodeToString(h.Sum(nil)), n, ct, contract.MediaStored, "", nil
}

// headWriter keeps the first 512 bytes written, for sniffing.
type headWriter struct{ buf *[]byte }

func (w *headWriter) Write(p []byte) (int, error) {
	if room := 512 - len(*w.buf); room > 0 {
		*w.buf = append(*w.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// transportReason describes a transport error without its URL: records and
// logs never carry links, whose query strings are credentials.
func transportReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

// storeURL downloads a linked image or video and stores it under its content
// key.
func (a *Archiver) storeURL(ctx context.Context, v contract.Vendor, day time.Time, kind, endpoint, u string) (contract.MediaRef, error) {
	ref := contract.MediaRef{Kind: kind, Endpoint: endpoint}
	f, sum, size, ct, status, reason, err := a.download(ctx, u)
	if err != nil {
		return ref, err
	}
	a.m.downloads.WithLabelValues(status).Inc()
	if status != contract.MediaStored {
		ref.Status, ref.Reason = status, reason
		a.m.media.WithLabelValues(string(v), status).Inc()
		return ref, nil
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	ref.SHA256, ref.Size, ref.ContentType = sum, size, ct
	ref.Key = mediaKey(v, day, sum, ct)
	class := "image"
	if strings.HasPrefix(ct, "video/") {
		class = "video"
	}
	err = a.putOnce(ctx, ref.Key, class, func() (io.Reader, int64, error) {
		_, err := f.Seek(0, io.SeekStart)
		return f, size, err
	}, ct, map[string]string{"sha256": sum, "vendor": string(v), "kind": kind})
	if err != nil {
		return ref, err
	}
	ref.Status = contract.MediaStored
	a.m.media.WithLabelValues(string(v), contract.MediaStored).Inc()
	return ref, nil
}
