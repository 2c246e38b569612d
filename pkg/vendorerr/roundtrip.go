package vendorerr

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// RoundTrip sends req and reads the whole response body, up to limit bytes.
// Transport failures, bodies cut short (a reset mid-body, a truncated
// Content-Length) and bodies over limit are classified as VendorFault. The
// caller classifies the status and body.
func RoundTrip(c *http.Client, req *http.Request, vendor, endpoint string, limit int64) (int, []byte, *Error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, Transport(vendor, endpoint, err)
	}
	defer resp.Body.Close()
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
