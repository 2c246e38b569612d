package ops

import (
	"net"
	"strings"
	"testing"
)

// Listen opens both listeners, and when --metrics-addr cannot be listened
// on it says so and closes the --listen one it had opened.
func TestListen(t *testing.T) {
	f := ServiceFlags{MetricsAddr: "127.0.0.1:0"}
	ln, mln, err := f.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	mln.Close()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, _, err := f.Listen(busy.Addr().String()); err == nil || !strings.HasPrefix(err.Error(), "--listen: ") {
		t.Fatalf("busy --listen: %v", err)
	}
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	f.MetricsAddr = busy.Addr().String()
	if _, _, err := f.Listen(addr); err == nil || !strings.HasPrefix(err.Error(), "--metrics-addr: ") {
		t.Fatalf("busy --metrics-addr: %v", err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the --listen listener was left open: %v", err)
	}
	again.Close()
}
