// Command devstack runs the whole faceharvest pipeline on loopback as
// separate processes (the embedded Kafka-protocol broker, MinIO, the vendor
// simulator, ingest, harvester and archiver), drives a workload of Megvii
// and Baidu verifications through it, shows progress, and prints a summary.
// It is what `make run` starts; Ctrl-C stops everything it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/faceharvest/faceharvest/pkg/buildinfo"
)

func main() { os.Exit(run()) }

// Development credentials: the simulator accepts them, the components read
// them from their environment like real ones.
var devEnv = []string{
	"FACEHARVEST_MEGVII_API_KEY=dev-megvii-key", "FACEHARVEST_MEGVII_API_SECRET=" + devMegviiSecret,
	"FACEHARVEST_BAIDU_API_KEY=dev-baidu-ak", "FACEHARVEST_BAIDU_SECRET_KEY=dev-baidu-sk",
	"FACEHARVEST_INGEST_TOKENS=dev-ingest-token",
	"AWS_ACCESS_KEY_ID=faceharvest", "AWS_SECRET_ACCESS_KEY=faceharvest-dev-password",
}

const (
	devMegviiSecret = "dev-megvii-secret"
	ingestToken     = "dev-ingest-token"
	bucket          = "faceharvest-evidence"
)

func run() int {
	var o opts
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	version := bindFlags(fs, &o)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Println(buildinfo.Read().String("devstack"))
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st := &stack{o: o}
	defer st.stopAll()
	if err := st.start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		return 1
	}
	if o.benchRate > 0 {
		rep, err := st.bench(ctx, o.benchRate, o.benchSteadyRate, o.benchFor, o.benchOut)
		if err != nil {
			fmt.Fprintln(os.Stderr, "devstack:", err)
			return 1
		}
		if rep.Lost > 0 {
			return 1
		}
		return 0
	}
	if code := st.runWorkload(ctx); code != 0 || o.exitAfter {
		return code
	}
	fmt.Println("\nEverything keeps running; Ctrl-C stops it all.")
	<-ctx.Done()
	return 0
}

// runWorkload drives the workload, prints its summary, then checks the
// audit side and the evidence log; it returns the exit code. The summary,
// with what the checks after the workload found, goes to --summary-out
// whatever the outcome, once the workload has run.
func (s *stack) runWorkload(ctx context.Context) (code int) {
	sm, err := s.workload(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		return 1
	}
	defer func() {
		if err := s.writeSummary(sm); err != nil {
			fmt.Fprintln(os.Stderr, "devstack: summary:", err)
			code = 1
		}
	}()
	s.printSummary(sm)
	if !sm.OK {
		return 1
	}
	if s.o.auditCheck {
		c, err := s.checkAudit(ctx)
		sm.Audit = c.summary()
		if err != nil {
			fmt.Fprintln(os.Stderr, "devstack: audit check:", err)
			return 1
		}
		if len(c.problems) > 0 {
			return 1
		}
	}
	proof, err := s.proveLedger(ctx)
	sm.Ledger = &proof
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack: evidence log:", err)
		return 1
	}
	return 0
}
