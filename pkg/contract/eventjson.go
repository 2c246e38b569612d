package contract

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"slices"
	"sort"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/faceharvest/faceharvest/pkg/swar"
)

// MarshalJSON encodes the event exactly as encoding/json encodes the struct
// (FuzzEventJSON holds the two together), without reflection: ingest encodes
// one per callback, whose data is kilobytes of JSON to escape.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 192+len(e.Data)+len(e.Data)/4))
}

// AppendJSON appends what MarshalJSON returns to b.
func (e Event) AppendJSON(b []byte) ([]byte, error) { return e.appendJSON(b, false) }

// AppendJSONDataObject is AppendJSON with Data written as the JSON object it
// is, byte for byte, rather than as an escaped string, when it starts with
// '{', ends with '}' and is valid UTF-8 (otherwise as a string): a
// callback's data is kilobytes with a quote every few bytes. The caller
// vouches that such a Data is one valid JSON object, as ingest has checked.
// UnmarshalJSON reads either form back to the same Data.
func (e Event) AppendJSONDataObject(b []byte) ([]byte, error) { return e.appendJSON(b, true) }

// UnmarshalJSON decodes an event whose data is a string or, as
// AppendJSONDataObject writes it, an object: Data is then the object's
// exact bytes.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	var v struct {
		plain
		Data json.RawMessage `json:"data,omitempty"` // the shallower field: it takes "data"
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = Event(v.plain)
	switch {
	case len(v.Data) == 0 || string(v.Data) == "null":
	case v.Data[0] == '"':
		return json.Unmarshal(v.Data, &e.Data)
	case v.Data[0] == '{':
		e.Data = string(v.Data)
	default:
		return errors.New("event data: want a string or an object")
	}
	return nil
}

// dataObject reports whether AppendJSONDataObject writes d as it is.
func dataObject(d string) bool {
	return len(d) >= 2 && d[0] == '{' && d[len(d)-1] == '}' && utf8.ValidString(d)
}

func (e Event) appendJSON(b []byte, object bool) ([]byte, error) {
	for _, t := range []*time.Time{e.IssuedAt, &e.ReceivedAt} {
		if t == nil {
			continue
		}
		if _, off := t.Zone(); t.Year() < 0 || t.Year() > 9999 || off <= -24*3600 || off >= 24*3600 {
			type plain Event // encoding/json's own error for such a time
			j, err := json.Marshal(plain(e))
			if err != nil {
				return nil, err
			}
			return append(b, j...), nil
		}
	}
	b = slices.Grow(b, 192+len(e.Data)+len(e.Data)/4)
	b = append(b, `{"vendor":`...)
	b = AppendJSONString(b, string(e.Vendor))
	b = append(b, `,"verification_id":`...)
	b = AppendJSONString(b, e.VerificationID)
	if e.BizNo != "" {
		b = append(b, `,"biz_no":`...)
		b = AppendJSONString(b, e.BizNo)
	}
	if e.IssuedAt != nil {
		b = append(b, `,"issued_at":"`...)
		b = append(e.IssuedAt.AppendFormat(b, time.RFC3339Nano), '"')
	}
	b = append(b, `,"received_at":"`...)
	b = append(e.ReceivedAt.AppendFormat(b, time.RFC3339Nano), '"')
	if e.Status != "" {
		b = append(b, `,"status":`...)
		b = AppendJSONString(b, e.Status)
	}
	if e.Data != "" {
		b = append(b, `,"data":`...)
		if object && dataObject(e.Data) {
			b = append(b, e.Data...)
		} else {
			b = AppendJSONString(b, e.Data)
		}
	}
	if e.Sign != "" {
		b = append(b, `,"sign":`...)
		b = AppendJSONString(b, e.Sign)
	}
	if e.SignedBy != "" {
		b = append(b, `,"signed_by":`...)
		b = AppendJSONString(b, e.SignedBy)
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
			b = AppendJSONString(b, k)
			b = append(b, ':')
			b = AppendJSONString(b, e.Metadata[k])
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

// jsonClass sorts bytes for AppendJSONString: 0 is copied as it is, 1 is
// ASCII encoding/json escapes (quotes, backslashes, control characters, and
// '<', '>' and '&' for HTML), 2 starts a multi-byte or invalid sequence.
var jsonClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = 2
		case c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&':
			t[c] = 1
		}
	}
	return t
}()

// special8 marks the bytes of v that jsonClass does not class 0; its lowest
// mark is the first such byte. '"' and '&' differ in one bit, as do '<' and
// '>', so each pair is one test.
func special8(v uint64) uint64 {
	return (v | swar.Less(v, 0x20) | swar.Zero((v^swar.Repeat('"'))&swar.Repeat(0xFB)) |
		swar.Zero((v^swar.Repeat('<'))&swar.Repeat(0xFD)) | swar.Zero(v^swar.Repeat('\\'))) & swar.Highs
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as encoding/json writes a string: invalid
// UTF-8 becomes U+FFFD, and U+2028 and U+2029 are escaped. Plain bytes are
// copied eight at a time and the rest written in place: a callback's data
// is kilobytes of JSON with a quote every few bytes.
func AppendJSONString(b []byte, s string) []byte {
	b = slices.Grow(b, len(s)+len(s)/8+24)
	n := len(b)
	out := b[:cap(b)]
	out[n] = '"'
	n++
	for i := 0; i < len(s); {
		if len(out)-n < 16 { // room for a word, or the longest escape
			out = slices.Grow(out[:n], len(s)-i+len(s)/8+24)
			out = out[:cap(out)]
		}
		if i+8 <= len(s) {
			v := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
			binary.LittleEndian.PutUint64(out[n:], v) // kept up to the first special byte
			m := special8(v)
			if m == 0 {
				n += 8
				i += 8
				continue
			}
			k := bits.TrailingZeros64(m) >> 3
			n += k
			i += k
		}
		c := s[i]
		switch jsonClass[c] {
		case 0: // only in the last seven bytes
			out[n] = c
			n++
			i++
			continue
		case 1:
			out[n] = '\\'
			switch c {
			case '"', '\\':
				out[n+1] = c
			case '\b':
				out[n+1] = 'b'
			case '\f':
				out[n+1] = 'f'
			case '\n':
				out[n+1] = 'n'
			case '\r':
				out[n+1] = 'r'
			case '\t':
				out[n+1] = 't'
			default: // other control characters, '<', '>', '&'
				n += copy(out[n+1:], []byte{'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF]}) - 1
			}
			n += 2
			i++
			continue
		}
		// A valid three-byte sequence with lead byte E1-EC (but E2, which
		// starts U+2028 and U+2029), EE or EF is neither overlong nor a
		// surrogate: copied as it is (Chinese text is all of this kind).
		if i+2 < len(s) && (c >= 0xE1 && c <= 0xEC && c != 0xE2 || c >= 0xEE) && c <= 0xEF && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 {
			out[n], out[n+1], out[n+2] = c, s[i+1], s[i+2]
			n += 3
			i += 3
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += copy(out[n:], `\ufffd`)
		case r == '\u2028' || r == '\u2029':
			n += copy(out[n:], []byte{'\\', 'u', '2', '0', '2', hexDigits[r&0xF]})
		default:
			n += copy(out[n:], s[i:i+size])
		}
		i += size
	}
	if n == len(out) {
		out = slices.Grow(out[:n], 1)
		out = out[:cap(out)]
	}
	out[n] = '"'
	return out[:n+1]
}
