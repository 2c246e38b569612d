package megvii

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/bits"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// errSyntax is returned by topLevel for anything that is not one valid JSON
// object.
var errSyntax = errors.New("invalid JSON")

// topLevel validates that b is exactly one JSON object (whitespace around
// allowed) and returns the raw values of every top-level key (unescaped),
// in one pass; the values share b's bytes.
func topLevel(b []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := members(b, func(key string, vs, ve int) {
		out[strings.Clone(key)] = b[vs:ve]
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// members validates that b is exactly one JSON object and calls fn with each
// member's unescaped key and the byte range of its raw value, in order. The
// key may share b's bytes: fn must copy it to keep it.
func members(b []byte, fn func(key string, vs, ve int)) error {
	p := scanner{b: b}
	p.ws()
	if !p.eat('{') {
		return errSyntax
	}
	p.ws()
	if p.eat('}') {
		return p.end()
	}
	for {
		p.ws()
		ks := p.i
		if !p.str() {
			return errSyntax
		}
		key := unsafeString(b[ks+1 : p.i-1])
		if strings.IndexByte(key, '\\') >= 0 {
			// encoding/json matches keys after unescaping them.
			var k string // on the heap, so only here
			if err := json.Unmarshal(b[ks:p.i], &k); err != nil {
				return errSyntax
			}
			key = k
		}
		p.ws()
		if !p.eat(':') {
			return errSyntax
		}
		p.ws()
		vs := p.i
		if !p.value(0) {
			return errSyntax
		}
		fn(key, vs, p.i)
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return p.end()
		}
		return errSyntax
	}
}

// ImageEntry is one member of a get_result answer's images object.
type ImageEntry struct {
	Name       string
	Value      string // the data URI, unescaped
	Start, End int    // the raw string literal's byte range in the body
}

// FindImages validates body as one JSON object in a single pass and locates
// its top-level images object (the last one, as encoding/json decodes
// duplicates): its byte range [start, end) and its string members in order.
// start and end are 0 when there is none. Members that are not strings are
// not returned (null is how the documents leave an image out), and of
// members sharing a name only the last counts, as Images decodes them. It lets the
// archiver replace megabytes of base64 without decoding the rest.
func FindImages(body []byte) (start, end int, images []ImageEntry, err error) {
	if err := members(body, func(key string, vs, ve int) {
		if strings.EqualFold(key, "images") {
			start, end = vs, ve
		}
	}); err != nil {
		return 0, 0, nil, err
	}
	if end == 0 || body[start] != '{' {
		return start, end, nil, nil
	}
	raw := body[start:end]
	var bad error
	last := map[string]int{} // name -> index in images; a later duplicate replaces it
	dropped := map[int]bool{}
	err = members(raw, func(key string, vs, ve int) {
		if i, ok := last[key]; ok {
			dropped[i] = true
			delete(last, key)
		}
		key = strings.Clone(key)
		v := raw[vs:ve]
		if v[0] != '"' {
			return // null or not a string: the image is absent, as Images decodes it
		}
		e := ImageEntry{Name: key, Value: string(v[1 : len(v)-1]), Start: start + vs, End: start + ve}
		if bytes.IndexByte(v, '\\') >= 0 {
			if uerr := json.Unmarshal(v, &e.Value); uerr != nil {
				bad = uerr
			}
		}
		last[key] = len(images)
		images = append(images, e)
	})
	if err == nil {
		err = bad
	}
	if len(dropped) > 0 {
		kept := images[:0]
		for i, e := range images {
			if !dropped[i] {
				kept = append(kept, e)
			}
		}
		images = kept
	}
	return start, end, images, err
}

type scanner struct {
	b []byte
	i int
}

func (p *scanner) end() error {
	p.ws()
	if p.i != len(p.b) {
		return errSyntax
	}
	return nil
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *scanner) value(depth int) bool {
	if p.i >= len(p.b) || depth > 1000 {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return p.str()
	case c == '{':
		p.i++
		p.ws()
		if p.eat('}') {
			return true
		}
		for {
			p.ws()
			if !p.str() {
				return false
			}
			p.ws()
			if !p.eat(':') {
				return false
			}
			p.ws()
			if !p.value(depth + 1) {
				return false
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			return p.eat('}')
		}
	case c == '[':
		p.i++
		p.ws()
		if p.eat(']') {
			return true
		}
		for {
			p.ws()
			if !p.value(depth + 1) {
				return false
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			return p.eat(']')
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.num()
	case c == 't':
		return p.lit("true")
	case c == 'f':
		return p.lit("false")
	case c == 'n':
		return p.lit("null")
	}
	return false
}

func (p *scanner) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *scanner) digits() int {
	n := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

func (p *scanner) num() bool {
	p.eat('-')
	if p.eat('0') {
		// no further integer digits after a leading zero
	} else if p.digits() == 0 {
		return false
	}
	if p.eat('.') && p.digits() == 0 {
		return false
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if !p.eat('+') {
			p.eat('-')
		}
		if p.digits() == 0 {
			return false
		}
	}
	return true
}

// special8 marks, in the high bit of each byte, the bytes of v that are '"',
// '\\' or a control character; its lowest mark is the first of them. It
// tests the eight bytes at once (SIMD within a register): a byte is marked
// when it matches or when it lies above one that does (a borrow runs
// upwards), never below.
func special8(v uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zero := func(y uint64) uint64 { return (y - ones) &^ y } // marks y's zero bytes
	less := (v - ones*0x20) &^ v                             // marks v's bytes below 0x20
	return (zero(v^(ones*'"')) | zero(v^(ones*'\\')) | less) & highs
}

func (p *scanner) str() bool {
	if !p.eat('"') {
		return false
	}
	for {
		// Plain bytes are skipped eight at a time, landing on the first
		// byte that needs a look: images are hundreds of kilobytes of
		// base64, and most other strings end within a word.
		for p.i+8 <= len(p.b) {
			if m := special8(binary.LittleEndian.Uint64(p.b[p.i:])); m != 0 {
				p.i += bits.TrailingZeros64(m) >> 3
				break
			}
			p.i += 8
		}
		if p.i >= len(p.b) {
			return false
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return false
			}
			switch p.b[p.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i++
			case 'u':
				if len(p.b)-p.i < 5 {
					return false
				}
				for _, h := range p.b[p.i+1 : p.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				p.i += 5
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			p.i++ // only in the last seven bytes
		}
	}
}

// unsafeString views b as a string without copying; b must not change
// while the string is in use.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

var errNotString = errors.New("not a JSON string")

// jsonString decodes a valid JSON value that must be a string or null, as
// encoding/json decodes it into a string field: directly when it holds no
// escapes and is valid UTF-8 (encoding/json would replace invalid bytes),
// through encoding/json otherwise.
func jsonString(v []byte) (s string, null bool, err error) {
	if string(v) == "null" {
		return "", true, nil
	}
	if len(v) < 2 || v[0] != '"' {
		return "", false, errNotString
	}
	if in := v[1 : len(v)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in), false, nil
	}
	var d string // on the heap, so only here
	if err := json.Unmarshal(v, &d); err != nil {
		return "", false, err
	}
	return d, false, nil
}

// summarizeAnswer decodes Summary's fields from a validated single pass over
// a get_result answer, and reports whether it carries a top-level
// error_message (then it is an error answer, for Classify). Keys match
// case-insensitively and every duplicate is decoded in turn into the same
// field (a later biz_info sets only the members it has), as encoding/json
// decodes them: the harvester and archiver decode with it, and must agree.
func summarizeAnswer(b []byte) (Summary, bool, error) {
	var s Summary
	hasError := false
	var ferr error
	err := members(b, func(key string, vs, ve int) {
		if ferr != nil {
			return
		}
		switch v := b[vs:ve]; {
		case strings.EqualFold(key, "status"):
			ferr = s.Status.UnmarshalJSON(v) // its own rules: case, misspellings, numbers
		case strings.EqualFold(key, "biz_info"):
			ferr = s.bizInfo(v)
		case strings.EqualFold(key, "error_message"):
			hasError = true
		}
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return Summary{}, false, err
	}
	return s, hasError, nil
}

// bizInfo decodes a valid JSON value into s.BizInfo as encoding/json does:
// null changes nothing, an object sets the members it has.
func (s *Summary) bizInfo(v []byte) error {
	if string(v) == "null" {
		return nil
	}
	if v[0] != '{' {
		return errNotString
	}
	var ferr error
	err := members(v, func(key string, vs, ve int) {
		var dst *string
		switch {
		case strings.EqualFold(key, "biz_id"):
			dst = &s.BizInfo.BizID
		case strings.EqualFold(key, "biz_no"):
			dst = &s.BizInfo.BizNo
		default:
			return
		}
		str, null, err := jsonString(v[vs:ve])
		if err != nil && ferr == nil {
			ferr = err
		}
		if err == nil && !null {
			*dst = str
		}
	})
	if err == nil {
		err = ferr
	}
	return err
}
