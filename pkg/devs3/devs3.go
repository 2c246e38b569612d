// Package devs3 runs a real S3-compatible server process (MinIO) on
// loopback for development and tests.
package devs3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binary finds the MinIO server: $FACEHARVEST_MINIO_BIN, bin/tools/minio
// above dir, or minio on the PATH.
func Binary(dir string) (string, error) {
	if b := os.Getenv("FACEHARVEST_MINIO_BIN"); b != "" {
		return b, nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "bin", "tools", "minio")
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", errors.New("MinIO not found: run make minio (or set FACEHARVEST_MINIO_BIN)")
}

// Server is a running MinIO.
type Server struct {
	cmd      *exec.Cmd
	Endpoint string
	User     string
	Password string
	DataDir  string
	done     chan struct{}
}

// Start runs MinIO on a free loopback port with its data in dataDir; env
// adds settings (KEY=value), e.g. MINIO_KMS_SECRET_KEY for server-side
// encryption. The port is free when chosen but may be taken before MinIO
// binds it (parallel test packages start servers of their own): a server
// that exits during start-up is started again on another port, three
// times at most.
func Start(bin, dataDir, user, password string, env ...string) (*Server, error) {
	var err error
	for try := 0; try < 3; try++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		var s *Server
		if s, err = StartOn(bin, dataDir, user, password, addr, env...); err == nil || !errors.Is(err, errExited) {
			return s, err
		}
	}
	return nil, err
}

// errExited is StartOn's error for a server that exited before it was live.
var errExited = errors.New("MinIO exited during start-up")

// Addr is the server's host:port.
func (s *Server) Addr() string { return strings.TrimPrefix(s.Endpoint, "http://") }

// StartOn runs MinIO on addr (host:port), e.g. to restart a stopped server
// where its clients expect it.
func StartOn(bin, dataDir, user, password, addr string, env ...string) (*Server, error) {
	cmd := exec.Command(bin, "server", dataDir, "--address", addr, "--console-address", "127.0.0.1:0", "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+user, "MINIO_ROOT_PASSWORD="+password, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &tail{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start MinIO: %w", err)
	}
	s := &Server{cmd: cmd, Endpoint: "http://" + addr, User: user, Password: password, DataDir: dataDir, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		// Each probe is short: a port taken by another listener accepts and
		// never answers, and MinIO's exit must still be noticed.
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, s.Endpoint+"/minio/health/live", nil)
		resp, err := http.DefaultClient.Do(req)
		rcancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("%w on %s: %s", errExited, addr, out.String())
		case <-ctx.Done():
			s.Stop()
			return nil, errors.New("MinIO did not become live within 60 s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills the server; a server already stopped is left as it is.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// tail keeps the last max bytes written to it: what a server said before it
// exited, for the error.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// Pid is the MinIO process's id (benchmarks sample its CPU time).
func (s *Server) Pid() int { return s.cmd.Process.Pid }
