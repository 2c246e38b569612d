package schedule

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// The frozen-state codec. A pending verification that only waits (most of a million restored ones:
// a token registered, its last chance hours away) is kept frozen: its state
// packed into one short string of varints, about 50 bytes instead of a
// 240-byte struct and its separately allocated strings and times. It is
// thawed when an event arrives for it or its call comes due. Only states
// without an intent, a closing decision, responses, finished endpoints or
// an error are frozen; the others are rare and already busy. Megvii's
// procedure (from a callback) is packed: it decides the next call.

// CanFreeze reports whether st may be frozen: every field it does not pack
// (frozenZero) is zero.
func CanFreeze(st *State) bool {
	return st.Intent == nil && st.Closing == nil && (st.Landing == "" || st.Landing == LandingSuccess || st.Landing == LandingFailure) && len(st.Responses) == 0 && len(st.Done) == 0 && st.LastError == "" &&
		st.Polls == 0 && st.QPSLimitedSince == nil && st.TokenInvalid == 0 && len(st.Asked) == 0 && len(st.Wanted) == 0 &&
		st.Failures >= 0 && st.Spent >= 0 && st.Attempts >= 0 &&
		packable(st.FirstSeen) && packable(st.NextAt) && (st.IssuedAt == nil || packable(*st.IssuedAt)) && (st.CompletedAt == nil || packable(*st.CompletedAt))
}

// The fields of State, each either packed by Freeze (or, for Vendor and
// ID, carried by the key) or required to be zero by CanFreeze. A field
// added to State must be added to one list, with its packing or its check:
// TestFrozenCodecCoversEveryField fails until it is.
var (
	frozenPacked = []string{"Vendor", "ID", "BizNo", "Owner", "IssuedAt", "FirstSeen", "FlowStatus", "Landing", "Unregistered",
		"CompletedAt", "NextAt", "Failures", "Spent", "Procedure", "Attempts", "LastWindowLeft"}
	frozenZero = []string{"Asked", "Wanted", "Intent", "Responses", "Done", "LastError", "Polls", "QPSLimitedSince", "TokenInvalid", "Closing"}
)

// packable reports whether t is zero or within the years UnixNano covers.
func packable(t time.Time) bool { return t.IsZero() || (t.Year() > 1700 && t.Year() < 2200) }

func baseOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Time zones of packed times: the instant is kept exactly; the location as
// UTC, the process's local zone, or a fixed offset, so a thawed state
// encodes to the same JSON.
const (
	zoneUTC = iota
	zoneLocal
	zoneFixed
)

// Freeze packs st (CanFreeze(st) must hold). Vendor and ID are not packed:
// they are the item's key.
func Freeze(st *State) string {
	b := make([]byte, 0, 64)
	b = binary.AppendUvarint(b, uint64(len(st.BizNo)))
	b = append(b, st.BizNo...)
	b = binary.AppendUvarint(b, uint64(len(st.FlowStatus)))
	b = append(b, st.FlowStatus...)
	b = binary.AppendUvarint(b, uint64(len(st.Procedure)))
	b = append(b, st.Procedure...)
	b = binary.AppendUvarint(b, uint64(len(st.Owner)))
	b = append(b, st.Owner...)
	var flags byte
	if st.IssuedAt != nil {
		flags |= 1
	}
	if st.CompletedAt != nil {
		flags |= 2
	}
	if st.Unregistered {
		flags |= 4
	}
	switch st.Landing {
	case LandingSuccess:
		flags |= 8
	case LandingFailure:
		flags |= 16
	}
	b = append(b, flags)
	// The first time whole, the others as differences from it: they are
	// hours apart at most, a few bytes each.
	b = appendTime(b, st.FirstSeen, 0)
	base := baseOf(st.FirstSeen)
	if st.IssuedAt != nil {
		b = appendTime(b, *st.IssuedAt, base)
	}
	if st.CompletedAt != nil {
		b = appendTime(b, *st.CompletedAt, base)
	}
	b = appendTime(b, st.NextAt, base)
	b = binary.AppendUvarint(b, uint64(st.Failures))
	b = binary.AppendUvarint(b, uint64(st.Spent))
	b = binary.AppendUvarint(b, uint64(st.Attempts))
	b = binary.AppendUvarint(b, math.Float64bits(st.LastWindowLeft))
	return string(b)
}

func appendTime(b []byte, t time.Time, base int64) []byte {
	if t.IsZero() {
		return append(b, 0xFF) // no zone byte has this value
	}
	_, off := t.Zone()
	switch {
	case t.Location() == time.UTC:
		b = append(b, zoneUTC)
	case t.Location() == time.Local:
		b = append(b, zoneLocal)
	default:
		b = append(b, zoneFixed)
		b = binary.AppendVarint(b, int64(off))
	}
	return binary.AppendVarint(b, t.UnixNano()-base)
}

var errCorrupt = errors.New("corrupt frozen state")

// MustThaw thaws what Freeze packed in this process: a failure is a bug,
// not input.
func MustThaw(key, s string) *State {
	st, err := Thaw(key, s)
	if err != nil {
		panic("schedule: " + err.Error())
	}
	return st
}

// Thaw unpacks what Freeze packed for key.
func Thaw(key, s string) (*State, error) {
	i := strings.IndexByte(key, ':')
	if i < 0 {
		return nil, errCorrupt
	}
	// Vendor and ID share the key's bytes.
	st := &State{Vendor: contract.Vendor(key[:i]), ID: key[i+1:]}
	r := reader{s: s}
	st.BizNo = r.str()
	st.FlowStatus = r.str()
	st.Procedure = r.str()
	st.Owner = r.str()
	flags := r.byte()
	st.Unregistered = flags&4 != 0
	switch {
	case flags&8 != 0:
		st.Landing = LandingSuccess
	case flags&16 != 0:
		st.Landing = LandingFailure
	}
	st.FirstSeen = r.time(0)
	base := baseOf(st.FirstSeen)
	if flags&1 != 0 {
		t := r.time(base)
		st.IssuedAt = &t
	}
	if flags&2 != 0 {
		t := r.time(base)
		st.CompletedAt = &t
	}
	st.NextAt = r.time(base)
	st.Failures, st.Spent, st.Attempts = int(r.uvarint()), int(r.uvarint()), int(r.uvarint())
	st.LastWindowLeft = math.Float64frombits(r.uvarint())
	if r.bad || r.i != len(s) {
		return nil, errCorrupt
	}
	return st, nil
}

type reader struct {
	s   string
	i   int
	bad bool
}

func (r *reader) byte() byte {
	if r.i >= len(r.s) {
		r.bad = true
		return 0
	}
	r.i++
	return r.s[r.i-1]
}

func (r *reader) uvarint() uint64 {
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		c := r.byte()
		x |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return x
		}
	}
	r.bad = true
	return 0
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.s)-r.i) {
		r.bad = true
		return ""
	}
	s := r.s[r.i : r.i+int(n)]
	r.i += int(n)
	return s
}

func (r *reader) time(base int64) time.Time {
	var loc *time.Location
	switch r.byte() {
	case 0xFF:
		return time.Time{}
	case zoneUTC:
		loc = time.UTC
	case zoneLocal:
		loc = time.Local
	case zoneFixed:
		off := r.varint()
		loc = time.FixedZone("", int(off))
	default:
		r.bad = true
		return time.Time{}
	}
	return time.Unix(0, base+r.varint()).In(loc)
}
