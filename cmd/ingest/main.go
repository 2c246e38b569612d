// Command ingest is the faceharvest front door. This build documents its
// flags; the service itself is not part of it yet.
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
	fs := config.NewFlagSet("ingest", `Receives Megvii callbacks, Baidu completion redirects and token registrations and
publishes them to Kafka. This build only documents its flags.`)
	fs.String("kafka-brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers (host:port)")
	fs.String("listen", "127.0.0.1:8028", "address for vendor callbacks and the token API (Megvii calls ports 443, 5000, 16003, 8883, 8028)")
	fs.String("metrics-addr", "127.0.0.1:9090", "address serving /metrics, /healthz and /readyz")
	fs.String("log-level", "info", "log level: debug, info, warn, error")
	err := fs.Parse(args, getenv, stdout)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ingest: %v\n", err)
		return 2
	}
	fmt.Fprintln(stderr, "ingest: this build has no ingest service yet; only --help is available")
	return 2
}
