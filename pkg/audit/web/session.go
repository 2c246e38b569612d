package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// MinSessionKeyLen is the shortest session key accepted.
const MinSessionKeyLen = 32

// SessionCookie is the name of the cookie a login sets over plain http
// (development); SecureSessionCookie its name whenever the cookie is
// Secure (https, --cookie-secure): a browser accepts a __Host- cookie
// only Secure, with Path=/ and no Domain, so no sibling host can set or
// overwrite it.
const (
	SessionCookie       = "faceharvest_audit_session"
	SecureSessionCookie = "__Host-" + SessionCookie
)

// A session is "v1.<fingerprint>.<expiry unix seconds>.<mac>": the
// fingerprint names the bearer token the person logged in with (the first
// 8 bytes of its SHA-256, never the token), the MAC is HMAC-SHA256 under the
// session key over what precedes it. The cookie holds no name and no role:
// both are read from the token file at every request, so removing a token
// from the file ends its sessions and a role change applies at once.
type sessions struct {
	keys [][]byte // the first signs; any verifies (rotation)
	ttl  time.Duration
}

var (
	errSessionBad     = errors.New("session cookie not valid")
	errSessionExpired = errors.New("session expired")
)

func (s sessions) mac(key []byte, payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s sessions) issue(fingerprint string, now time.Time) (value string, expires time.Time) {
	expires = now.Add(s.ttl).Truncate(time.Second)
	payload := "v1." + fingerprint + "." + strconv.FormatInt(expires.Unix(), 10)
	return payload + "." + s.mac(s.keys[0], payload), expires
}

// verify returns the fingerprint of a valid, unexpired session.
func (s sessions) verify(value string, now time.Time) (string, error) {
	i := strings.LastIndexByte(value, '.')
	if i < 0 || len(value) > 200 {
		return "", errSessionBad
	}
	payload, mac := value[:i], value[i+1:]
	ok := false
	for _, k := range s.keys {
		if hmac.Equal([]byte(s.mac(k, payload)), []byte(mac)) {
			ok = true
		}
	}
	if !ok {
		return "", errSessionBad
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || parts[0] != "v1" {
		return "", errSessionBad
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "", errSessionBad
	}
	if !now.Before(time.Unix(exp, 0)) {
		return "", errSessionExpired
	}
	return parts[1], nil
}
