package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faceharvest/faceharvest/pkg/proctest"
)

func TestHelpAndBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if run([]string{"--help"}, func(string) string { return "" }, &out, io.Discard) != 0 || !strings.Contains(out.String(), "FACEHARVEST_DATA_DIR") {
		t.Fatalf("help: %s", out.String())
	}
	if run([]string{"--partitions=0"}, func(string) string { return "" }, io.Discard, &errb) != 2 || !strings.Contains(errb.String(), "at least 1") {
		t.Fatalf("bad partitions: %s", errb.String())
	}
}

// TestProcessKeepsDataAcrossRestarts starts the binary, produces a record,
// stops it with SIGTERM, starts it again on the same directory and port, and
// reads the record back.
func TestProcessKeepsDataAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	bin := proctest.Build(t, dir, "devkafka")
	data := filepath.Join(dir, "data")
	start := func(port string) (*exec.Cmd, string) {
		addrFile := filepath.Join(dir, "addr.json")
		_ = os.Remove(addrFile)
		cmd := exec.Command(bin, "--port="+port, "--data-dir="+data, "--addr-file="+addrFile, "--topics=t1,t2")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, proctest.WaitJSON(t, addrFile)["brokers"]
	}
	cmd, addr := start("0")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t1", Key: []byte("k"), Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	port := addr[strings.LastIndex(addr, ":")+1:]
	cmd, addr = start(port)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	cl, err = kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("t1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for ctx.Err() == nil && len(got) == 0 {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 1 || got[0] != "kept" {
		t.Fatalf("after restart: %v", got)
	}
}
