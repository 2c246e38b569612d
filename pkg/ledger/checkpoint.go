// Package ledger keeps the evidence log: every final index entry is a leaf
// of an append-only Merkle tree (RFC 6962 hashing, golang.org/x/mod/sumdb/tlog)
// stored in the bucket as a static tiled log in the C2SP tlog-tiles layout,
// with checkpoints in the C2SP signed-note format (golang.org/x/mod/sumdb/note).
// Anyone holding the log's public key can check, offline, that an entry is in
// the tree a checkpoint commits to, and that a later checkpoint only grew.
package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed tree head's body (C2SP tlog-checkpoint): the log's
// origin, the tree's size and its root hash.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// Body renders the checkpoint's note text.
func (c Checkpoint) Body() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// ParseCheckpoint reads a checkpoint's note text (extension lines allowed).
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return Checkpoint{}, errors.New("checkpoint: want origin, size and root hash lines")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("checkpoint: bad tree size %.30q", lines[1])
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("checkpoint: bad root hash %.60q", lines[2])
	}
	c := Checkpoint{Origin: lines[0], Size: n}
	copy(c.Hash[:], h)
	return c, nil
}

// Sign signs c with s: the signed note stored at <prefix>checkpoint.
func Sign(c Checkpoint, s note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: string(c.Body())}, s)
}

// OpenCheckpoint checks a signed checkpoint against the log's public key
// and returns what it says. The error says why a checkpoint is refused: not
// a signed note, not signed by this key, a bad signature, or a body that is
// not a checkpoint of the key's origin.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return Checkpoint{}, fmt.Errorf("checkpoint is not signed by the log key %s+%08x (signed by %s)", v.Name(), v.KeyHash(), signers(unverified.Note))
		case errors.As(err, &invalid):
			return Checkpoint{}, fmt.Errorf("checkpoint's signature by %s does not verify: the checkpoint was altered or signed by another key of the same name", v.Name())
		}
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint's origin %q is not the log key's name %q", c.Origin, v.Name())
	}
	return c, nil
}

// GenerateKey returns a new Ed25519 signing key and its public (verifier)
// key for a log named origin, in the signed-note key formats
// ("PRIVATE+KEY+<origin>+<hash>+<key>" and "<origin>+<hash>+<key>").
func GenerateKey(origin string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, origin)
}

// NewSigner reads a signing key (GenerateKey's skey, surrounding space
// ignored).
func NewSigner(skey string) (note.Signer, error) {
	s, err := note.NewSigner(string(bytes.TrimSpace([]byte(skey))))
	if err != nil {
		return nil, errors.New("ledger signing key: not a signed-note private key (PRIVATE+KEY+<origin>+<hash>+<key>)")
	}
	return s, nil
}

// KeyPair reads a signing key and derives its public key (GenerateKey's
// vkey) from it, so that a process needs only the one secret.
func KeyPair(skey string) (note.Signer, note.Verifier, string, error) {
	s, err := NewSigner(skey)
	if err != nil {
		return nil, nil, "", err
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>
	// (the name has no +, the hash is 8 hex digits; the key may hold +).
	rest := strings.TrimPrefix(strings.TrimSpace(skey), "PRIVATE+KEY+")
	rest = rest[strings.Index(rest, "+")+1:]
	if len(rest) < 9 {
		return nil, nil, "", errors.New("ledger signing key: not an Ed25519 key")
	}
	raw, err := base64.StdEncoding.DecodeString(rest[9:])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, nil, "", errors.New("ledger signing key: not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, nil, "", err
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		return nil, nil, "", err
	}
	return s, v, vkey, nil
}

// NewVerifier reads a public key (GenerateKey's vkey, surrounding space
// ignored).
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("ledger public key: not a signed-note verifier key (<origin>+<hash>+<key>): %v", err)
	}
	return v, nil
}

// signers names a note's unverified signers.
func signers(n *note.Note) string {
	var names []string
	for _, s := range n.UnverifiedSigs {
		names = append(names, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	if len(names) == 0 {
		return "no key"
	}
	return strings.Join(names, ", ")
}
