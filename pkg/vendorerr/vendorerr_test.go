package vendorerr

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"syscall"
	"testing"
)

func TestClassProperties(t *testing.T) {
	cases := []struct {
		c                   Class
		terminal, retryable bool
		name                string
	}{
		{NotFound, true, false, "not_found"},
		{Destroyed, true, false, "destroyed"},
		{NotVerified, true, false, "not_verified"},
		{Account, false, false, "account"},
		{RateLimited, false, true, "rate_limited"},
		{CallerBug, false, false, "caller_bug"},
		{VendorFault, false, true, "vendor_fault"},
		{Unknown, false, false, "unknown"},
		{Class(99), false, false, "unknown"},
	}
	for _, c := range cases {
		if c.c.Terminal() != c.terminal || c.c.Retryable() != c.retryable || c.c.String() != c.name {
			t.Errorf("%d: terminal=%v retryable=%v name=%q", c.c, c.c.Terminal(), c.c.Retryable(), c.c.String())
		}
	}
}

func TestTransportScrubsURL(t *testing.T) {
	secret := "s3cr3t-value"
	base := &url.Error{Op: "Get", URL: "https://api.example/x?api_secret=" + secret, Err: syscall.ECONNRESET}
	cases := []struct {
		err  error
		want string
	}{
		{base, "connection reset"},
		{fmt.Errorf("wrapped: %w", &url.Error{Op: "Get", URL: "http://h/?access_token=" + secret, Err: context.DeadlineExceeded}), "timeout"},
		{&url.Error{Op: "Post", URL: "http://h/?client_secret=" + secret, Err: syscall.ECONNREFUSED}, "connection refused"},
		{&url.Error{Op: "Post", URL: "http://h/?client_secret=" + secret, Err: context.Canceled}, "cancelled"},
	}
	for _, c := range cases {
		e := Transport("megvii", "get_result", c.err)
		if strings.Contains(e.Error(), secret) {
			t.Fatalf("secret leaked: %s", e)
		}
		if e.Class != VendorFault || e.Message != c.want {
			t.Errorf("got class %v message %q, want %q", e.Class, e.Message, c.want)
		}
		if ClassOf(fmt.Errorf("ctx: %w", e)) != VendorFault {
			t.Error("ClassOf does not see through wrapping")
		}
	}
	if !errors.Is(Transport("m", "e", base), syscall.ECONNRESET) {
		t.Error("errors.Is lost the cause")
	}
	if ClassOf(errors.New("x")) != Unknown || ClassOf(nil) != Unknown {
		t.Error("unclassified error has a class")
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Vendor: "megvii", Endpoint: "get_result", Class: Destroyed, HTTPStatus: 403, Code: "DATA_DESTROYED"}
	if got := e.Error(); got != "megvii get_result: destroyed (HTTP 403 DATA_DESTROYED)" {
		t.Fatalf("got %q", got)
	}
	e = &Error{Vendor: "baidu", Endpoint: "result/getall", Class: Account, Code: "17", Message: "Open api daily request limit reached"}
	if got := e.Error(); got != "baidu result/getall: account (17): Open api daily request limit reached" {
		t.Fatalf("got %q", got)
	}
}
