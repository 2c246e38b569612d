package megvii

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// DataURI is a parsed "data:<media type>;base64,<payload>" string.
type DataURI struct {
	MediaType string // e.g. image/jpeg
	Base64    string // the payload, not yet decoded
}

// ErrNotDataURI means the string is not a base64 data URI.
var ErrNotDataURI = errors.New("not a base64 data URI")

// ParseDataURI parses leniently: the documents show both
// "data:image/jpeg;base64,..." and "data: image/jpeg;base64,...", so spaces
// around the parts are accepted. The payload is not decoded here.
func ParseDataURI(s string) (DataURI, error) {
	t := strings.TrimSpace(s)
	if len(t) < 5 || !strings.EqualFold(t[:5], "data:") {
		return DataURI{}, ErrNotDataURI
	}
	t = t[5:]
	comma := strings.IndexByte(t, ',')
	if comma < 0 {
		return DataURI{}, fmt.Errorf("%w: no comma", ErrNotDataURI)
	}
	params := strings.Split(t[:comma], ";")
	isBase64 := false
	for _, p := range params[1:] {
		if strings.EqualFold(strings.TrimSpace(p), "base64") {
			isBase64 = true
		}
	}
	if !isBase64 {
		return DataURI{}, fmt.Errorf("%w: not base64", ErrNotDataURI)
	}
	mt := strings.ToLower(strings.TrimSpace(params[0]))
	if mt == "" {
		mt = "text/plain"
	}
	return DataURI{MediaType: mt, Base64: strings.TrimSpace(t[comma+1:])}, nil
}

// ParseImage reads an image value of get_result's images object. Document
// 000 says an image comes as a base64 string or null (以jpg编码并用base64字符串
// 返回,或返回为null); its examples show data URIs. A data URI is parsed as
// ParseDataURI does; any other string is taken as plain base64 with no
// declared media type (MediaType ""), for the caller to sniff.
func ParseImage(s string) (DataURI, error) {
	t := strings.TrimSpace(s)
	if len(t) >= 5 && strings.EqualFold(t[:5], "data:") {
		return ParseDataURI(t)
	}
	return DataURI{Base64: t}, nil
}

// Decode decodes the payload strictly: standard alphabet with padding, no
// embedded garbage; a truncated payload is an error.
func (d DataURI) Decode() ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(d.Base64)
	if err != nil {
		return nil, fmt.Errorf("base64 payload (%d chars): %w", len(d.Base64), err)
	}
	return b, nil
}
