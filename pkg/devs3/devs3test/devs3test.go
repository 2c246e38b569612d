// Package devs3test starts MinIO for a test: without the binary the test
// is skipped, or fails under CI, where make test installs it.
package devs3test

import (
	"os"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/devs3"
	"github.com/faceharvest/faceharvest/pkg/proctest"
)

// User and Password are the root credentials of the servers Start runs.
const (
	User     = "faceharvest"
	Password = "faceharvest-dev-password"
)

// Binary returns the MinIO server that devs3.Binary finds from the test's
// directory, or skips t without one (fails it when $CI is set).
func Binary(t testing.TB) string {
	t.Helper()
	wd, _ := os.Getwd()
	bin, err := devs3.Binary(wd)
	proctest.NeedTool(t, "minio", err)
	return bin
}

// Start runs MinIO for t with its data in a temporary directory and env
// added to its settings (see devs3.Start); it is stopped when t ends.
func Start(t testing.TB, env ...string) *devs3.Server {
	t.Helper()
	srv, err := devs3.Start(Binary(t), t.TempDir(), User, Password, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}
