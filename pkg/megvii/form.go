package megvii

import (
	"errors"
	"strings"
	"unsafe"
)

var errForm = errors.New("invalid form encoding")

// maxFormFields is url.ParseQuery's default limit on parameters.
const maxFormFields = 10000

// formFields returns the first value of data and of sign in an
// application/x-www-form-urlencoded body, and an error exactly when
// url.ParseQuery would give one (too many parameters, a semicolon, a bad
// escape in any key or value). It decodes only the two values it returns:
// on a callback, where data is a kilobyte or two of escaped JSON,
// url.ParseQuery's general decoding was an eighth of ingest's CPU.
// FuzzFormFields holds it to url.ParseQuery. The strings returned never
// share body's bytes.
func formFields(body string) (data, sign string, err error) {
	if strings.Count(body, "&")+1 > maxFormFields {
		return "", "", errForm
	}
	var haveData, haveSign bool
	for body != "" {
		var seg string
		seg, body, _ = strings.Cut(body, "&")
		if strings.IndexByte(seg, ';') >= 0 {
			err = errForm
			continue
		}
		if seg == "" {
			continue
		}
		k, v, _ := strings.Cut(seg, "=")
		key, ok := unescapeForm(k)
		if !ok {
			err = errForm
			continue
		}
		switch {
		case key == "data" && !haveData:
			data, haveData = unescapeOwned(v)
		case key == "sign" && !haveSign:
			sign, haveSign = unescapeOwned(v)
		default:
			ok = validEscapes(v)
		}
		if key == "data" && !haveData || key == "sign" && !haveSign || !ok {
			err = errForm
		}
	}
	return data, sign, err
}

// validEscapes reports whether every '%' in s starts a %XX escape.
func validEscapes(s string) bool {
	for i := strings.IndexByte(s, '%'); i >= 0; {
		if i+2 >= len(s) || (hexVal[s[i+1]]|hexVal[s[i+2]])&0xF0 != 0 {
			return false
		}
		j := strings.IndexByte(s[i+3:], '%')
		if j < 0 {
			return true
		}
		i += 3 + j
	}
	return true
}

// hexVal maps a byte to its hex digit value, or 0xFF.
var hexVal = func() (t [256]byte) {
	for i := range t {
		switch c := byte(i); {
		case '0' <= c && c <= '9':
			t[i] = c - '0'
		case 'a' <= c && c <= 'f':
			t[i] = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			t[i] = c - 'A' + 10
		default:
			t[i] = 0xFF
		}
	}
	return t
}()

// unescapeOwned is unescapeForm whose result never shares s's bytes, so s
// may be a view of a buffer that changes later. (Keys are only compared:
// they are not copied.)
func unescapeOwned(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return strings.Clone(s), true
	}
	return unescapeForm(s)
}

// unescapeForm decodes %XX and '+' as url.QueryUnescape does, in one pass:
// s itself when there is nothing to decode, else a string of its own.
func unescapeForm(s string) (string, bool) {
	i := strings.IndexAny(s, "%+")
	if i < 0 {
		return s, true
	}
	// Each valid escape turns three bytes into one: the exact size, so that
	// less is allocated and cleared (fewer bytes than that: a bad escape).
	size := len(s) - 2*strings.Count(s[i:], "%")
	if size <= 0 {
		return "", false
	}
	b := make([]byte, size)
	n := copy(b, s[:i])
	rest, out := s[i:], b[n:]
	k := 0
	for len(rest) > 0 && k < len(out) {
		c := rest[0]
		if c == '%' {
			if len(rest) < 3 {
				return "", false
			}
			hi, lo := hexVal[rest[1]], hexVal[rest[2]]
			if (hi|lo)&0xF0 != 0 {
				return "", false
			}
			c = hi<<4 | lo
			rest = rest[3:]
		} else {
			if c == '+' {
				c = ' '
			}
			rest = rest[1:]
		}
		out[k] = c
		k++
	}
	if len(rest) > 0 {
		return "", false // the output is full early only when some '%' is not an escape
	}
	// b is this function's own and is never written again.
	return unsafe.String(&b[0], n+k), true
}
