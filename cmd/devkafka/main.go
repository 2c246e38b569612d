// Command devkafka runs an embedded Kafka-protocol broker (kfake) on
// loopback for development and demos, with the pipeline's topics created and
// its data kept in a directory across restarts. Never for production.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := config.NewFlagSet("devkafka", `Runs a one-node Kafka-protocol broker (kfake) on loopback for development and demos:
the real wire protocol over TCP, the pipeline's topics created at start, data kept in
--data-dir across restarts. Prints {"brokers": "host:port"} once listening; stops on
SIGINT or SIGTERM, flushing its data.`)
	host := fs.String("host", "127.0.0.1", "listen host")
	port := fs.Int("port", 9092, "listen port (0 picks a free one)")
	dataDir := fs.String("data-dir", "", "directory the broker persists to (empty: memory only)")
	partitions := fs.Int32("partitions", 3, "partitions of each topic created")
	topics := fs.StringSlice("topics", []string{contract.DefaultEventsTopic, "faceid.harvester.state", contract.DefaultRawTopic, contract.DefaultResultsTopic, contract.DefaultDLQTopic,
		contract.DefaultAuditTopic, "faceid.ingest.idempotency"}, "topics created at start")
	maxBytes := fs.Int("max-message-bytes", 64<<20, "largest message accepted, also set as each created topic's max.message.bytes (raw vendor answers can reach tens of MiB)")
	compacted := fs.StringSlice("compacted-topics", []string{"faceid.harvester.state", "faceid.ingest.idempotency"}, "created topics given cleanup.policy=compact")
	addrFile := fs.String("addr-file", "", "also write the listening address as JSON to this file")
	if err := fs.Parse(args, getenv, stdout); err != nil {
		return config.ExitCode("devkafka", stderr, err)
	}
	if *partitions < 1 {
		return config.ExitCode("devkafka", stderr, fmt.Errorf("--partitions must be at least 1"))
	}
	signalled, _ := ops.SignalActor(os.Interrupt, syscall.SIGTERM) // before the address is printed
	b, err := devkafka.Start(devkafka.Config{Host: *host, Port: *port, DataDir: *dataDir, Partitions: *partitions, Topics: *topics, MaxMessageBytes: *maxBytes, Compacted: *compacted})
	if err != nil {
		fmt.Fprintf(stderr, "devkafka: %v\n", err)
		return 1
	}
	out, _ := json.Marshal(map[string]string{"brokers": b.Addr(), "topics": strings.Join(*topics, ",")})
	fmt.Fprintln(stdout, string(out))
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, out, 0o644); err != nil {
			b.Close()
			fmt.Fprintf(stderr, "devkafka: --addr-file: %v\n", err)
			return 1
		}
	}
	_ = signalled()
	b.Close()
	return 0
}
