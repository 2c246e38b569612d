// Package flexjson holds JSON scalar types that tolerate the vendors' habit of
// sending numbers as strings, booleans as strings, and empty strings for
// absent values, without losing what was sent.
package flexjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Float is a number that may arrive as a JSON number, a numeric string, an
// empty string or null. Valid is false when no number was present.
type Float struct {
	Value float64
	Valid bool
}

// F returns a valid Float.
func F(v float64) Float { return Float{Value: v, Valid: true} }

// UnmarshalJSON accepts 1.5, "1.5", "", and null.
func (f *Float) UnmarshalJSON(b []byte) error {
	s, isNull, err := scalarText(b)
	if err != nil {
		return err
	}
	if isNull || strings.TrimSpace(s) == "" {
		*f = Float{}
		return nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("flexjson: %q is not a number", truncate(s))
	}
	*f = Float{Value: v, Valid: true}
	return nil
}

// MarshalJSON writes the number, or null when not valid.
func (f Float) MarshalJSON() ([]byte, error) {
	if !f.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f.Value, 'g', -1, 64), nil
}

// Ptr returns nil when absent.
func (f Float) Ptr() *float64 {
	if !f.Valid {
		return nil
	}
	v := f.Value
	return &v
}

// Int is an integer that may arrive as a number, a numeric string, an empty
// string or null. Numbers with a fractional part are rejected.
type Int struct {
	Value int64
	Valid bool
}

// I returns a valid Int.
func I(v int64) Int { return Int{Value: v, Valid: true} }

// UnmarshalJSON accepts 3, "3", 3.0, "", and null.
func (n *Int) UnmarshalJSON(b []byte) error {
	s, isNull, err := scalarText(b)
	if err != nil {
		return err
	}
	s = strings.TrimSpace(s)
	if isNull || s == "" {
		*n = Int{}
		return nil
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = Int{Value: v, Valid: true}
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != float64(int64(v)) {
		return fmt.Errorf("flexjson: %q is not an integer", truncate(s))
	}
	*n = Int{Value: int64(v), Valid: true}
	return nil
}

// MarshalJSON writes the integer, or null when not valid.
func (n Int) MarshalJSON() ([]byte, error) {
	if !n.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, n.Value, 10), nil
}

// Bool is a boolean that may arrive as true/false, "true"/"false", 0/1,
// "0"/"1", "" or null.
type Bool struct {
	Value bool
	Valid bool
}

// B returns a valid Bool.
func B(v bool) Bool { return Bool{Value: v, Valid: true} }

// UnmarshalJSON accepts the spellings listed on the type.
func (v *Bool) UnmarshalJSON(b []byte) error {
	s, isNull, err := scalarText(b)
	if err != nil {
		return err
	}
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case isNull || s == "":
		*v = Bool{}
	case s == "true" || s == "1":
		*v = Bool{Value: true, Valid: true}
	case s == "false" || s == "0":
		*v = Bool{Value: false, Valid: true}
	default:
		return fmt.Errorf("flexjson: %q is not a boolean", truncate(s))
	}
	return nil
}

// MarshalJSON writes the boolean, or null when not valid.
func (v Bool) MarshalJSON() ([]byte, error) {
	if !v.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendBool(nil, v.Value), nil
}

// String is text that may arrive as a JSON string, a number or a boolean (kept
// as its literal text), or null.
type String string

// UnmarshalJSON accepts "x", 12, true and null.
func (s *String) UnmarshalJSON(b []byte) error {
	t, _, err := scalarText(b)
	if err != nil {
		return err
	}
	*s = String(t)
	return nil
}

// scalarText returns the text of a JSON scalar: the unquoted string, or the
// literal of a number or boolean. Objects and arrays are errors.
func scalarText(b []byte) (text string, isNull bool, err error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "", true, nil
	}
	switch b[0] {
	case 'n':
		if string(b) == "null" {
			return "", true, nil
		}
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return "", false, err
		}
		return s, false, nil
	case '{', '[':
		return "", false, fmt.Errorf("flexjson: expected a scalar, got %s", truncate(string(b)))
	}
	if !json.Valid(b) {
		return "", false, fmt.Errorf("flexjson: invalid scalar %s", truncate(string(b)))
	}
	return string(b), false, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
