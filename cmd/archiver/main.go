// Command archiver is the faceharvest archiver. This build documents its flags; the
// service itself is not part of it yet.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/faceharvest/faceharvest/pkg/config"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := config.NewFlagSet("archiver", `Consumes raw vendor answers, stores images, videos and evidence documents in
S3-compatible storage and publishes one normalized record per verification. This build
only documents its flags.`)
	fs.String("kafka-brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers (host:port)")
	fs.String("metrics-addr", "127.0.0.1:9090", "address serving /metrics, /healthz and /readyz")
	fs.String("log-level", "info", "log level: debug, info, warn, error")
	err := fs.Parse(args, getenv, stdout)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "archiver: %v\n", err)
		return 2
	}
	fmt.Fprintln(stderr, "archiver: this build has no archiver service yet; only --help is available")
	return 2
}
