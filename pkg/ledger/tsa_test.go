package ledger

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
)

// testTSA is a time-stamping authority on loopback HTTP: a root CA and a
// time-stamping certificate it issued (extended key usage timeStamping),
// answering RFC 3161 requests with digitorus/timestamp's response
// creation. Its clock is the test's.
type testTSA struct {
	URL  string
	Root *x509.Certificate
	// Down makes it drop every connection unanswered (unreachable).
	Down atomic.Bool
	// At is the time it stamps.
	At      time.Time
	served  atomic.Int64
	signer  *ecdsa.PrivateKey
	tsaCert *x509.Certificate
}

func certificate(t *testing.T, tmpl, parent *x509.Certificate, pub, priv any) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startTSA(t *testing.T, name string) *testTSA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	from, until := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " root"}, NotBefore: from, NotAfter: until,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	root := certificate(t, rootTmpl, rootTmpl, &caKey.PublicKey, caKey)
	leaf := certificate(t, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, NotBefore: from, NotAfter: until,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}, root, &key.PublicKey, caKey)
	s := &testTSA{Root: root, At: time.Date(2026, 7, 1, 9, 30, 0, 0, time.UTC), signer: key, tsaCert: leaf}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *testTSA) serve(w http.ResponseWriter, r *http.Request) {
	if s.Down.Load() {
		panic(http.ErrAbortHandler) // the connection ends with no answer
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil || r.Header.Get("Content-Type") != "application/timestamp-query" {
		http.Error(w, "want a time-stamp query", http.StatusBadRequest)
		return
	}
	req, err := timestamp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ts := timestamp.Timestamp{HashAlgorithm: req.HashAlgorithm, HashedMessage: req.HashedMessage, Time: s.At, Accuracy: time.Second,
		Nonce: req.Nonce, Policy: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, AddTSACertificate: req.Certificates}
	resp, err := ts.CreateResponseWithOpts(s.tsaCert, s.signer, crypto.SHA256)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.served.Add(1)
	w.Header().Set("Content-Type", "application/timestamp-reply")
	_, _ = w.Write(resp)
}
