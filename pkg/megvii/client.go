package megvii

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// DefaultBaseURL is the production API root.
const DefaultBaseURL = "https://api.megvii.com"

// Endpoint names, as used in errors, envelopes and metric labels.
const (
	EndpointGetResult = "get_result"
	EndpointGetToken  = "get_token"
)

// DefaultMaxResponseBytes bounds a response: get_result with every image can
// run to tens of MiB.
const DefaultMaxResponseBytes = 64 << 20

// Config configures a Client.
type Config struct {
	BaseURL          string // DefaultBaseURL when empty
	APIKey           config.Secret
	APISecret        config.Secret
	HTTPClient       *http.Client // a client without a timeout of its own when nil (see CallTimeout); its redirects are never followed
	MaxResponseBytes int64        // DefaultMaxResponseBytes when 0
	// CallTimeout bounds a call whose context has no deadline
	// (DefaultCallTimeout when 0). A caller's deadline is the one timeout
	// of its call: the harvester's --call-timeout. A get_result answer cut
	// short after the vendor served it spends the call budget, so no
	// shorter timeout of the client's own may cut it first.
	CallTimeout time.Duration
}

// DefaultCallTimeout is CallTimeout's default: the harvester's
// --call-timeout default.
const DefaultCallTimeout = time.Minute

// Client calls the FaceID Lite API.
type Client struct {
	base  *url.URL
	cfg   Config
	httpc *http.Client
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("megvii base URL %q: want http(s)://host[:port][/path]", cfg.BaseURL)
	}
	if cfg.APIKey.Empty() || cfg.APISecret.Empty() {
		return nil, fmt.Errorf("megvii: API key and secret are required (FACEHARVEST_MEGVII_API_KEY, FACEHARVEST_MEGVII_API_SECRET)")
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	httpc := cfg.HTTPClient
	if httpc == nil {
		httpc = &http.Client{} // the call's context is its one timeout
	}
	httpc = vendorerr.NoRedirects(httpc) // whatever client is given: secrets must not follow a redirect
	return &Client{base: u, cfg: cfg, httpc: httpc}, nil
}

// ReturnImage selects the images get_result returns.
type ReturnImage int

// The documented return_image values.
const (
	ReturnImageNone        ReturnImage = 0
	ReturnImageBest        ReturnImage = 1
	ReturnImageIDCardFront ReturnImage = 2
	ReturnImageIDCardBack  ReturnImage = 3
	ReturnImageAll         ReturnImage = 4
	ReturnImageSelfieFront ReturnImage = 5
	ReturnImageSelfieSide  ReturnImage = 6
)

// GetResultOptions are get_result's optional parameters.
type GetResultOptions struct {
	ReturnImage      ReturnImage
	ReturnVerifyTime bool
}

// Params returns the request parameters without secrets, for envelopes.
func (o GetResultOptions) Params(bizID string) map[string]string {
	return map[string]string{"biz_id": bizID, "return_image": strconv.Itoa(int(o.ReturnImage)), "return_verify_time": boolDigit(o.ReturnVerifyTime)}
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// GetResult calls get_result. On success the Result carries the raw body. On
// failure the error is a *vendorerr.Error whose Body holds the vendor's
// answer, if any: a DATA_DESTROYED answer is evidence too.
func (c *Client) GetResult(ctx context.Context, bizID string, opt GetResultOptions) (*Result, error) {
	status, body, verr := c.fetchResult(ctx, bizID, opt)
	if verr != nil {
		return nil, verr
	}
	if e := Classify(EndpointGetResult, status, body); e != nil {
		return nil, e
	}
	r, err := ParseResult(body)
	if err != nil {
		return nil, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointGetResult, Class: vendorerr.VendorFault, HTTPStatus: status, Message: "undecodable result: " + err.Error(), Body: body}
	}
	if !r.Status.Known() {
		return nil, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointGetResult, Class: vendorerr.VendorFault, HTTPStatus: status, Message: fmt.Sprintf("unknown status %.32q", string(r.Status)), RequestID: r.RequestID, Body: body}
	}
	return r, nil
}

