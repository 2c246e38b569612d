package ledger

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// A bundle is a zip file that proves one verification's evidence offline:
//
//	index-entry.json        the by-id index entry, exactly as it is a leaf of the log
//	inclusion-proof.json    BundleProof: the leaf's index and the hashes up to the root
//	checkpoint              the log's signed checkpoint the proof leads to
//	checkpoint.tst          when the log has one: the RFC 3161 time-stamp token
//	                        of the checkpoint (a TSA's signature over its SHA-256)
//	objects/<store key>     the record, the evidence document (which holds every vendor
//	                        answer and callback as received) and every stored media object
//	manifest.json           BundleManifest: what was exported, when, by whom
//	SUMMARY.txt             the same for people, and how to check it
//	audit-trail.json        who viewed the verification's evidence, when (faceid.audit's
//	                        events as read at export; informative, not covered by the proof)
//
// VerifyBundle trusts none of it but the log's public key.
const (
	BundleFormat        = "faceharvest.bundle.v1"
	BundleEntry         = "index-entry.json"
	BundleProofFile     = "inclusion-proof.json"
	BundleCheckpoint    = "checkpoint"
	BundleTimestamp     = "checkpoint.tst"
	BundleManifestFile  = "manifest.json"
	BundleSummary       = "SUMMARY.txt"
	BundleAuditTrail    = "audit-trail.json"
	BundleObjects       = "objects/"
	maxBundleSmallFile  = 16 << 20
	maxBundleObjectFile = 8 << 30
)

// BundleProof is an inclusion proof as the bundle carries it.
type BundleProof struct {
	LeafIndex int64    `json:"leaf_index"`
	TreeSize  int64    `json:"tree_size"`
	Hashes    []string `json:"hashes"` // base64, leaf to root (tlog.RecordProof)
}

// BundleManifest says what a bundle holds; it is informative only.
type BundleManifest struct {
	Format         string          `json:"format"`
	Vendor         contract.Vendor `json:"vendor"`
	VerificationID string          `json:"verification_id"`
	IndexKey       string          `json:"index_key"`
	LeafIndex      int64           `json:"leaf_index"`
	TreeSize       int64           `json:"tree_size"`
	Origin         string          `json:"origin"`
	Objects        []string        `json:"objects"`
	Timestamped    bool            `json:"timestamped"` // the bundle holds checkpoint.tst
	ExportedAt     time.Time       `json:"exported_at"`
	ExportedBy     string          `json:"exported_by"`
}

// BundleWriter writes a bundle.
type BundleWriter struct {
	zw  *zip.Writer
	man BundleManifest
}

// NewBundleWriter starts a bundle on w.
func NewBundleWriter(w io.Writer) *BundleWriter { return &BundleWriter{zw: zip.NewWriter(w)} }

func (b *BundleWriter) file(name string, body []byte) error {
	f, err := b.zw.Create(name)
	if err != nil {
		return err
	}
	_, err = f.Write(body)
	return err
}

// Proof writes the leaf, its proof and the checkpoint.
func (b *BundleWriter) Proof(entry []byte, n int64, proof tlog.RecordProof, cp Checkpoint, signed []byte) error {
	bp := BundleProof{LeafIndex: n, TreeSize: cp.Size}
	for _, h := range proof {
		bp.Hashes = append(bp.Hashes, base64.StdEncoding.EncodeToString(h[:]))
	}
	pj, _ := json.MarshalIndent(bp, "", "  ")
	b.man.LeafIndex, b.man.TreeSize, b.man.Origin = n, cp.Size, cp.Origin
	if err := b.file(BundleEntry, entry); err != nil {
		return err
	}
	if err := b.file(BundleProofFile, pj); err != nil {
		return err
	}
	return b.file(BundleCheckpoint, signed)
}

// Timestamp writes the checkpoint's RFC 3161 time-stamp token.
func (b *BundleWriter) Timestamp(token []byte) error {
	b.man.Timestamped = true
	return b.file(BundleTimestamp, token)
}

// Object copies a stored object into the bundle under objects/<key>.
func (b *BundleWriter) Object(key string, r io.Reader) error {
	f, err := b.zw.CreateHeader(&zip.FileHeader{Name: BundleObjects + key, Method: zip.Store}) // media are compressed already
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	b.man.Objects = append(b.man.Objects, key)
	return nil
}

