package devs3

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// A server that exits during start-up (here: MinIO refuses a root password
// shorter than 8 characters) is reported as such with what MinIO printed,
// at once rather than after the 60 s start-up limit.
func TestExitDuringStartUpSaysWhy(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := Binary(wd)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(bin, t.TempDir(), "faceharvest", "short")
	if !errors.Is(err, errExited) {
		t.Fatalf("Start with a password MinIO refuses: %v, want %v", err, errExited)
	}
	if !strings.Contains(strings.ToLower(err.Error()), "password") {
		t.Fatalf("the error does not say what MinIO printed: %q", err)
	}
	s, err := Start(bin, t.TempDir(), "faceharvest", "faceharvest-dev-password")
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
}