// GetResultSummary is GetResult for callers that keep the raw answer and
// need only its status and biz_info (the harvester): a success is checked by
// one validating pass over the body instead of a full decode of its
// megabytes of base64. Errors are classified exactly as GetResult does.
func (c *Client) GetResultSummary(ctx context.Context, bizID string, opt GetResultOptions) (Summary, []byte, error) {
	status, body, verr := c.fetchResult(ctx, bizID, opt)
	if verr != nil {
		return Summary{}, nil, verr
	}
	s, hasError, err := summarizeAnswer(body)
	if status != http.StatusOK || err != nil || hasError {
		if e := Classify(EndpointGetResult, status, body); e != nil {
			return Summary{}, nil, e
		}
		if err != nil { // valid JSON, but status or biz_info of the wrong type
			return Summary{}, nil, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointGetResult, Class: vendorerr.VendorFault, HTTPStatus: status, Message: "undecodable result: " + err.Error(), Body: body}
		}
	}
	if !s.Status.Known() {
		return Summary{}, nil, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointGetResult, Class: vendorerr.VendorFault, HTTPStatus: status, Message: fmt.Sprintf("unknown status %.32q", string(s.Status)), Body: body}
	}
	return s, body, nil
}

// fetchResult makes the get_result request; a transport failure or an
// oversized body is a classified error.
func (c *Client) fetchResult(ctx context.Context, bizID string, opt GetResultOptions) (int, []byte, *vendorerr.Error) {
	if bizID == "" {
		return 0, nil, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointGetResult, Class: vendorerr.CallerBug, Message: "empty biz_id"}
	}
	if opt.ReturnImage < ReturnImageNone || opt.ReturnImage > ReturnImageSelfieSide {
		return 0, nil, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointGetResult, Class: vendorerr.CallerBug, Message: fmt.Sprintf("return_image %d out of range 0-6", opt.ReturnImage)}
	}
	q := url.Values{}
	q.Set("api_key", c.cfg.APIKey.Reveal())
	q.Set("api_secret", c.cfg.APISecret.Reveal())
	for k, v := range opt.Params(bizID) {
		q.Set(k, v)
	}
	u := *c.base
	u.Path += "/faceid/lite/get_result"
	u.RawQuery = q.Encode()
	ctx, cancel := c.bounded(ctx)
	defer cancel() // RoundTrip has read the whole body
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, nil, vendorerr.Transport(Vendor, EndpointGetResult, err)
	}
	return vendorerr.RoundTrip(c.httpc, req, Vendor, EndpointGetResult, c.cfg.MaxResponseBytes)
}

// bounded returns ctx, with CallTimeout as its deadline when it has none.
func (c *Client) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.CallTimeout)
}

// TokenRequest is get_token's input. Options carries any further documented
// parameter (comparison_type, idcard_mode, liveness_type, ...) verbatim.
type TokenRequest struct {
	ReturnURL    string
	NotifyURL    string
	BizNo        string
	BizExtraData string
	Options      map[string]string
}

// Token is get_token's answer.
type Token struct {
	RequestID   string `json:"request_id"`
	Token       string `json:"token"`
	BizID       string `json:"biz_id"`
	ExpiredTime int64  `json:"expired_time"` // Unix seconds
	TimeUsed    int64  `json:"time_used"`
	Raw         []byte `json:"-"`
}

// GetToken calls get_token, starting a verification.
func (c *Client) GetToken(ctx context.Context, tr TokenRequest) (*Token, error) {
	form := url.Values{}
	for k, v := range tr.Options {
		form.Set(k, v)
	}
	form.Set("api_key", c.cfg.APIKey.Reveal())
	form.Set("api_secret", c.cfg.APISecret.Reveal())
	form.Set("return_url", tr.ReturnURL)
	form.Set("notify_url", tr.NotifyURL)
	form.Set("biz_no", tr.BizNo)
	if tr.BizExtraData != "" {
		form.Set("biz_extra_data", tr.BizExtraData)
	}
	u := *c.base
	u.Path += "/faceid/lite/get_token"
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, vendorerr.Transport(Vendor, EndpointGetToken, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, body, verr := vendorerr.RoundTrip(c.httpc, req, Vendor, EndpointGetToken, c.cfg.MaxResponseBytes)
	if verr != nil {
		return nil, verr
	}
	if e := Classify(EndpointGetToken, status, body); e != nil {
		return nil, e
	}
	var t Token
	if err := json.Unmarshal(body, &t); err != nil || t.BizID == "" || t.Token == "" {
		return nil, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointGetToken, Class: vendorerr.VendorFault, HTTPStatus: status, Message: "get_token answer lacks token or biz_id", Body: body}
	}
	t.Raw = body
	return &t, nil
}

// DoURL returns the H5 page a user is sent to with get_token's token:
// /faceid/lite/do?token=<token> under the API root (public: neither
// document names it; both call opening it "do").
func (c *Client) DoURL(token string) string {
	u := *c.base
	u.Path += "/faceid/lite/do"
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return u.String()
}
