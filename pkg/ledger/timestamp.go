package ledger

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/digitorus/pkcs7"
	"github.com/digitorus/timestamp"

	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// RFC 3161 countersignatures. A checkpoint signed by the log's key says
// what the tree was, not when: a time-stamping authority (TSA) adds that.
// The integrator sends SHA-256(signed checkpoint note) to the TSA and
// stores the token it answers under timestamp/<tree size, 20 digits>;
// export puts it in the bundle beside the checkpoint, and VerifyBundle
// checks it offline against the TSA certificates the verifier trusts.

// TimestampKey is where the RFC 3161 time-stamp token (DER, CMS SignedData)
// of the checkpoint of a tree of size leaves is stored.
func (r Reader) TimestampKey(size int64) string {
	return fmt.Sprintf("%stimestamp/%020d", r.prefix(), size)
}

// Timestamp reads the time-stamp token of the checkpoint of a tree of size
// leaves: nil when it has none (no TSA configured, or the TSA was
// unreachable when it was published).
func (r Reader) Timestamp(ctx context.Context, size int64) ([]byte, error) {
	b, err := getLimited(ctx, r.Bucket, r.TimestampKey(size), maxToken)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// maxToken bounds a time-stamp token (a CMS SignedData with a few
// certificates).
const maxToken = 1 << 20

// TSA asks a time-stamping authority (RFC 3161 over HTTP) for tokens.
type TSA struct {
	URL    string
	Client *http.Client // http.DefaultClient when nil
}

// Stamp asks the TSA to time-stamp msg (SHA-256, a fresh nonce, its
// certificates included) and returns the token, checked: granted, for
// this hash and nonce, and signed by the certificate it carries (whether
// that certificate is to be trusted is the verifier's question).
func (t TSA) Stamp(ctx context.Context, msg []byte) ([]byte, error) {
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	req, err := timestamp.CreateRequest(bytes.NewReader(msg), &timestamp.RequestOptions{Hash: crypto.SHA256, Certificates: true, Nonce: nonce})
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/timestamp-query")
	c := t.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxToken+1))
	if err != nil {
		return nil, fmt.Errorf("time-stamp response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("time-stamping authority answered %s", resp.Status)
	}
	ts, err := timestamp.ParseResponse(body)
	if err != nil {
		return nil, fmt.Errorf("time-stamp response: %w", err)
	}
	sum := sha256.Sum256(msg)
	if ts.HashAlgorithm != crypto.SHA256 || !bytes.Equal(ts.HashedMessage, sum[:]) {
		return nil, errors.New("time-stamp response: the token is for another message")
	}
	if ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0 {
		return nil, errors.New("time-stamp response: the token does not carry the request's nonce")
	}
	return ts.RawToken, nil
}

// StampCheckpoint time-stamps the signed checkpoint of a tree of size
// leaves with t, checks the token against certs when given, and stores it
// at r.TimestampKey(size); the first token stored for a checkpoint is kept.
// On failure it says why in a word (tsa, untrusted, store: the integrator's
// metric label) and how.
func StampCheckpoint(ctx context.Context, t TSA, certs []*x509.Certificate, r Reader, size int64, signed []byte) (string, error) {
	token, err := t.Stamp(ctx, signed)
	if err != nil {
		return "tsa", err
	}
	if len(certs) > 0 {
		if _, err := CheckTimestamp(token, signed, certs); err != nil {
			return "untrusted", err
		}
	}
	err = r.Bucket.Create(ctx, r.TimestampKey(size), bytes.NewReader(token), int64(len(token)), "application/octet-stream", nil)
	if err != nil && !errors.Is(err, objstore.ErrExists) {
		return "store", err
	}
	return "", nil
}

// TimestampProof is what a checked time-stamp token proves: the TSA named
// Signer vouched that the message whose SHA-256 is Hashed existed at Time
// (within Accuracy).
type TimestampProof struct {
	Time     time.Time
	Accuracy time.Duration
	Serial   *big.Int
	Signer   string // the TSA certificate's subject
	Hashed   string // hex SHA-256 of the time-stamped message
	// Trusted says the token's signing certificate chains to a TSA
	// certificate the verifier gave; without, only the message imprint
	// was checked and the time is the token's own word.
	Trusted bool
}

