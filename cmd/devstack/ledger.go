package main

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ledger"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// ledgerOrigin names the development log in its checkpoints.
const ledgerOrigin = "faceharvest.dev/ledger"

// startLedger creates the ledger's one-partition topics (before the
// archivers check them), generates the log's key pair for this run into
// the data directory, and starts the integrator.
func (s *stack) startLedger(ctx context.Context) error {
	cl := bus.Plain(s.broker)
	for _, topic := range []string{contract.DefaultLedgerLeavesTopic, contract.DefaultLedgerCheckpointsTopic} {
		if err := waitFor(ctx, 60*time.Second, 200*time.Millisecond, func(ctx context.Context) error {
			if err := bus.CreateTopic(ctx, cl, bus.TopicSpec{Name: topic, Partitions: 1, Replicas: 1}); err != nil && !errors.Is(err, bus.ErrTopicExists) {
				return err
			}
			return nil
		}); err != nil {
			return fmt.Errorf("ledger topic %s: %w", topic, err)
		}
	}
	skey, vkey, err := ledger.GenerateKey(ledgerOrigin)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(s.o.dataDir, "ledger-signing-key")
	if b, err := os.ReadFile(keyFile); err == nil { // the log of an earlier run goes on with its key
		if _, _, vkey, err = ledger.KeyPair(string(b)); err != nil {
			return fmt.Errorf("%s: %w", keyFile, err)
		}
	} else if err := os.WriteFile(keyFile, []byte(skey+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.o.dataDir, "ledger-public-key"), []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	// The key reaches the integrator (and its restarts) as a secret file.
	os.Setenv("FACEHARVEST_LEDGER_SIGNING_KEY_FILE", keyFile)
	s.ports["ledger-metrics"] = 9105
	if s.o.freePorts {
		s.ports["ledger-metrics"] = freePort()
	}
	if err := s.spawn("ledger", "--kafka-brokers="+s.broker, "--metrics-addr", s.addr("ledger-metrics"), "--s3-endpoint", s.minio.Endpoint, "--s3-bucket", bucket,
		"--s3-create-bucket", "--checkpoint-interval", "1s", "--batch-size", "256", "--session-timeout", "6s", "--rebalance-timeout", "10s"); err != nil {
		return err
	}
	fmt.Printf("  %-10s metrics http://%s/metrics (evidence log %q, public key in %s)\n", "ledger", s.addr("ledger-metrics"), ledgerOrigin, filepath.Join(s.o.dataDir, "ledger-public-key"))
	return nil
}

// killLedger kills the integrator (SIGKILL: maybe between a batch's tiles
// and its checkpoint) once its group is stable, and starts it again: the
// log must resume with no gap and no leaf twice (ledger check after the
// workload).
func (s *stack) killLedger(ctx context.Context) error {
	if err := s.waitGroupStable(ctx, "faceharvest-ledger", 1, time.Minute); err != nil {
		return err
	}
	return s.restart("ledger", syscall.SIGKILL)
}

// ledgerProof is what proveLedger showed, in the run's summary
// (--summary-out): the index entries and leaves of the ledger check, the
// bundle exported, what faceharvest verify printed for it, and what it
// printed refusing the tampered copy.
type ledgerProof struct {
	Indexed  int    `json:"indexed"`
	Leaves   int64  `json:"leaves"`
	Bundle   string `json:"bundle"`
	Verified string `json:"verified"`
	Tampered string `json:"tampered"`
	Refused  string `json:"refused"`
}

// proveLedger shows the evidence log after the workload: every indexed
// verification is a leaf once (ledger check), the latest checkpoint, one
// bundle exported and verified offline, and a tampered copy refused.
func (s *stack) proveLedger(ctx context.Context) (ledgerProof, error) {
	var proof ledgerProof
	pub, err := os.ReadFile(filepath.Join(s.o.dataDir, "ledger-public-key"))
	if err != nil {
		return proof, err
	}
	vkey := strings.TrimSpace(string(pub))
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		return proof, err
	}
	b, err := objstore.NewS3(objstore.S3Config{Endpoint: s.minio.Endpoint, Bucket: bucket, PathStyle: true,
		AccessKey: config.NewSecret(s.minio.User), SecretKey: config.NewSecret(s.minio.Password)})
	if err != nil {
		return proof, err
	}
	r := ledger.Reader{Bucket: b}
	fmt.Printf("\nevidence log: waiting until every indexed verification is a leaf\n")
	var rep ledger.CheckReport
	if err := waitFor(ctx, 2*time.Minute, time.Second, func(ctx context.Context) error {
		var err error
		if rep, err = ledger.Check(ctx, r, v); err != nil {
			return err
		}
		if !rep.OK() || rep.Indexed == 0 {
			return fmt.Errorf("%d indexed, %d leaves, %d missing, %d repeated, %d changed, %d leaves without objects",
				rep.Indexed, rep.TreeSize, len(rep.Missing), len(rep.Repeated), len(rep.Changed), len(rep.Orphans))
		}
		return nil
	}); err != nil {
		return proof, fmt.Errorf("ledger check: %w", err)
	}
	_, signed, err := r.Checkpoint(ctx, v)
	if err != nil {
		return proof, err
	}
	proof.Indexed, proof.Leaves = rep.Indexed, rep.TreeSize
	fmt.Printf("  ledger check: %d index entries, %d leaves, each exactly once, every leaf's objects in the store\n", rep.Indexed, rep.TreeSize)
	fmt.Printf("  latest checkpoint (ledger/v1/checkpoint):\n    %s\n", strings.ReplaceAll(strings.TrimSpace(string(signed)), "\n", "\n    "))
	keys, err := objstore.Keys(ctx, b, archiver.IndexByID)
	if err != nil || len(keys) == 0 {
		return proof, fmt.Errorf("index: %d entries, %v", len(keys), err)
	}
	rc, err := b.Get(ctx, keys[len(keys)/2])
	if err != nil {
		return proof, err
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	e, err := archiver.ParseIndexEntry(body)
	if err != nil {
		return proof, err
	}
	key := contract.Key(e.Vendor, e.VerificationID)
	out := filepath.Join(s.o.dataDir, "bundle.zip")
	if _, stderr, err := s.faceharvest(ctx, "export", key, "--out", out, "--log-key", vkey); err != nil {
		return proof, fmt.Errorf("faceharvest export %s: %v: %s", key, err, stderr)
	}
	verified, stderr, err := s.faceharvest(ctx, "verify", out, "--log-key", vkey)
	if err != nil {
		return proof, fmt.Errorf("faceharvest verify %s: %v: %s", out, err, stderr)
	}
	proof.Bundle, proof.Verified = key, strings.TrimSpace(string(verified))
	fmt.Printf("  faceharvest export %s --out %s, then faceharvest verify (offline):\n    %s\n", key, out, strings.ReplaceAll(strings.TrimSpace(string(verified)), "\n", "\n    "))
	tampered := filepath.Join(s.o.dataDir, "bundle-tampered.zip")
	what, err := tamper(out, tampered)
	if err != nil {
		return proof, err
	}
	if _, stderr, err := s.faceharvest(ctx, "verify", tampered, "--log-key", vkey); err == nil {
		return proof, fmt.Errorf("a bundle with one byte of %s changed verified", what)
	} else {
		proof.Tampered, proof.Refused = what, stderr
		fmt.Printf("  one byte of %s changed (%s): %s\n", what, tampered, stderr)
	}
	return proof, nil
}

// tamper copies a bundle with one byte of its first media object (else of
// its record) changed, and names that object.
func tamper(in, out string) (string, error) {
	zr, err := zip.OpenReader(in)
	if err != nil {
		return "", err
	}
	defer zr.Close()
	pick := ""
	for _, f := range zr.File {
		if strings.Contains(f.Name, "/media/") || (pick == "" && strings.Contains(f.Name, "/records/")) {
			pick = f.Name
			if strings.Contains(f.Name, "/media/") {
				break
			}
		}
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return "", err
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return "", err
		}
		if f.Name == pick && len(body) > 0 {
			body[len(body)/2] ^= 0x01
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			return "", err
		}
		if _, err := w.Write(body); err != nil {
			return "", err
		}
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return strings.TrimPrefix(pick, ledger.BundleObjects), os.WriteFile(out, buf.Bytes(), 0o644)
}
