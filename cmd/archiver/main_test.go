package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestHelpAndNoServiceYet(t *testing.T) {
	var out, errb bytes.Buffer
	if run([]string{"--help"}, func(string) string { return "" }, &out, io.Discard) != 0 || !strings.Contains(out.String(), "FACEHARVEST_KAFKA_BROKERS") {
		t.Fatalf("help: %s", out.String())
	}
	if run(nil, func(string) string { return "" }, io.Discard, &errb) != 2 || !strings.Contains(errb.String(), "no archiver service yet") {
		t.Fatalf("without --help: %s", errb.String())
	}
}
