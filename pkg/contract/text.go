package contract

import (
	"unicode"
	"unicode/utf8"
)

// Unprintable reports whether r is a character a terminal or a text line
// acts on rather than shows: a control character (C0, DEL, C1), a line or
// paragraph separator, or a format character (bidirectional overrides,
// zero-width ones). A biz_no holding one is refused where a caller gives
// it, and the operator command escapes them in what it prints.
func Unprintable(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp, unicode.Cf)
}

// PlainText reports whether s is valid UTF-8 without Unprintable
// characters.
func PlainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if Unprintable(r) {
			return false
		}
	}
	return true
}