// Close writes the manifest and the summary and ends the zip.
func (b *BundleWriter) Close(e archiver.IndexEntry, indexKey, by string, at time.Time) error {
	b.man.Format, b.man.Vendor, b.man.VerificationID, b.man.IndexKey, b.man.ExportedBy, b.man.ExportedAt = BundleFormat, e.Vendor, e.VerificationID, indexKey, by, at.UTC()
	mj, _ := json.MarshalIndent(b.man, "", "  ")
	if err := b.file(BundleManifestFile, mj); err != nil {
		return err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "Evidence bundle of %s verification %s (outcome %s, decided %s)\n", e.Vendor, e.VerificationID, e.Outcome, e.DecidedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&s, "Exported %s by %s.\n\n", at.UTC().Format(time.RFC3339), by)
	fmt.Fprintf(&s, "%s is leaf %d of the append-only evidence log %q, whose signed\n", BundleEntry, b.man.LeafIndex, b.man.Origin)
	fmt.Fprintf(&s, "checkpoint (%s, tree size %d) it is proven to be in by %s.\n", BundleCheckpoint, b.man.TreeSize, BundleProofFile)
	fmt.Fprintf(&s, "The entry names the SHA-256 of the record, the evidence document and %d media object(s), under %s.\n\n", len(e.Media), BundleObjects)
	if b.man.Timestamped {
		fmt.Fprintf(&s, "%s is an RFC 3161 time-stamp token of the checkpoint: a time-stamping authority's signature\n", BundleTimestamp)
		s.WriteString("that the checkpoint existed at the time it names. Check it with the authority's certificate (--tsa-cert).\n\n")
	} else {
		s.WriteString("The checkpoint has no time stamp: when it was signed is the log key holder's word.\n\n")
	}
	s.WriteString("To check it, offline, with the log's public key:\n\n    faceharvest verify <this file> --log-key '<origin>+<hash>+<key>'\n\n")
	s.WriteString("Hashing is RFC 6962 (SHA-256, leaf = 0x00 || entry), the checkpoint a C2SP signed note (Ed25519).\n")
	if err := b.file(BundleSummary, []byte(s.String())); err != nil {
		return err
	}
	return b.zw.Close()
}

// BundleReport says what VerifyBundle proved.
type BundleReport struct {
	Entry      archiver.IndexEntry
	Checkpoint Checkpoint
	KeyName    string
	KeyHash    uint32
	LeafIndex  int64
	Objects    []contract.ObjectRef // checked, byte for byte
	Unchecked  []string             // files the proof does not cover
	// Timestamp is what the checkpoint's time-stamp token proved; nil
	// when the bundle has none.
	Timestamp *TimestampProof
}

// VerifyOptions are what VerifyBundleWith trusts besides the log's key.
type VerifyOptions struct {
	// TSACertificates are the time-stamping authorities' certificates
	// (roots or their own) a checkpoint's time-stamp token must chain to.
	// None: a token is checked for its signature and that it stamps this
	// checkpoint, and its time reported as not checked.
	TSACertificates []*x509.Certificate
}

// String says exactly what was proved, and what was not.
func (r BundleReport) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "OK: %s verification %s (outcome %s, decided %s)\n", r.Entry.Vendor, r.Entry.VerificationID, r.Entry.Outcome, r.Entry.DecidedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&s, "- the checkpoint is signed by the log key %s+%08x: log %q, tree size %d, root %s\n", r.KeyName, r.KeyHash, r.Checkpoint.Origin, r.Checkpoint.Size, r.Checkpoint.Hash)
	fmt.Fprintf(&s, "- the index entry is leaf %d of that tree (RFC 6962 inclusion proof)\n", r.LeafIndex)
	for _, o := range r.Objects {
		fmt.Fprintf(&s, "- %s (%d bytes) has the SHA-256 the entry names: %s\n", o.Key, o.Size, o.SHA256)
	}
	for _, u := range r.Unchecked {
		fmt.Fprintf(&s, "- not covered by the proof (informative only): %s\n", u)
	}
	switch {
	case r.Timestamp == nil:
		s.WriteString("- no time stamp: the bundle holds no RFC 3161 token of the checkpoint\n")
	default:
		fmt.Fprintf(&s, "- %s\n", r.Timestamp.describe())
	}
	s.WriteString("So these bytes are the ones the log committed to when it reached this tree size, and have not changed since.\n")
	if r.Timestamp == nil || !r.Timestamp.Trusted {
		s.WriteString("Not proved here: when the checkpoint was signed (only the key holder's word, no checked time-stamp token), and that the\n")
	} else {
		fmt.Fprintf(&s, "So they existed, unchanged, at %s. Not proved here: that the\n", r.Timestamp.Time.Format(time.RFC3339))
	}
	s.WriteString("log showed everyone the same tree (compare this checkpoint with one published later: a consistency proof).\n")
	return s.String()
}

