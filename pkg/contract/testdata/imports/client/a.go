package client

import "github.com/segmentio/kafka-go"

var _ kafka.Message
