package vendorsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

func (s *Sim) envelope(result any) []byte {
	return mustJSON(map[string]any{"success": true, "result": result, "log_id": s.logID()})
}

func (s *Sim) mediaURL(vt, file string) string {
	s.mu.Lock()
	base := s.cfg.BaiduPublicURL
	s.mu.Unlock()
	return strings.TrimRight(base, "/") + "/media/" + url.PathEscape(vt) + "/" + file
}

func (s *Sim) baiduDetail(v *baiduVerification, truncate bool) map[string]any {
	var env map[string]any
	_ = json.Unmarshal(vendordocs.MustExample("baidu_result_detail.json"), &env)
	res := env["result"].(map[string]any)
	img := func(side string) string {
		b := base64.StdEncoding.EncodeToString(makeJPEG(s.jpegBase, v.token+"/idcard_"+side, v.spec.ImageBytes))
		if truncate {
			b = b[:len(b)-3]
		}
		return b
	}
	res["idcard_images"] = map[string]any{"front_base64": img("front"), "back_base64": img("back")}
	if v.idName != "" {
		res["idcard_confirm"] = map[string]any{"name": v.idName, "idcard_number": v.idNo}
	}
	res["is_demote"] = false
	return res
}

func (s *Sim) baiduMedia(v *baiduVerification, now, done time.Time) map[string]any {
	out := map[string]any{"processVideo": []string{}, "video": []string{}, "images": []string{}, "extInfo": nil}
	switch v.spec.Media {
	case "process_video":
		out["processVideo"] = []string{s.mediaURL(v.token, "process_video.mp4")}
		imgs := make([]string, 4)
		for i := range imgs {
			imgs[i] = s.mediaURL(v.token, fmt.Sprintf("image%d.jpg", i+1))
		}
		out["images"] = imgs
	case "video":
		out["video"] = []string{s.mediaURL(v.token, "video.mp4")}
	}
	return out
}

// baiduGetAll lists the n attempts ended so far.
func (s *Sim) baiduGetAll(v *baiduVerification, done time.Time, n int) map[string]any {
	var env map[string]any
	_ = json.Unmarshal(vendordocs.MustExample("baidu_result_getall.json"), &env)
	res := env["result"].(map[string]any)
	tmpl := res["verify_result"].([]any)[0].(map[string]any)
	attempts := make([]any, 0, n)
	charged := 0
	for i := 1; i <= n; i++ {
		var a map[string]any
		_ = json.Unmarshal(mustJSON(tmpl), &a)
		at := v.attemptAt(done, i).In(baidu.China)
		ts := fmt.Sprintf("%d-%d-%d %02d:%02d:%02d", at.Year(), at.Month(), at.Day(), at.Hour(), at.Minute(), at.Second())
		passed := v.passed(i)
		a["order"] = i
		a["is_verify_passed"] = passed
		a["verify_time"] = ts
		a["charge_time"] = ts
		a["ocr_charge_time"] = ts
		d := a["verify_detail"].(map[string]any)
		d["face_image"] = s.mediaURL(v.token, fmt.Sprintf("face%d.jpg", i))
		d["verify_log_id"] = s.logID()
		d["risk_level"] = "4"
		d["risk_tag"] = ""
		// 001: liveness_score and spoofing_score are reserved, currently 0.
		d["liveness_score"], d["spoofing_score"] = 0, 0
		if passed {
			a["code"], a["message"] = "0", "核验成功"
			d["score"] = 91.5
			charged++
		} else {
			a["code"], a["message"] = strconv.Itoa(simCodeLivenessFail), "活体检测未通过"
			d["score"] = ""
			a["is_charged"] = false
			a["charge_time"] = ""
		}
		if c, ok := a["idcard_confirm"].(map[string]any); ok {
			if v.idName != "" {
				c["name"], c["idcard_number"] = v.idName, v.idNo
			}
			if imgs, ok := c["idcard_images"].(map[string]any); ok {
				imgs["front_image"] = s.mediaURL(v.token, fmt.Sprintf("front%d.jpg", i))
				imgs["back_image"] = s.mediaURL(v.token, fmt.Sprintf("back%d.jpg", i))
			}
		}
		attempts = append(attempts, a)
	}
	res["verify_result"] = attempts
	res["verify_count"] = n
	res["verify_charge_count"] = charged
	res["match_charge_count"] = 0
	res["ocr_charge_count"] = n
	return res
}

// handleMedia serves the images and videos behind the URLs handed out.
// Media-query links (videos and their images) stop working after
// BaiduMediaRetention; face and ID-card images from getall/simple after
// BaiduRetention. An expired link answers 403 with an object-store error.
func (s *Sim) handleMedia(w http.ResponseWriter, r *http.Request) {
	vt, file := r.PathValue("token"), r.PathValue("file")
	now := s.clk.Now()
	s.mu.Lock()
	v := s.baidu[vt]
	var vc baiduVerification
	if v != nil {
		vc = *v
		v.calls["media"]++
	}
	s.mu.Unlock()
	deny := func(code string, status int, kind string) {
		s.metrics.requests.WithLabelValues("baidu", "media", kind).Inc()
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>\n", code, code)
	}
	if v == nil {
		deny("NoSuchKey", http.StatusNotFound, "not_found")
		return
	}
	done, finished := vc.completedAt(s.cfg.BaiduVerifyTokenTTL)
	isMediaQuery := strings.HasSuffix(file, ".mp4") || strings.HasPrefix(file, "image")
	keep := s.cfg.BaiduRetention
	if isMediaQuery {
		keep = s.cfg.BaiduMediaRetention
	}
	if !finished || now.Before(vc.attemptAt(done, 1)) {
		deny("NoSuchKey", http.StatusNotFound, "not_found")
		return
	}
	if now.After(done.Add(keep)) {
		deny("AccessDenied", http.StatusForbidden, "expired")
		return
	}
	if strings.HasSuffix(file, ".mp4") {
		n := vc.spec.VideoBytes
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.FormatInt(MP4Size(n), 10))
		s.metrics.requests.WithLabelValues("baidu", "media", "ok").Inc()
		s.metrics.media.WithLabelValues("video").Add(float64(MP4Size(n)))
		_ = writeMP4(w, vt+"/"+file, n)
		return
	}
	if !strings.HasSuffix(file, ".jpg") {
		deny("NoSuchKey", http.StatusNotFound, "not_found")
		return
	}
	b := makeJPEG(s.jpegBase, vt+"/"+file, vc.spec.ImageBytes)
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	s.metrics.requests.WithLabelValues("baidu", "media", "ok").Inc()
	s.metrics.media.WithLabelValues("image").Add(float64(len(b)))
	_, _ = w.Write(b)
}
