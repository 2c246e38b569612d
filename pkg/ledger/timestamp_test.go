package ledger

import (
	"bytes"
	"context"
	"crypto/x509"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// A checkpoint time-stamped by a TSA goes into the bundle with its token;
// verify says when the TSA saw it, under which serial, and which hash.
func TestBundleTimestampVerifies(t *testing.T) {
	tsa := startTSA(t, "Test TSA")
	v, a, _ := exportedStamped(t, tsa)
	if _, ok := files(t, a)[BundleTimestamp]; !ok {
		t.Fatalf("the bundle lacks %s", BundleTimestamp)
	}
	rep, err := VerifyBundleWith(bytes.NewReader(a), int64(len(a)), v, VerifyOptions{TSACertificates: []*x509.Certificate{tsa.Root}})
	if err != nil {
		t.Fatal(err)
	}
	ts := rep.Timestamp
	if ts == nil || !ts.Trusted || !ts.Time.Equal(tsa.At) || ts.Serial == nil || ts.Serial.Sign() == 0 || ts.Signer != "CN=Test TSA" {
		t.Fatalf("time stamp %+v", ts)
	}
	out := rep.String()
	for _, want := range []string{"the time-stamping authority CN=Test TSA signed that the checkpoint", "existed at 2026-07-01T09:30:00Z (±1s)",
		"RFC 3161 token serial " + ts.Serial.String(), "SHA-256 " + ts.Hashed, "existed, unchanged, at 2026-07-01T09:30:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if len(rep.Unchecked) != 3 {
		t.Errorf("unchecked %v", rep.Unchecked)
	}

	// Without the TSA's certificate the token is checked for this
	// checkpoint but its time is reported as unchecked.
	rep, err = verify(a, v)
	if err != nil || rep.Timestamp == nil || rep.Timestamp.Trusted || !strings.Contains(rep.String(), "NOT checked against a TSA certificate") {
		t.Fatalf("without --tsa-cert: %v\n%s", err, rep)
	}
}

// A bundle without a token still verifies, and says it has no time stamp.
func TestBundleWithoutTimestamp(t *testing.T) {
	tsa := startTSA(t, "Test TSA")
	v, a, _ := exported(t)
	rep, err := VerifyBundleWith(bytes.NewReader(a), int64(len(a)), v, VerifyOptions{TSACertificates: []*x509.Certificate{tsa.Root}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Timestamp != nil || !strings.Contains(rep.String(), "- no time stamp") || len(rep.Objects) != 4 {
		t.Fatalf("report %+v\n%s", rep, rep)
	}
}

// Each way a time stamp can lie is refused with its reason.
func TestBundleTimestampRefusals(t *testing.T) {
	tsa := startTSA(t, "Test TSA")
	other := startTSA(t, "Other TSA")
	v, a, _ := exportedStamped(t, tsa)
	fa := files(t, a)
	with := func(name string, body []byte) []byte { return rezipWith(t, fa, name, body) }
	ctx := context.Background()
	// The same checkpoint stamped by another TSA.
	otherToken, err := TSA{URL: other.URL}.Stamp(ctx, fa[BundleCheckpoint])
	if err != nil {
		t.Fatal(err)
	}
	// The checkpoint with a second signature line: its log signature
	// still verifies, its bytes are not the ones stamped.
	cosigner, _ := testKeys(t, "cosigner.test")
	n, err := note.Open(fa[BundleCheckpoint], note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, cosigner)
	if err != nil {
		t.Fatal(err)
	}
	// An earlier checkpoint's token (the log's checkpoint of 270 leaves).
	earlier, err := TSA{URL: tsa.URL}.Stamp(ctx, []byte("another checkpoint\n"))
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(fa[BundleTimestamp])
	damaged[len(damaged)-10] ^= 1
	roots := VerifyOptions{TSACertificates: []*x509.Certificate{tsa.Root}}
	for _, c := range []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"checkpoint altered", with(BundleCheckpoint, cosigned), "checkpoint.tst: the time-stamp token is for another message"},
		{"another checkpoint's token", with(BundleTimestamp, earlier), "checkpoint.tst: the time-stamp token is for another message"},
		{"token of another TSA", with(BundleTimestamp, otherToken), "checkpoint.tst: the time-stamp token is not signed by a time-stamping authority whose certificate was given (CN=Other TSA)"},
		{"token damaged", with(BundleTimestamp, damaged), "checkpoint.tst: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyBundleWith(bytes.NewReader(c.bundle), int64(len(c.bundle)), v, roots)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	// A TSA whose certificate is not the one configured: the integrator
	// does not store its token.
	cp, err := OpenCheckpoint(fa[BundleCheckpoint], v)
	if err != nil {
		t.Fatal(err)
	}
	if reason, err := StampCheckpoint(ctx, TSA{URL: other.URL}, []*x509.Certificate{tsa.Root}, Reader{}, cp.Size, fa[BundleCheckpoint]); reason != "untrusted" || err == nil {
		t.Fatalf("another TSA's token: %s %v", reason, err)
	}
}