// CheckTimestamp checks token as the time stamp of msg: its signature,
// that it stamps SHA-256(msg), and, when roots is not nil, that its signer
// is a time-stamping certificate (extended key usage timeStamping) that
// chains to roots, valid at the stamped time. The certificates in roots
// may also stand in for a token that carries none.
func CheckTimestamp(token, msg []byte, roots []*x509.Certificate) (TimestampProof, error) {
	p7, err := pkcs7.Parse(token)
	if err != nil {
		return TimestampProof{}, fmt.Errorf("not an RFC 3161 time-stamp token: %v", err)
	}
	p7.Certificates = append(p7.Certificates, roots...)
	if len(p7.Certificates) == 0 {
		return TimestampProof{}, errors.New("the time-stamp token carries no certificate and none was given to check it")
	}
	if err := p7.Verify(); err != nil {
		return TimestampProof{}, fmt.Errorf("the time-stamp token's signature does not verify: %v", err)
	}
	// (A token without certificates is parsed unchecked: its signature
	// was checked above with the given ones.)
	ts, err := timestamp.Parse(token)
	if err != nil {
		return TimestampProof{}, fmt.Errorf("not an RFC 3161 time-stamp token: %v", err)
	}
	sum := sha256.Sum256(msg)
	if ts.HashAlgorithm != crypto.SHA256 || !bytes.Equal(ts.HashedMessage, sum[:]) {
		return TimestampProof{}, fmt.Errorf("the time-stamp token is for another message (its imprint is %s %x, the checkpoint's SHA-256 is %x): the checkpoint was altered, or the token is another checkpoint's", ts.HashAlgorithm, ts.HashedMessage, sum)
	}
	signer := p7.GetOnlySigner()
	pr := TimestampProof{Time: ts.Time.UTC(), Accuracy: ts.Accuracy, Serial: ts.SerialNumber, Hashed: hex.EncodeToString(sum[:])}
	if signer != nil {
		pr.Signer = signer.Subject.String()
	}
	if len(roots) == 0 {
		return pr, nil
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range p7.Certificates {
		inter.AddCert(c)
	}
	if err := p7.VerifyWithOpts(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: ts.Time,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}); err != nil {
		return TimestampProof{}, fmt.Errorf("the time-stamp token is not signed by a time-stamping authority whose certificate was given (%s): %v", pr.Signer, err)
	}
	pr.Trusted = true
	return pr, nil
}

// LoadTSACertificates reads the PEM certificates in a file: the
// time-stamping authority's root (or its own certificate) that tokens are
// checked against.
func LoadTSACertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTSACertificates(b)
}

// ParseTSACertificates reads PEM certificates.
func ParseTSACertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("TSA certificate: %v", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("TSA certificate: no PEM CERTIFICATE block")
	}
	return out, nil
}

// describe says what a checked time stamp proved, in one line.
func (p TimestampProof) describe() string {
	acc := ""
	if p.Accuracy > 0 {
		acc = " (±" + p.Accuracy.String() + ")"
	}
	who := strings.TrimSpace(p.Signer)
	if who == "" {
		who = "an unnamed signer"
	}
	if !p.Trusted {
		return fmt.Sprintf("the checkpoint (SHA-256 %s) carries a time-stamp token by %s dated %s%s, serial %s; NOT checked against a TSA certificate (give one to verify): the time is the token's own word",
			p.Hashed, who, p.Time.Format(time.RFC3339Nano), acc, p.Serial)
	}
	return fmt.Sprintf("the time-stamping authority %s signed that the checkpoint (its signed note, SHA-256 %s) existed at %s%s: RFC 3161 token serial %s, checked against the given TSA certificate(s)",
		who, p.Hashed, p.Time.Format(time.RFC3339Nano), acc, p.Serial)
}
