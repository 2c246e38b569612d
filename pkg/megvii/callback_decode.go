package megvii

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Callback bodies decoded with one copy: what url.ParseQuery and
// json.Unmarshal would decode (FuzzDecodeCallbackLikeStd checks it), without
// copying the body first or the data twice. A callback arrives from
// strangers too (its signature is checked after decoding), so what it
// costs is bounded by its data.

var errMalformedForm = fmt.Errorf("%w: form: invalid form encoding", ErrMalformedCallback)

// maxFormParams is net/url's default limit on a query's parameters: a body
// with more is refused, as url.ParseQuery refuses it.
const maxFormParams = 10000

// decodeFormCallback decodes an application/x-www-form-urlencoded body as
// url.ParseQuery does (pairs split on '&', a ';' in a pair or a bad
// %-escape anywhere is an error, the first value of a key counts), copying
// only the unescaped data and sign.
func decodeFormCallback(body []byte) (Callback, error) {
	if bytes.Count(body, []byte("&"))+1 > maxFormParams {
		return Callback{}, errMalformedForm
	}
	var data, sign []byte
	var haveData, haveSign, bad bool
	for rest := body; len(rest) > 0; {
		var pair []byte
		pair, rest, _ = bytes.Cut(rest, []byte("&"))
		if bytes.IndexByte(pair, ';') >= 0 {
			bad = true
			continue
		}
		if len(pair) == 0 {
			continue
		}
		k, v, _ := bytes.Cut(pair, []byte("="))
		kn, kok := unescapedLen(k)
		_, vok := unescapedLen(v)
		switch {
		case !kok || !vok:
			bad = true
		case !haveData && unescapedIs(k, kn, "data"):
			data, haveData = v, true
		case !haveSign && unescapedIs(k, kn, "sign"):
			sign, haveSign = v, true
		}
	}
	if bad {
		return Callback{}, errMalformedForm
	}
	return Callback{Data: unescapeForm(data), Sign: unescapeForm(sign), Format: FormatForm}, nil
}

// unescapedLen is the length of a query component once unescaped, and
// whether its %-escapes are valid (url.QueryUnescape's rule).
func unescapedLen(b []byte) (int, bool) {
	n := len(b)
	for i := 0; i < len(b); i++ {
		if b[i] != '%' {
			continue
		}
		if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
			return 0, false
		}
		n -= 2
		i += 2
	}
	return n, true
}

// unescapedIs reports whether the valid query component b, n bytes once
// unescaped, unescapes to name (at most 8 bytes), without allocating.
func unescapedIs(b []byte, n int, name string) bool {
	if n != len(name) {
		return false
	}
	var buf [8]byte
	return string(appendUnescaped(buf[:0], b)) == name
}

// unescapeForm unescapes a valid query component into a new string: one
// allocation of exactly its length.
func unescapeForm(b []byte) string {
	n, _ := unescapedLen(b)
	if n == 0 {
		return ""
	}
	return unsafeString(appendUnescaped(make([]byte, 0, n), b))
}

// appendUnescaped appends the valid query component b, unescaped ('+' is a
// space), to dst.
func appendUnescaped(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '%':
			dst = append(dst, unhex(b[i+1])<<4|unhex(b[i+2]))
			i += 2
		case '+':
			dst = append(dst, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// decodeJSONCallback decodes a JSON body as json.Unmarshal decodes it into
// {Data json.RawMessage; Sign string}: keys match case-insensitively, the
// last data counts, each sign is decoded in turn (null changes nothing,
// anything but a string or null is an error). data is a string, whose
// value is the data, or an object, whose bytes are; anything else leaves
// the data empty.
func decodeJSONCallback(body []byte) (Callback, error) {
	var data []byte
	cb := Callback{Format: FormatJSON}
	var signErr error
	err := members(body, func(key string, vs, ve int) {
		switch {
		case strings.EqualFold(key, "data"):
			data = body[vs:ve]
		case strings.EqualFold(key, "sign"):
			s, null, err := jsonString(body[vs:ve])
			switch {
			case err != nil:
				signErr = err
			case !null:
				cb.Sign = s
			}
		}
	})
	if err != nil || signErr != nil {
		return Callback{}, fmt.Errorf("%w: json: invalid", ErrMalformedCallback)
	}
	switch {
	case len(data) > 0 && data[0] == '"':
		if cb.Data, err = unquoteOnce(data); err != nil {
			return Callback{}, fmt.Errorf("%w: data is not a string", ErrMalformedCallback)
		}
	case len(data) > 0 && data[0] == '{':
		cb.Data = string(data)
	}
	return cb, nil
}

// unquoteOnce decodes a valid JSON string literal as encoding/json does, in
// one allocation of exactly its length when it is valid UTF-8, through
// encoding/json otherwise (invalid bytes become U+FFFD).
func unquoteOnce(v []byte) (string, error) {
	in := v[1 : len(v)-1]
	if !utf8.Valid(in) {
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	}
	if bytes.IndexByte(in, '\\') < 0 {
		return string(in), nil
	}
	b := make([]byte, 0, unquotedLen(in))
	for len(in) > 0 {
		j := bytes.IndexByte(in, '\\')
		if j < 0 {
			b = append(b, in...)
			break
		}
		b = append(b, in[:j]...)
		in = in[j:]
		if c, ok := simpleEscapes[in[1]]; ok {
			b = append(b, c)
			in = in[2:]
			continue
		}
		r, size := unicodeEscape(in)
		b = utf8.AppendRune(b, r)
		in = in[size:]
	}
	return unsafeString(b), nil
}

// unquotedLen is the length of the inside of a valid JSON string literal
// once unquoted.
func unquotedLen(in []byte) int {
	n := 0
	for len(in) > 0 {
		j := bytes.IndexByte(in, '\\')
		if j < 0 {
			return n + len(in)
		}
		n += j
		in = in[j:]
		if _, ok := simpleEscapes[in[1]]; ok {
			n++
			in = in[2:]
			continue
		}
		r, size := unicodeEscape(in)
		n += utf8.RuneLen(r)
		in = in[size:]
	}
	return n
}

// unicodeEscape decodes the valid \uXXXX escape at the start of in, with
// the one after it when the two are a surrogate pair, as encoding/json does:
// a lone surrogate is U+FFFD. size is the bytes read (6 or 12).
func unicodeEscape(in []byte) (r rune, size int) {
	r = getu4(in)
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	if dec := utf16.DecodeRune(r, getu4(in[6:])); dec != unicode.ReplacementChar {
		return dec, 12
	}
	return unicode.ReplacementChar, 6
}

var simpleEscapes = map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// getu4 decodes the \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		if !isHex(c) {
			return -1
		}
		r = r<<4 | rune(unhex(c))
	}
	return r
}
