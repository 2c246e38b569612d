package bus_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
)

const password = "s3cret-kafka-password"

// securedBroker starts a broker that accepts only TLS connections
// authenticated with mechanism as user "faceharvest".
func securedBroker(t *testing.T, mechanism string) (*devkafka.Broker, string) {
	t.Helper()
	srv, ca, err := devkafka.SelfSignedTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := devkafka.Start(devkafka.Config{Topics: []string{"events", "state"}, Compacted: []string{"state"}, Partitions: 2, TLS: srv,
		Users: []devkafka.User{{Mechanism: mechanism, Name: "faceharvest", Password: password}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, ca
}

// TestSecuredClusterCarriesEveryClient drives every kind of connection the
// components make (metadata, settings, writer, reader, consumer group)
// through TLS and each SASL mechanism, and reads the messages back with a
// different client (franz-go) as a second witness.
func TestSecuredClusterCarriesEveryClient(t *testing.T) {
	for _, mech := range []string{bus.SASLPlain, bus.SASLScramSHA256, bus.SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			b, ca := securedBroker(t, mech)
			cl, err := bus.Security{CAFile: ca, SASLMechanism: strings.ToLower(mech), SASLUsername: "faceharvest", SASLPassword: config.NewSecret(password)}.Cluster([]string{b.Addr()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if err := bus.CheckTopics(ctx, cl, "events", "state"); err != nil {
				t.Fatalf("metadata: %v", err)
			}
			st, err := bus.TopicSettings(ctx, cl, "state", "cleanup.policy")
			if err != nil || st["cleanup.policy"] != "compact" {
				t.Fatalf("settings %v, %v", st, err)
			}
			w := bus.NewWriter(bus.WriterConfig{Cluster: cl, Topic: "events"})
			defer w.Close()
			if err := w.WriteMessages(ctx, contract.Message{Key: []byte("megvii:1"), Value: []byte("a")}, contract.Message{Key: []byte("baidu:2"), Value: []byte("b")}); err != nil {
				t.Fatalf("write: %v", err)
			}
			got := map[string]string{}
			gctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			msgs := make(chan kafka.Message, 2)
			go func() {
				done <- bus.ConsumeGroup(gctx, bus.GroupConfig{Cluster: cl, GroupID: "g", Topic: "events", SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second},
					func(pctx context.Context, _ *bus.Generation, p int, off int64) {
						rd := cl.Reader(kafka.ReaderConfig{Topic: "events", Partition: p, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
						defer rd.Close()
						if off >= 0 {
							_ = rd.SetOffset(off)
						}
						for {
							m, err := rd.ReadMessage(pctx)
							if err != nil {
								return
							}
							msgs <- m
						}
					})
			}()
			for len(got) < 2 {
				select {
				case m := <-msgs:
					got[string(m.Key)] = string(m.Value)
				case <-ctx.Done():
					t.Fatalf("group read %v before the deadline", got)
				}
			}
			if st, n, err := bus.GroupState(ctx, cl, "g"); err != nil || st != "Stable" || n != 1 {
				t.Errorf("group state %q with %d members, %v; want Stable with 1", st, n, err)
			}
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got["megvii:1"] != "a" || got["baidu:2"] != "b" {
				t.Fatalf("read %v", got)
			}
			if mech != bus.SASLScramSHA512 {
				return
			}
			// A different client, authenticated on its own, sees the same.
			pool, err := os.ReadFile(ca)
			if err != nil {
				t.Fatal(err)
			}
			tc := &tls.Config{RootCAs: mustPool(t, pool)}
			fc, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DialTLSConfig(tc),
				kgo.SASL(scram.Auth{User: "faceharvest", Pass: password}.AsSha512Mechanism()),
				kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer fc.Close()
			n := 0
			for n < 2 {
				fs := fc.PollFetches(ctx)
				if err := fs.Err(); err != nil {
					t.Fatal(err)
				}
				n += len(fs.Records())
			}
		})
	}
}

// TestSecuredClusterRefusesWrongSettings: each wrong setting fails the
// components' readiness check, and no error names the password.
func TestSecuredClusterRefusesWrongSettings(t *testing.T) {
	b, ca := securedBroker(t, bus.SASLScramSHA512)
	good := bus.Security{CAFile: ca, SASLMechanism: bus.SASLScramSHA512, SASLUsername: "faceharvest", SASLPassword: config.NewSecret(password)}
	for _, tc := range []struct {
		name string
		edit func(*bus.Security)
	}{
		{"wrong password", func(s *bus.Security) { s.SASLPassword = config.NewSecret(password + "x") }},
		{"wrong mechanism", func(s *bus.Security) { s.SASLMechanism = bus.SASLScramSHA256 }},
		{"no authentication", func(s *bus.Security) { s.SASLMechanism, s.SASLUsername, s.SASLPassword = "", "", config.Secret{} }},
		{"plaintext", func(s *bus.Security) { s.CAFile = "" }},
		{"CA not trusted", func(s *bus.Security) { s.CAFile, s.TLS = "", true }},
		{"wrong server name", func(s *bus.Security) { s.ServerName = "kafka.example.com" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.edit(&s)
			cl, err := s.Cluster([]string{b.Addr()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			err = bus.CheckTopics(ctx, cl, "events")
			if err == nil {
				t.Fatal("the broker accepted the connection")
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("the error names the password: %v", err)
			}
		})
	}
}

// TestSecurityValidation: settings that cannot work are refused before
// any connection, naming what is wrong and never the password.
func TestSecurityValidation(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := config.NewSecret(password)
	for _, tc := range []struct {
		name string
		s    bus.Security
		want string // "" = valid
	}{
		{"plaintext", bus.Security{}, ""},
		{"TLS with system roots", bus.Security{TLS: true}, ""},
		{"SCRAM", bus.Security{SASLMechanism: "scram-sha-512", SASLUsername: "u", SASLPassword: pw}, ""},
		{"unknown mechanism", bus.Security{SASLMechanism: "GSSAPI", SASLUsername: "u", SASLPassword: pw}, `"GSSAPI"`},
		{"no username", bus.Security{SASLMechanism: "PLAIN", SASLPassword: pw}, "username and a password"},
		{"no password", bus.Security{SASLMechanism: "PLAIN", SASLUsername: "u"}, "username and a password"},
		{"password without mechanism", bus.Security{SASLUsername: "u", SASLPassword: pw}, "no SASL mechanism"},
		{"missing CA file", bus.Security{CAFile: filepath.Join(dir, "absent.pem")}, "CA file"},
		{"CA file without PEM", bus.Security{CAFile: notPEM}, "no PEM certificate"},
		{"certificate without key", bus.Security{CertFile: notPEM}, "both its certificate and its key"},
		{"bad key pair", bus.Security{CertFile: notPEM, KeyFile: notPEM}, "client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := tc.s.Cluster([]string{"127.0.0.1:9092"})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if (cl.TLS != nil) != (tc.s.TLS || tc.s.CAFile != "") || (cl.SASL != nil) != (tc.s.SASLMechanism != "") {
					t.Fatalf("cluster %+v from %+v", cl, tc.s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("the error names the password: %v", err)
			}
		})
	}
}

func mustPool(t *testing.T, pem []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the CA file")
	}
	return p
}

// TestAdminClientsShareOneTransport: readiness probes run CheckTopics every
// few seconds; each must not leave a transport behind (its connections and
// metadata goroutine live until it is closed).
func TestAdminClientsShareOneTransport(t *testing.T) {
	b, ca := securedBroker(t, bus.SASLScramSHA512)
	cl, err := bus.Security{CAFile: ca, SASLMechanism: bus.SASLScramSHA512, SASLUsername: "faceharvest", SASLPassword: config.NewSecret(password)}.Cluster([]string{b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := bus.CheckTopics(ctx, cl, "events"); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for range 50 {
		if err := bus.CheckTopics(ctx, cl, "events"); err != nil {
			t.Fatal(err)
		}
	}
	// A transport per check left five goroutines each behind (250 here).
	if after := runtime.NumGoroutine(); after > before+20 {
		t.Fatalf("goroutines %d -> %d after 50 checks", before, after)
	}
}
