package vendorerr

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// NoRedirects returns a copy of c (sharing its transport) that never follows
// a redirect: vendor requests carry secrets in their query (Megvii's
// api_secret, Baidu's access_token) or body, which a followed redirect would
// hand to another host, in the Referer or in a body that a 307 resends.
// RoundTrip classifies the redirect answer itself as a VendorFault.
func NoRedirects(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// RoundTrip sends req and reads the whole response body, up to limit bytes.
// Transport failures, redirects (c must not follow them: see NoRedirects),
// bodies cut short (a reset mid-body, a truncated Content-Length) and bodies
// over limit are classified as VendorFault. The caller classifies the status
// and body.
func RoundTrip(c *http.Client, req *http.Request, vendor, endpoint string, limit int64) (int, []byte, *Error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, Transport(vendor, endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// Neither the Location nor the body is kept: a redirect may echo
		// the request's query.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, nil, &Error{Vendor: vendor, Endpoint: endpoint, Class: VendorFault, HTTPStatus: resp.StatusCode,
			Message: "redirect not followed"}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		e := Transport(vendor, endpoint, err)
		e.HTTPStatus = resp.StatusCode
		if errors.Is(err, io.ErrUnexpectedEOF) {
			e.Message = "response body cut short"
		}
		e.Body = body
		return resp.StatusCode, body, e
	}
	if int64(len(body)) > limit {
		return resp.StatusCode, nil, &Error{Vendor: vendor, Endpoint: endpoint, Class: VendorFault, HTTPStatus: resp.StatusCode,
			Message: fmt.Sprintf("response larger than %d bytes", limit)}
	}
	return resp.StatusCode, body, nil
}
