package web

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// MinTokenLen is the shortest bearer token a token file may hold.
const MinTokenLen = 16

// Principal is who makes a request, and with which role.
type Principal struct {
	Name string
	Role string
	// Method says how they were authenticated: bearer, session or proxy.
	Method string
	// fingerprint names the token (bearer and session), for sessions.
	fingerprint string
}

// CanSeeIdentity reports whether the principal may see unmasked identities
// and evidence documents.
func (p Principal) CanSeeIdentity() bool { return p.Role == contract.RoleIdentity }

type tokenEntry struct {
	hash        [sha256.Size]byte
	fingerprint string
	role, name  string
}

// Tokens are the bearer tokens of a token file: one "token role name" per
// line (role viewer or identity; the name is the rest of the line, and is
// what audit events say of the viewer); blank lines and lines starting with
// # are ignored. Only the tokens' SHA-256 hashes are kept, and a presented
// token is compared against every one in constant time. The file is read
// again when its modification time or size changes (checked at most every
// few seconds), so that a rotated Kubernetes Secret takes effect without a
// restart; a file that no longer parses keeps the tokens read before.
type Tokens struct {
	path  string
	now   clock.Now
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	entries []tokenEntry
	mtime   time.Time
	size    int64
	checked time.Time
}

// LoadTokens reads a token file.
func LoadTokens(path string, now clock.Now, log *slog.Logger) (*Tokens, error) {
	if now == nil {
		now = clock.Real
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tokens{path: path, now: now, log: log, every: 5 * time.Second}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if t.entries, err = parseTokens(b); err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	t.mtime, t.size, t.checked = st.ModTime(), st.Size(), now()
	return t, nil
}

// parseTokens parses a token file's content. Errors name lines, never
// tokens.
func parseTokens(b []byte) ([]tokenEntry, error) {
	var out []tokenEntry
	seen := map[[sha256.Size]byte]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d: want \"token role name\"", n)
		}
		if len(f[0]) < MinTokenLen {
			return nil, fmt.Errorf("line %d: token shorter than %d characters", n, MinTokenLen)
		}
		if f[1] != contract.RoleViewer && f[1] != contract.RoleIdentity {
			return nil, fmt.Errorf("line %d: role %.20q: want %s or %s", n, f[1], contract.RoleViewer, contract.RoleIdentity)
		}
		h := sha256.Sum256([]byte(f[0]))
		if seen[h] {
			return nil, fmt.Errorf("line %d: the same token twice", n)
		}
		seen[h] = true
		out = append(out, tokenEntry{hash: h, fingerprint: hex.EncodeToString(h[:8]), role: f[1], name: strings.Join(f[2:], " ")})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no tokens")
	}
	return out, nil
}

// reload re-reads the file when it changed; the caller holds mu.
func (t *Tokens) reload() {
	now := t.now()
	if now.Sub(t.checked) < t.every {
		return
	}
	t.checked = now
	st, err := os.Stat(t.path)
	if err != nil {
		t.log.Error("token file unreadable; the tokens read before stay in use", "path", t.path, "error", err.Error())
		return
	}
	if st.ModTime().Equal(t.mtime) && st.Size() == t.size {
		return
	}
	b, err := os.ReadFile(t.path)
	if err == nil {
		var es []tokenEntry
		if es, err = parseTokens(b); err == nil {
			t.entries, t.mtime, t.size = es, st.ModTime(), st.Size()
			t.log.Info("token file read again", "path", t.path, "tokens", len(es))
			return
		}
	}
	t.log.Error("token file does not parse; the tokens read before stay in use", "path", t.path, "error", err.Error())
}

// Lookup returns the principal of a presented token. Every entry is
// compared, in constant time, whatever matches.
func (t *Tokens) Lookup(token string) (Principal, bool) {
	h := sha256.Sum256([]byte(token))
	t.mu.Lock()
	t.reload()
	es := t.entries
	t.mu.Unlock()
	found := -1
	for i := range es {
		if subtle.ConstantTimeCompare(h[:], es[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	e := es[found]
	return Principal{Name: e.name, Role: e.role, Method: "bearer", fingerprint: e.fingerprint}, true
}

// byFingerprint returns the principal of the token a session was opened
// with, as the file says now (so that a removed token ends its sessions and
// a changed role applies to them).
func (t *Tokens) byFingerprint(fp string) (Principal, bool) {
	t.mu.Lock()
	t.reload()
	es := t.entries
	t.mu.Unlock()
	for _, e := range es {
		if subtle.ConstantTimeCompare([]byte(e.fingerprint), []byte(fp)) == 1 {
			return Principal{Name: e.name, Role: e.role, Method: "session", fingerprint: e.fingerprint}, true
		}
	}
	return Principal{}, false
}