// VerifyBundle checks a bundle against the log's public key alone: the
// checkpoint's signature, the entry's inclusion in the checkpoint's tree,
// and every object the entry (or, for entries older than their media list,
// the verified record) names, byte for byte. The error says which check
// failed and why.
func VerifyBundle(r io.ReaderAt, size int64, v note.Verifier) (BundleReport, error) {
	return VerifyBundleWith(r, size, v, VerifyOptions{})
}

// VerifyBundleWith is VerifyBundle that also checks the checkpoint's
// time-stamp token, when the bundle has one, against o's TSA
// certificates: a token that does not stamp this checkpoint, or (with
// certificates given) is not signed by a TSA they vouch for, is refused.
func VerifyBundleWith(r io.ReaderAt, size int64, v note.Verifier, o VerifyOptions) (BundleReport, error) {
	b, err := openBundle(r, size)
	if err != nil {
		return BundleReport{}, err
	}
	cp, signed, err := b.checkpoint(v)
	if err != nil {
		return BundleReport{}, err
	}
	n, proof, err := b.proof(cp)
	if err != nil {
		return BundleReport{}, err
	}
	e, err := b.inclusion(cp, n, proof)
	if err != nil {
		return BundleReport{}, err
	}
	rep := BundleReport{Entry: e, Checkpoint: cp, KeyName: v.Name(), KeyHash: v.KeyHash(), LeafIndex: n}
	if rep.Timestamp, err = b.timestamp(signed, o.TSACertificates); err != nil {
		return BundleReport{}, err
	}
	if rep.Objects, err = b.objects(e); err != nil {
		return BundleReport{}, err
	}
	rep.Unchecked = b.unchecked()
	return rep, nil
}

// bundle is an opened bundle: its files, and those a step has proved.
type bundle struct {
	zr      *zip.Reader
	files   map[string]*zip.File
	checked map[string]bool
}

// openBundle reads a bundle's directory: a complete zip, each name once.
func openBundle(r io.ReaderAt, size int64) (*bundle, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("not a complete zip archive (truncated or damaged): %v", err)
	}
	b := &bundle{zr: zr, files: map[string]*zip.File{}, checked: map[string]bool{}}
	for _, f := range zr.File {
		if _, dup := b.files[f.Name]; dup {
			return nil, fmt.Errorf("the bundle holds %s twice", f.Name)
		}
		b.files[f.Name] = f
	}
	return b, nil
}

