package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ops"
)

type dlqFlags struct {
	svc   ops.ServiceFlags
	topic string
	out   string
}

func (f *dlqFlags) register(fs *config.FlagSet) {
	f.svc.RegisterKafka(fs)
	fs.StringVar(&f.topic, "dlq-topic", contract.DefaultDLQTopic, "the dead-letter topic")
	fs.StringVar(&f.out, "output", "text", "text (for people) or json (for scripts)")
}

type dlqRow struct {
	Partition  int       `json:"partition"`
	Offset     int64     `json:"offset"`
	Time       time.Time `json:"time"`
	Key        string    `json:"key"`
	Reason     string    `json:"reason"`
	Source     string    `json:"source"`
	Size       int       `json:"size"`
	Truncated  string    `json:"truncated_from,omitempty"`
	PayloadRef string    `json:"payload_ref,omitempty"`
	Redriven   bool      `json:"redriven"`
}

func rows(ds []bus.DeadLetter) []dlqRow {
	out := make([]dlqRow, 0, len(ds))
	for _, d := range ds {
		out = append(out, dlqRow{d.Partition, d.Offset, d.Time.UTC(), d.Key, d.Reason, d.Source, d.Size, d.Truncated, d.PayloadRef, d.Redriven})
	}
	return out
}

func writeRows(w io.Writer, format string, rs []dlqRow) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	fmt.Fprintf(w, "%-5s %-10s %-8s %-9s %-40s %-32s %s\n", "PART", "OFFSET", "SIZE", "REDRIVEN", "SOURCE", "KEY", "REASON")
	for _, r := range rs {
		size := strconv.Itoa(r.Size)
		if r.Truncated != "" {
			size += " (cut from " + r.Truncated + ")"
		}
		if r.PayloadRef != "" {
			size += " (payload in the store)"
		}
		fmt.Fprintf(w, "%-5d %-10d %-8s %-9t %-40s %-32s %s\n", r.Partition, r.Offset, size, r.Redriven, r.Source, r.Key, r.Reason)
	}
	return nil
}

func dlqList(ctx context.Context, env Env, args []string) error {
	fs := config.NewFlagSet("faceharvest dlq list", `Lists the dead letters on the dead-letter topic (every partition, from its start to its end when
the command began): partition and offset, size (and the original size of a value that was cut, or that
the payload is in the store), whether it was redriven, its source (topic/partition/offset), its key
and its reason (faceharvest_dlq_reason). Markers that redrive wrote are not listed.`)
	var f dlqFlags
	f.register(fs)
	var reason string
	fs.StringVar(&reason, "reason", "", "only dead letters whose reason contains this text")
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return err
	}
	if err := f.svc.Validate(env.Getenv); err != nil {
		return err
	}
	if f.out != "text" && f.out != "json" {
		return usageErr("--output %q: want text or json", f.out)
	}
	ds, err := bus.ReadDeadLetters(ctx, f.svc.Kafka, f.topic)
	if err != nil {
		return err
	}
	var keep []bus.DeadLetter
	for _, d := range ds {
		if reason == "" || strings.Contains(d.Reason, reason) {
			keep = append(keep, d)
		}
	}
	return writeRows(env.Stdout, f.out, rows(keep))
}

