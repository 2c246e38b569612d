#!/bin/sh
# Creates the pipeline's topics on a Kafka cluster without Strimzi, with the same settings as
# kafkatopics.yaml. Needs kafka-topics.sh (Apache Kafka) on the PATH.
#   BOOTSTRAP=broker:9092 PARTITIONS=6 REPLICAS=3 ./create-topics.sh [extra kafka-topics.sh options, e.g. --command-config client.properties]
# faceid.events and faceid.harvester.state must keep equal partition counts (the harvester refuses to start otherwise);
# add partitions to both together.
# Retention of each topic, and the personal data each holds: see the comments in kafkatopics.yaml and
# docs/design/data-retention.md.
set -eu
: "${BOOTSTRAP:?set BOOTSTRAP to host:port}"
PARTITIONS="${PARTITIONS:-6}"
REPLICAS="${REPLICAS:-3}"

create() {
  name="$1"; shift
  partitions="$PARTITIONS"
  case "$name" in
    faceid.ledger.*) partitions=1 ;; # the evidence log's order: one partition
  esac
  kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor "$REPLICAS" "$@"
}

create faceid.events --config cleanup.policy=delete --config retention.ms=691200000 --config min.insync.replicas=2 "$@"
create faceid.harvester.state --config cleanup.policy=compact --config min.compaction.lag.ms=60000 --config delete.retention.ms=86400000 --config min.insync.replicas=2 "$@"
create faceid.results.raw --config cleanup.policy=delete --config retention.ms=604800000 --config min.insync.replicas=2 "$@"
create faceid.results --config cleanup.policy=delete --config retention.ms=2592000000 --config min.insync.replicas=2 "$@"
create faceid.ingest.idempotency --config cleanup.policy=compact,delete --config retention.ms=172800000 --config delete.retention.ms=86400000 --config min.insync.replicas=2 "$@"
create faceid.dlq --config cleanup.policy=delete --config retention.ms=2592000000 --config min.insync.replicas=2 "$@"
create faceid.audit --config cleanup.policy=delete --config retention.ms=-1 --config min.insync.replicas=2 "$@"
create faceid.ledger.leaves --config cleanup.policy=delete --config retention.ms=604800000 --config min.insync.replicas=2 "$@"
create faceid.ledger.checkpoints --config cleanup.policy=delete --config retention.ms=-1 --config min.insync.replicas=2 "$@"