// read returns a file of at most limit bytes, and marks it checked: the
// step that reads it proves it or refuses the bundle.
func (b *bundle) read(name string, limit int64) ([]byte, error) {
	f, ok := b.files[name]
	if !ok {
		return nil, fmt.Errorf("the bundle lacks %s", name)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: unreadable (truncated or damaged): %v", name, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	b.checked[name] = true
	return body, nil
}

// checkpoint proves the checkpoint is signed by the log's key, of its
// origin: what tree it commits to.
func (b *bundle) checkpoint(v note.Verifier) (Checkpoint, []byte, error) {
	signed, err := b.read(BundleCheckpoint, 1<<16)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	cp, err := OpenCheckpoint(signed, v)
	return cp, signed, err
}

// proof reads the inclusion proof and checks it is about the checkpoint's
// tree and one of its leaves.
func (b *bundle) proof(cp Checkpoint) (int64, tlog.RecordProof, error) {
	pj, err := b.read(BundleProofFile, 1<<20)
	if err != nil {
		return 0, nil, err
	}
	var bp BundleProof
	if err := json.Unmarshal(pj, &bp); err != nil {
		return 0, nil, fmt.Errorf("%s: %v", BundleProofFile, err)
	}
	if bp.TreeSize != cp.Size {
		return 0, nil, fmt.Errorf("the inclusion proof is for a tree of size %d, the checkpoint's has %d leaves", bp.TreeSize, cp.Size)
	}
	if bp.LeafIndex < 0 || bp.LeafIndex >= cp.Size {
		return 0, nil, fmt.Errorf("the inclusion proof names leaf %d, outside the checkpoint's tree of %d leaves", bp.LeafIndex, cp.Size)
	}
	proof := make(tlog.RecordProof, len(bp.Hashes))
	for i, h := range bp.Hashes {
		raw, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(raw) != tlog.HashSize {
			return 0, nil, fmt.Errorf("%s: hash %d is not a SHA-256 in base64", BundleProofFile, i)
		}
		copy(proof[i][:], raw)
	}
	return bp.LeafIndex, proof, nil
}

// inclusion proves the index entry is leaf n of the checkpoint's tree, and
// returns it.
func (b *bundle) inclusion(cp Checkpoint, n int64, proof tlog.RecordProof) (archiver.IndexEntry, error) {
	entry, err := b.read(BundleEntry, maxEntry)
	if err != nil {
		return archiver.IndexEntry{}, err
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, n, tlog.RecordHash(entry)); err != nil {
		return archiver.IndexEntry{}, fmt.Errorf("the inclusion proof does not lead from %s as leaf %d to the checkpoint's root: the entry was altered, or the proof is another leaf's", BundleEntry, n)
	}
	e, err := archiver.ParseIndexEntry(entry)
	if err != nil {
		return archiver.IndexEntry{}, fmt.Errorf("%s is in the log but is not an index entry: %v", BundleEntry, err)
	}
	return e, nil
}

// timestamp checks the checkpoint's time-stamp token, when the bundle has
// one (nil when not): that it stamps these checkpoint bytes and, with
// certificates, who stamped them and when.
func (b *bundle) timestamp(signed []byte, certs []*x509.Certificate) (*TimestampProof, error) {
	if _, ok := b.files[BundleTimestamp]; !ok {
		return nil, nil
	}
	token, err := b.read(BundleTimestamp, maxToken)
	if err != nil {
		return nil, err
	}
	tp, err := CheckTimestamp(token, signed, certs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", BundleTimestamp, err)
	}
	return &tp, nil
}

// objects proves the record, the evidence document and every media object
// the entry names (or, for entries older than their media list, the
// verified record names) are the bytes the entry's SHA-256 says.
func (b *bundle) objects(e archiver.IndexEntry) ([]contract.ObjectRef, error) {
	rec, recJSON, err := b.object("record", e.Record, true)
	if err != nil {
		return nil, err
	}
	var r contract.Record
	if err := json.Unmarshal(recJSON, &r); err != nil {
		return nil, fmt.Errorf("record %s: %v", e.Record.Key, err)
	}
	if r.Vendor != e.Vendor || r.VerificationID != e.VerificationID {
		return nil, fmt.Errorf("record %s is of %s:%s, the entry of %s:%s", e.Record.Key, r.Vendor, r.VerificationID, e.Vendor, e.VerificationID)
	}
	ev, _, err := b.object("evidence document", e.Evidence, false)
	if err != nil {
		return nil, err
	}
	out := []contract.ObjectRef{rec, ev}
	media := e.Media
	if media == nil {
		media = archiver.StoredMedia(r) // the record is verified: its references are as good
	}
	for _, m := range media {
		if b.checked[BundleObjects+m.Key] {
			continue
		}
		got, _, err := b.object("media", m, false)
		if err != nil {
			return nil, err
		}
		out = append(out, got)
	}
	return out, nil
}

// object checks objects/<ref.Key> against ref's SHA-256 and size, and
// returns its bytes when keep.
func (b *bundle) object(what string, ref contract.ObjectRef, keep bool) (contract.ObjectRef, []byte, error) {
	name := BundleObjects + ref.Key
	f, ok := b.files[name]
	if !ok {
		return contract.ObjectRef{}, nil, fmt.Errorf("%s %s is missing from the bundle", what, ref.Key)
	}
	rc, err := f.Open()
	if err != nil {
		return contract.ObjectRef{}, nil, fmt.Errorf("%s %s: %v", what, ref.Key, err)
	}
	defer rc.Close()
	h := sha256.New()
	var kept bytes.Buffer
	var w io.Writer = h
	if keep {
		w = io.MultiWriter(h, &kept)
	}
	n, err := io.Copy(w, io.LimitReader(rc, maxBundleObjectFile))
	if err != nil {
		return contract.ObjectRef{}, nil, fmt.Errorf("%s %s: unreadable (truncated or damaged): %v", what, ref.Key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ref.SHA256 {
		return contract.ObjectRef{}, nil, fmt.Errorf("%s %s: its SHA-256 is %s, the index entry in the log names %s: these are not the bytes the log committed to", what, ref.Key, got, ref.SHA256)
	}
	if ref.Size > 0 && n != ref.Size {
		return contract.ObjectRef{}, nil, fmt.Errorf("%s %s: %d bytes, the index entry names %d", what, ref.Key, n, ref.Size)
	}
	b.checked[name] = true
	return contract.ObjectRef{Key: ref.Key, SHA256: ref.SHA256, Size: n, ContentType: ref.ContentType}, kept.Bytes(), nil
}

// unchecked lists the files no step proved, in the bundle's order.
func (b *bundle) unchecked() []string {
	var out []string
	for _, f := range b.zr.File {
		if !b.checked[f.Name] {
			out = append(out, f.Name)
		}
	}
	return out
}
