package contract

import (
	"encoding/json"
	"errors"
	"slices"
	"unicode/utf8"
)

// AppendJSONDataObject appends the event as encoding/json encodes it,
// except that a Data which starts with '{', ends with '}' and is valid UTF-8
// is written as the JSON object it is, byte for byte (last, as "data"),
// rather than as an escaped string: a callback's data then travels as what
// was signed, and readable. The caller vouches that such a Data is one valid
// JSON object, as ingest has checked. UnmarshalJSON reads either form back
// to the same Data.
func (e Event) AppendJSONDataObject(b []byte) ([]byte, error) {
	var data string
	if dataObject(e.Data) {
		data, e.Data = e.Data, ""
	}
	j, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if data == "" {
		return append(b, j...), nil
	}
	// j is an object with "vendor" in it: data follows its last member.
	b = slices.Grow(b, len(j)+len(`,"data":`)+len(data))
	b = append(b, j[:len(j)-1]...)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}'), nil
}

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
