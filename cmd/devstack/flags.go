package main

import (
	"flag"
	"fmt"
	"time"
)

// opts is devstack's configuration, from its flags. Each flag's help is one
// line; docs/design/devstack.md explains the workload, the chaos, the audit
// check and the benchmark at length.
type opts struct {
	bin, dataDir                 string
	megvii, megviiNoCB, megviiEx int
	megviiUnregistered           int
	baidu, baiduNever            int
	exitAfter, freePorts, fresh  bool
	chaos, auditCheck            bool
	chaosSeed                    uint64
	replicas                     int
	large                        bool
	benchRate, benchSteadyRate   float64
	benchFor                     time.Duration
	benchOut                     string
	summaryOut                   string
	timeout                      time.Duration
}

const usage = `Usage: devstack [flags]

Starts the whole pipeline on loopback as separate processes (devkafka, MinIO, vendorsim,
ingest, harvester, archiver, ledger and auditor), drives a workload of Megvii and Baidu
verifications through it, prints progress and a summary, then checks the audit side and
the evidence log. It keeps everything running until Ctrl-C (or exits after the workload with
--exit-after-workload). Windows are shortened (Megvii 3 min, Baidu token window 1 min) so
that the whole story takes about four minutes. docs/design/devstack.md tells the story.

Flags:`

// bindFlags binds opts to fs; version is --version.
func bindFlags(fs *flag.FlagSet, o *opts) (version *bool) {
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.bin, "bin", "bin", "directory with the built binaries (make build) and tools/minio (make minio)")
	fs.StringVar(&o.dataDir, "data-dir", ".faceharvest-dev", "broker and object-store data, logs")
	fs.BoolVar(&o.fresh, "fresh", true, "start from empty data (false: keep the broker's and store's data from the last run)")
	fs.IntVar(&o.megvii, "megvii", 60, "Megvii verifications with a callback")
	fs.IntVar(&o.megviiNoCB, "megvii-no-callback", 10, "Megvii verifications whose callback never arrives (harvested at the last chance)")
	fs.IntVar(&o.megviiUnregistered, "megvii-unregistered", 5, "of the Megvii verifications with a callback, how many are never registered (callback only)")
	fs.IntVar(&o.megviiEx, "megvii-expired", 5, "Megvii tokens registered after their window closed (expired)")
	fs.IntVar(&o.baidu, "baidu", 30, "Baidu verifications the user completes")
	fs.IntVar(&o.baiduNever, "baidu-never", 5, "Baidu verifications the user never completes (lost)")
	fs.BoolVar(&o.large, "large", false, "also a Megvii answer of about 20 MiB and a 200 MB Baidu video")
	fs.Float64Var(&o.benchRate, "bench-rate", 0, "benchmark instead of the workload: offer this many Megvii verifications per second (0: the workload)")
	fs.Float64Var(&o.benchSteadyRate, "bench-steady-rate", 0, "with --bench-rate: first offer this rate, then twice and four times it (0: skip)")
	fs.DurationVar(&o.benchFor, "bench-for", 30*time.Second, "how long the benchmark offers verifications at each rate")
	fs.StringVar(&o.benchOut, "bench-out", "", "write the benchmark's figures as JSON to this file")
	fs.StringVar(&o.summaryOut, "summary-out", "", "write the workload's summary as JSON to this file")
	fs.BoolVar(&o.auditCheck, "audit-check", true, "after the workload: check faceharvest show, the audit page, its audit events and a replay (false: skip)")
	fs.BoolVar(&o.exitAfter, "exit-after-workload", false, "stop everything once every verification has its record")
	fs.BoolVar(&o.chaos, "chaos", false, "during the workload: kill and restart components, restart the broker, stop the object store")
	fs.Uint64Var(&o.chaosSeed, "chaos-seed", 0, "seed of --chaos's moments and replicas, to replay a run (0: a new one, printed)")
	fs.IntVar(&o.replicas, "replicas", 1, "harvester and archiver processes of each (one consumer group each)")
	fs.BoolVar(&o.freePorts, "free-ports", false, "use free ports instead of the documented ones (tests)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up waiting for records after this long")
	return fs.Bool("version", false, "print the version and exit")
}