func dlqRedrive(ctx context.Context, env Env, args []string) error {
	fs := config.NewFlagSet("faceharvest dlq redrive", `Sends chosen dead letters back to their source topic (from faceharvest_dlq_source), once: the key,
the payload (fetched from the store and checked against its SHA-256 when it was stored out of line,
--dlq-payload store) and the original headers, without the dead-letter headers. After each send a
marker (header faceharvest_dlq_redriven: <partition>/<offset>) is written to the dead-letter topic;
a dead letter with a marker is never sent again, so running redrive twice sends nothing twice. A
crash between the send and its marker sends it once more on the next run, with the same ce_id, on
which the pipeline's consumers deduplicate. A dead letter whose value was cut and whose payload was
not stored is refused. Choose by --offset or --reason; prints what was sent.`)
	var f dlqFlags
	f.register(fs)
	var st storeFlags
	st.register(fs)
	var offsets, reason string
	var dryRun bool
	fs.StringVar(&offsets, "offset", "", "comma-separated dead letters to send back, each <partition>/<offset> (or <offset> on a one-partition topic)")
	fs.StringVar(&reason, "reason", "", "send back the dead letters whose reason contains this text")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would be sent, send nothing")
	if err := fs.Parse(args, env.Getenv, env.Stdout); err != nil {
		return err
	}
	if err := f.svc.Validate(env.Getenv); err != nil {
		return err
	}
	if (offsets == "") == (reason == "") {
		return usageErr("want --offset or --reason (one of them)")
	}
	ds, err := bus.ReadDeadLetters(ctx, f.svc.Kafka, f.topic)
	if err != nil {
		return err
	}
	chosen, err := chooseDeadLetters(ds, offsets, reason)
	if err != nil {
		return err
	}
	if dryRun {
		return writeRows(env.Stdout, f.out, rows(chosen))
	}
	sent, err := redrive(ctx, env, f, st, chosen)
	if err != nil {
		return err
	}
	return writeRows(env.Stdout, f.out, rows(sent))
}

// chooseDeadLetters picks the dead letters of ds at offsets (each
// <partition>/<offset>, or <offset> on a one-partition topic) and those
// whose reason contains reason; errNotFound names an offset without one.
func chooseDeadLetters(ds []bus.DeadLetter, offsets, reason string) ([]bus.DeadLetter, error) {
	want, err := wantedOffsets(ds, offsets)
	if err != nil {
		return nil, err
	}
	var chosen []bus.DeadLetter
	for _, d := range ds {
		id := strconv.Itoa(d.Partition) + "/" + strconv.FormatInt(d.Offset, 10)
		if want[id] || (reason != "" && strings.Contains(d.Reason, reason)) {
			chosen = append(chosen, d)
			delete(want, id)
		}
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for k := range want {
			missing = append(missing, k)
		}
		sort.Strings(missing)
		return nil, fmt.Errorf("no dead letter at %s: %w", strings.Join(missing, ", "), errNotFound)
	}
	return chosen, nil
}

// wantedOffsets parses --offset into <partition>/<offset> keys.
func wantedOffsets(ds []bus.DeadLetter, offsets string) (map[string]bool, error) {
	parts := map[int]bool{}
	for _, d := range ds {
		parts[d.Partition] = true
	}
	want := map[string]bool{}
	for _, o := range strings.Split(offsets, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if !strings.Contains(o, "/") {
			if len(parts) > 1 {
				return nil, usageErr("--offset %s: the topic has several partitions; write <partition>/<offset>", o)
			}
			p := 0
			for k := range parts {
				p = k
			}
			o = strconv.Itoa(p) + "/" + o
		}
		want[o] = true
	}
	return want, nil
}

// redrive sends the chosen dead letters back (each once: one redriven
// before is skipped) and returns those sent.
func redrive(ctx context.Context, env Env, f dlqFlags, st storeFlags, chosen []bus.DeadLetter) ([]bus.DeadLetter, error) {
	var store bus.PayloadBucket
	for _, d := range chosen {
		if d.PayloadRef != "" && !d.Redriven {
			b, err := st.open(env.Getenv)
			if err != nil {
				return nil, err
			}
			store = b
			break
		}
	}
	writers := map[string]*bus.Writer{}
	defer func() {
		for _, w := range writers {
			w.Close()
		}
	}()
	send := func(ctx context.Context, topic string, m contract.Message) error {
		w := writers[topic]
		if w == nil {
			w = bus.NewWriter(bus.WriterConfig{Cluster: f.svc.Kafka, Topic: topic, BatchBytes: 16 << 20})
			writers[topic] = w
		}
		return w.WriteMessages(ctx, m)
	}
	var sent []bus.DeadLetter
	for _, d := range chosen {
		if d.Redriven {
			fmt.Fprintf(env.Stderr, "faceharvest dlq redrive: %d/%d was redriven before; not sent again\n", d.Partition, d.Offset)
			continue
		}
		if err := bus.Redrive(ctx, d, store, send, f.topic); err != nil {
			return nil, err
		}
		sent = append(sent, d)
	}
	return sent, nil
}
