package bus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// slowLink slows what a broker writes to its clients: while slow, each
// answer starts only after delay and then comes at rate bytes per second;
// while paused, nothing is written; while fetchesStopped, a connection that
// has asked for a fetch writes nothing (the admin requests still answer).
type slowLink struct {
	mu             sync.Mutex
	cond           *sync.Cond
	slow           bool
	paused         bool
	fetchesStopped bool
	delay          time.Duration
	rate           int
}

func newSlowLink() *slowLink {
	l := &slowLink{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *slowLink) update(f func(*slowLink)) {
	l.mu.Lock()
	f(l)
	l.mu.Unlock()
	l.cond.Broadcast()
}

// wait blocks while the link stops writes (fetching: on a connection that
// asked for a fetch), and returns how to slow them.
func (l *slowLink) wait(fetching func() bool) (slow bool, delay time.Duration, rate int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.paused || l.fetchesStopped && fetching() {
		l.cond.Wait()
	}
	return l.slow, l.delay, l.rate
}

type slowConn struct {
	net.Conn
	link *slowLink
	// What the client sent, parsed as Kafka requests (a 4-byte size, then
	// a 2-byte API key): read from Read's goroutine, seen from Write's.
	hdr      []byte
	remain   int
	fetching atomic.Bool
}

func (c *slowConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	for data := b[:n]; len(data) > 0; {
		if c.remain > 0 {
			k := min(c.remain, len(data))
			c.remain, data = c.remain-k, data[k:]
			continue
		}
		k := min(6-len(c.hdr), len(data))
		c.hdr, data = append(c.hdr, data[:k]...), data[k:]
		if len(c.hdr) == 6 {
			if binary.BigEndian.Uint16(c.hdr[4:]) == 1 { // Fetch
				c.fetching.Store(true)
			}
			c.remain, c.hdr = int(binary.BigEndian.Uint32(c.hdr))-2, c.hdr[:0]
		}
	}
	return n, err
}

func (c *slowConn) Write(b []byte) (int, error) {
	slow, delay, rate := c.link.wait(c.fetching.Load)
	if !slow {
		return c.Conn.Write(b)
	}
	time.Sleep(delay)
	written := 0
	for len(b) > 0 {
		chunk := min(len(b), 16<<10)
		c.link.wait(c.fetching.Load)
		if rate > 0 {
			time.Sleep(time.Duration(chunk) * time.Second / time.Duration(rate))
		}
		n, err := c.Conn.Write(b[:chunk])
		written += n
		if err != nil {
			return written, err
		}
		b = b[chunk:]
	}
	return written, nil
}

type slowListener struct {
	net.Listener
	link *slowLink
}

func (l slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &slowConn{Conn: c, link: l.link}, nil
}

// slowBroker starts an embedded broker whose answers go through link, with
// one topic of one partition holding values, written while the link is fast.
func slowBroker(t *testing.T, link *slowLink, values [][]byte) Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(64 << 20)}),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			return slowListener{Listener: ln, link: link}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		link.update(func(l *slowLink) { l.paused, l.fetchesStopped = false, false }) // a stopped link would hold the broker's close
		c.Close()
	})
	if err := c.CreateTopic("raw", 1, map[string]string{"max.message.bytes": fmt.Sprint(64 << 20)}); err != nil {
		t.Fatal(err)
	}
	cl := Plain(c.ListenAddrs()...)
	w := NewWriter(WriterConfig{Cluster: cl, Topic: "raw", BatchBytes: 64 << 20})
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i, v := range values {
		if err := w.WriteMessages(ctx, contract.Message{Key: []byte(fmt.Sprint(i)), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	return cl
}

// A broker whose every answer starts late (later than a fetch used to be
// given), comes slowly, and stops altogether for a while in the middle: the
// read still gets every record once, in order, including one larger than a
// fetch.
func TestReadRangeFromASlowBroker(t *testing.T) {
	var values [][]byte
	for i := range 400 {
		v := bytes.Repeat([]byte{byte(i)}, 8<<10)
		if i == 200 {
			v = bytes.Repeat([]byte{'L'}, 3<<20) // larger than one fetch
		}
		values = append(values, v)
	}
	link := newSlowLink()
	cl := slowBroker(t, link, values)
	link.update(func(l *slowLink) { l.slow, l.delay, l.rate = true, 300*time.Millisecond, 4<<20 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var got []contract.Message
	pausedOnce := false
	err := ReadRange(ctx, cl, "raw", 0, -1, func(m contract.Message) {
		got = append(got, m)
		if len(got) == 100 && !pausedOnce {
			// The broker stops answering for longer than an answer used to
			// be waited for: the read resumes when it comes back.
			pausedOnce = true
			link.update(func(l *slowLink) { l.paused = true })
			time.AfterFunc(3*time.Second, func() { link.update(func(l *slowLink) { l.paused = false }) })
		}
	})
	if err != nil {
		t.Fatalf("after %d of %d records: %v", len(got), len(values), err)
	}
	if len(got) != len(values) {
		t.Fatalf("read %d records, want %d", len(got), len(values))
	}
	for i, m := range got {
		if m.Offset != int64(i) || !bytes.Equal(m.Value, values[i]) {
			t.Fatalf("record %d: offset %d, %d bytes; want offset %d, %d bytes", i, m.Offset, len(m.Value), i, len(values[i]))
		}
	}
}

// A broker that stops answering fetches: the read ends as soon as its
// context does, and, left alone, fails once no record came for rangeStall
// while the partition's bounds say records are there, naming the offsets.
func TestReadRangeFromAStoppedBroker(t *testing.T) {
	link := newSlowLink()
	cl := slowBroker(t, link, [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	oldWait, oldCheck, oldStall := rangeAnswerWait, rangeCheckEvery, rangeStall
	t.Cleanup(func() { rangeAnswerWait, rangeCheckEvery, rangeStall = oldWait, oldCheck, oldStall })
	// A fetch is waited for far longer than the test: only the context or
	// the stall can end a read.
	rangeAnswerWait, rangeCheckEvery, rangeStall = 10*time.Minute, 100*time.Millisecond, 10*time.Minute
	link.update(func(l *slowLink) { l.fetchesStopped = true })

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ReadRange(ctx, cl, "raw", 0, -1, func(contract.Message) {}) }()
	time.AfterFunc(300*time.Millisecond, cancel)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled read: %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the read did not end within 2 minutes of its context")
	}

	rangeStall = time.Second
	var got int
	err := ReadRange(context.Background(), cl, "raw", 0, -1, func(contract.Message) { got++ })
	if err == nil || got != 0 || !strings.Contains(err.Error(), "no record between 0 and 3") {
		t.Fatalf("read %d records of a stopped broker, error %v; want none and one naming offsets 0 to 3", got, err)
	}
	t.Log(err)
}
