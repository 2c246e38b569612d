package archiver

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/faceharvest/faceharvest/pkg/flexjson"
	"github.com/faceharvest/faceharvest/pkg/megvii"
)

// slot is a blob or link inside a response: a Megvii image with its byte
// range in the body, or a Baidu value with a setter that replaces it in the
// decoded answer.
type slot struct {
	kind       string
	url        bool
	dataURI    bool
	value      string
	start, end int
	set        func(any)
	attempt    int // Baidu getall: the order of the attempt it belongs to
}

// Baidu fields that hold media: links (getall, simple, media/query) or
// plain base64 (detail). The kind names the item in records.
var baiduFields = map[string]struct {
	kind string
	url  bool
}{
	"face_image":   {"face_image", true},
	"front_image":  {"idcard_front", true},
	"back_image":   {"idcard_back", true},
	"image":        {"face_image", true},
	"processVideo": {"process_video", true},
	"video":        {"video", true},
	"images":       {"image", true},
	"front_base64": {"idcard_front", false},
	"back_base64":  {"idcard_back", false},
}

// megviiKind names a Megvii image in records.
func megviiKind(name string) string {
	switch name {
	case megvii.ImageIDCardFront:
		return "idcard_front"
	case megvii.ImageIDCardBack:
		return "idcard_back"
	case megvii.ImageSelfieFront:
		return "selfie_front"
	case megvii.ImageSelfieSide:
		return "selfie_side"
	}
	return name
}

// megviiImageKinds are the media kinds a return_image value asks for of
// those the flow produced (expected): 4 all of them (000 and 002:
// 需要返回所有图像), the others their one image.
func megviiImageKinds(v string, expected []string) []string {
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(expected))
	for _, k := range expected {
		names = append(names, megviiImageName(k))
	}
	var out []string
	for _, name := range megvii.ImagesOf(megvii.ReturnImage(n), names) {
		out = append(out, megviiKind(name))
	}
	return out
}

// megviiImageName is megviiKind's inverse.
func megviiImageName(kind string) string {
	switch kind {
	case "idcard_front":
		return megvii.ImageIDCardFront
	case "idcard_back":
		return megvii.ImageIDCardBack
	case "selfie_front":
		return megvii.ImageSelfieFront
	case "selfie_side":
		return megvii.ImageSelfieSide
	}
	return kind
}

// expectedImages lists the media kinds a Megvii flow produced, from its
// result (megvii.Result.ExpectedImages).
func expectedImages(r *megvii.Result) []string {
	var out []string
	for _, n := range r.ExpectedImages() {
		out = append(out, megviiKind(n))
	}
	return out
}

// collect finds the media of a decoded Baidu answer, in a fixed order,
// wherever they are nested (the documents show idcard_images both beside and
// inside idcard_confirm).
func collect(root any) []slot {
	var out []slot
	obj, ok := root.(map[string]any)
	if !ok {
		return nil
	}
	var walk func(m map[string]any, attempt int)
	walk = func(m map[string]any, attempt int) {
		for _, k := range sortedKeys(m) {
			f, known := baiduFields[k]
			switch x := m[k].(type) {
			case string:
				// A link field that is not a link is kept as a rejected item:
				// media are never dropped silently.
				if known && strings.TrimSpace(x) != "" {
					out = append(out, slot{kind: f.kind, url: f.url, value: x, set: func(r any) { m[k] = r }, attempt: attempt})
				}
			case []any:
				for i, e := range x {
					switch y := e.(type) {
					case string:
						if known && f.url && strings.TrimSpace(y) != "" {
							out = append(out, slot{kind: f.kind, url: true, value: y, set: func(r any) { x[i] = r }, attempt: attempt})
						}
					case map[string]any:
						a := attempt
						if k == "verify_result" { // getall: one object per attempt
							a = attemptOrder(y, i)
						}
						walk(y, a)
					}
				}
			case map[string]any:
				walk(x, attempt)
			}
		}
	}
	walk(obj, 0)
	return out
}

// attemptOrder is a getall attempt's order, or its position (from 1) when
// it has none usable.
func attemptOrder(a map[string]any, i int) int {
	var o flexjson.Int
	if b, err := json.Marshal(a["order"]); err == nil && json.Unmarshal(b, &o) == nil && o.Valid && o.Value > 0 && o.Value < 1<<20 {
		return int(o.Value)
	}
	return i + 1
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
