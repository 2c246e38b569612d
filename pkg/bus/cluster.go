package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/faceharvest/faceharvest/pkg/config"
)

// Cluster is how the components reach Kafka: the bootstrap brokers and, for
// a secured cluster, TLS and a SASL mechanism. Every writer, reader, group
// and admin client is built from it, so a security setting applies to all
// of their connections at once.
//
// Build one with Plain or Security.Cluster: they give it the one transport
// its admin clients share. A transport keeps its connections and a metadata
// goroutine per broker set until it is closed, so a transport made per
// request (a readiness probe every few seconds) would pile them up.
type Cluster struct {
	Brokers []string
	TLS     *tls.Config    // nil: plaintext
	SASL    sasl.Mechanism // nil: no authentication
	admin   *kafka.Transport
}

// Plain returns a cluster reached over plaintext without authentication.
func Plain(brokers ...string) Cluster { return Cluster{Brokers: brokers}.withAdmin() }

func (c Cluster) withAdmin() Cluster {
	c.admin = c.Transport()
	return c
}

// Transport returns a new transport (for a writer: each writer has its own
// connections, so a 20 MiB answer does not queue small writes behind it).
func (c Cluster) Transport() *kafka.Transport {
	return &kafka.Transport{DialTimeout: 3 * time.Second, MetadataTTL: 10 * time.Second, TLS: c.TLS, SASL: c.SASL}
}

// Dialer returns a dialer for readers and consumer groups.
func (c Cluster) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: c.TLS, SASLMechanism: c.SASL}
}

// Client returns an admin client whose requests time out after timeout. All
// of a cluster's admin clients share its one transport.
func (c Cluster) Client(timeout time.Duration) *kafka.Client {
	var t kafka.RoundTripper = c.admin
	if c.admin == nil {
		if c.TLS != nil || c.SASL != nil {
			panic("bus: a secured Cluster built without Security.Cluster")
		}
		t = kafka.DefaultTransport // shared by the process, as kafka-go's own default
	}
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: timeout, Transport: t}
}

// Reader returns a reader for cfg with the cluster's brokers and dialer.
func (c Cluster) Reader(cfg kafka.ReaderConfig) *kafka.Reader {
	cfg.Brokers, cfg.Dialer = c.Brokers, c.Dialer()
	return kafka.NewReader(cfg)
}

// closingReader returns a reader for cfg, as Reader does, and a function that
// closes every connection it opened. kafka-go's Reader.Close waits for a
// read in progress to reach its deadline; closing the connections first
// ends it at once.
func (c Cluster) closingReader(cfg kafka.ReaderConfig) (*kafka.Reader, func()) {
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	d := c.Dialer()
	nd := &net.Dialer{KeepAlive: d.KeepAlive}
	d.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if closed {
			conn.Close()
			return nil, net.ErrClosed
		}
		conns = append(conns, conn)
		return conn, nil
	}
	cfg.Brokers, cfg.Dialer = c.Brokers, d
	return kafka.NewReader(cfg), func() {
		mu.Lock()
		defer mu.Unlock()
		closed = true
		for _, conn := range conns {
			_ = conn.Close()
		}
		conns = nil
	}
}

// The SASL mechanisms a Security accepts.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Security describes a secured cluster as the flags give it. The zero value
// is plaintext without authentication.
type Security struct {
	TLS               bool   // use TLS even without the files below (system roots)
	CAFile            string // PEM bundle of the brokers' CAs; implies TLS
	CertFile, KeyFile string // client certificate for mutual TLS; imply TLS
	ServerName        string // name to verify in the brokers' certificates (default: the broker host)
	SASLMechanism     string // "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	SASLUsername      string
	SASLPassword      config.Secret
}

// Cluster checks s and returns the cluster it describes.
func (s Security) Cluster(brokers []string) (Cluster, error) {
	c := Cluster{Brokers: brokers}
	if s.TLS || s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.ServerName != "" {
		t, err := s.tlsConfig()
		if err != nil {
			return Cluster{}, err
		}
		c.TLS = t
	}
	m, err := s.mechanism()
	if err != nil {
		return Cluster{}, err
	}
	c.SASL = m
	return c.withAdmin(), nil
}

func (s Security) tlsConfig() (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", s.CAFile)
		}
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("a TLS client certificate needs both its certificate and its key file")
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			// The key's contents never reach the message: LoadX509KeyPair
			// reports only what is wrong with the files.
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

func (s Security) mechanism() (sasl.Mechanism, error) {
	name := strings.ToUpper(strings.TrimSpace(s.SASLMechanism))
	if name == "" {
		if s.SASLUsername != "" || !s.SASLPassword.Empty() {
			return nil, errors.New("a SASL username or password is set but no SASL mechanism")
		}
		return nil, nil
	}
	if s.SASLUsername == "" || s.SASLPassword.Empty() {
		return nil, fmt.Errorf("SASL %s needs a username and a password", name)
	}
	switch name {
	case SASLPlain:
		return plain.Mechanism{Username: s.SASLUsername, Password: s.SASLPassword.Reveal()}, nil
	case SASLScramSHA256, SASLScramSHA512:
		algo := scram.SHA256
		if name == SASLScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.SASLUsername, s.SASLPassword.Reveal())
		if err != nil {
			return nil, fmt.Errorf("SASL %s: cannot prepare the credentials", name) // never the password
		}
		return m, nil
	}
	return nil, fmt.Errorf("SASL mechanism %q: want %s, %s or %s", s.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
}
