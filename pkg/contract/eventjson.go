package contract

import (
	"encoding/json"
	"sort"
	"time"
	"unicode/utf8"
)

// MarshalJSON encodes the event exactly as encoding/json encodes the struct
// (FuzzEventJSON holds the two together), without reflection: ingest encodes
// one per callback, whose data is kilobytes of JSON to escape.
func (e Event) MarshalJSON() ([]byte, error) {
	for _, t := range []*time.Time{e.IssuedAt, &e.ReceivedAt} {
		if t == nil {
			continue
		}
		if _, off := t.Zone(); t.Year() < 0 || t.Year() > 9999 || off <= -24*3600 || off >= 24*3600 {
			type plain Event // encoding/json's own error for such a time
			return json.Marshal(plain(e))
		}
	}
	b := make([]byte, 0, 160+len(e.Data)+len(e.Data)/8)
	b = append(b, `{"vendor":`...)
	b = appendJSONString(b, string(e.Vendor))
	b = append(b, `,"verification_id":`...)
	b = appendJSONString(b, e.VerificationID)
	if e.BizNo != "" {
		b = append(b, `,"biz_no":`...)
		b = appendJSONString(b, e.BizNo)
	}
	if e.IssuedAt != nil {
		b = append(b, `,"issued_at":"`...)
		b = append(e.IssuedAt.AppendFormat(b, time.RFC3339Nano), '"')
	}
	b = append(b, `,"received_at":"`...)
	b = append(e.ReceivedAt.AppendFormat(b, time.RFC3339Nano), '"')
	if e.Status != "" {
		b = append(b, `,"status":`...)
		b = appendJSONString(b, e.Status)
	}
	if e.Data != "" {
		b = append(b, `,"data":`...)
		b = appendJSONString(b, e.Data)
	}
	if len(e.Metadata) > 0 {
		keys := make([]string, 0, len(e.Metadata))
		for k := range e.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, `,"metadata":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, e.Metadata[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// plainJSON marks the ASCII bytes encoding/json copies as they are (it
// escapes '<', '>' and '&' for HTML, as well as quotes, backslashes and
// control characters).
var plainJSON = func() (t [128]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as encoding/json writes a string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainJSON[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default: // other control characters, '<', '>', '&'
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
