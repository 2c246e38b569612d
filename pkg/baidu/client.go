package baidu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// DefaultBaseURL is the production API root.
const DefaultBaseURL = "https://aip.baidubce.com"

// DefaultMaxResponseBytes bounds a response (detail carries base64 images).
const DefaultMaxResponseBytes = 64 << 20

// Config configures a Client.
type Config struct {
	BaseURL          string // DefaultBaseURL when empty
	APIKey           config.Secret
	SecretKey        config.Secret
	HTTPClient       *http.Client  // a client with a 30 s timeout when nil; its redirects are never followed
	MaxResponseBytes int64         // DefaultMaxResponseBytes when 0
	Now              clock.Now     // time.Now when nil
	RefreshBefore    time.Duration // refresh the access_token this long before it expires; 24 h when 0
}

// Client calls the faceprint API.
type Client struct {
	base   *url.URL
	cfg    Config
	httpc  *http.Client
	tokens *TokenSource
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("baidu base URL %q: want http(s)://host[:port][/path]", cfg.BaseURL)
	}
	if cfg.APIKey.Empty() || cfg.SecretKey.Empty() {
		return nil, fmt.Errorf("baidu: API key and secret key are required (FACEHARVEST_BAIDU_API_KEY, FACEHARVEST_BAIDU_SECRET_KEY)")
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.Now == nil {
		cfg.Now = clock.Real
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = 24 * time.Hour
	}
	httpc := cfg.HTTPClient
	if httpc == nil {
		httpc = &http.Client{Timeout: 30 * time.Second}
	}
	httpc = vendorerr.NoRedirects(httpc) // whatever client is given: secrets must not follow a redirect
	return &Client{base: u, cfg: cfg, httpc: httpc, tokens: newTokenSource(u, cfg, httpc)}, nil
}

// Tokens returns the client's access-token source.
func (c *Client) Tokens() *TokenSource { return c.tokens }

// Call posts body to a faceprint endpoint and returns the decoded envelope.
// An access_token answered with 110 or 111 is replaced once and the call
// retried, and so is one answered "Token无效或者已过期". Errors are
// *vendorerr.Error.
func (c *Client) Call(ctx context.Context, endpoint string, body any) (*Envelope, Meta, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, Meta{}, &vendorerr.Error{Vendor: Vendor, Endpoint: endpoint, Class: vendorerr.CallerBug, Message: "request not encodable"}
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.Token(ctx)
		if err != nil {
			return nil, Meta{}, err
		}
		u := *c.base
		u.Path += "/rpc/2.0/brain/solution/faceprint/" + endpoint
		u.RawQuery = url.Values{"access_token": {tok}}.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(payload))
		if err != nil {
			return nil, Meta{}, vendorerr.Transport(Vendor, endpoint, err)
		}
		req.Header.Set("Content-Type", "application/json")
		status, raw, verr := vendorerr.RoundTrip(c.httpc, req, Vendor, endpoint, c.cfg.MaxResponseBytes)
		meta := Meta{HTTPStatus: status, Raw: raw}
		if verr != nil {
			return nil, meta, verr
		}
		env, e := Classify(endpoint, status, raw)
		if e != nil {
			meta.LogID = e.RequestID
			// 110/111 ask for a new access_token; so may "Token无效或者已过期"
			// (001's FAQ: a verify_token used with a mismatched access_token
			// gets it too): one try with a fresh one before it is believed.
			if (IsTokenRefreshCode(e.Code) || strings.Contains(e.Message, TokenInvalidMessage)) && attempt == 0 {
				c.tokens.Invalidate(tok)
				continue
			}
			return nil, meta, e
		}
		meta.LogID = string(env.LogID)
		return env, meta, nil
	}
}

// query calls an endpoint with {verify_token} and decodes its result into T.
func query[T any](ctx context.Context, c *Client, endpoint string, body any, set func(*T, Meta)) (*T, error) {
	env, meta, err := c.Call(ctx, endpoint, body)
	if err != nil {
		return nil, err
	}
	var out T
	if len(env.Result) > 0 && string(env.Result) != "null" {
		if err := json.Unmarshal(env.Result, &out); err != nil {
			return nil, &vendorerr.Error{Vendor: Vendor, Endpoint: endpoint, Class: vendorerr.VendorFault, HTTPStatus: meta.HTTPStatus,
				Message: "result does not match the documented shape: " + err.Error(), RequestID: meta.LogID, Body: meta.Raw}
		}
	}
	set(&out, meta)
	return &out, nil
}

type tokenBody struct {
	VerifyToken string `json:"verify_token"`
}

// GenerateVerifyToken calls verifyToken/generate. The token is usable for two
// hours to start a verification.
func (c *Client) GenerateVerifyToken(ctx context.Context, planID string) (*VerifyToken, error) {
	v, err := query(ctx, c, EndpointGenerate, map[string]string{"plan_id": planID}, func(v *VerifyToken, m Meta) { v.Meta = m })
	if err == nil && v.VerifyToken == "" {
		return nil, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointGenerate, Class: vendorerr.VendorFault, HTTPStatus: v.HTTPStatus, Message: "answer lacks verify_token", Body: v.Raw}
	}
	return v, err
}

// SubmitIDCard is idcard/submit's input.
type SubmitIDCard struct {
	VerifyToken     string `json:"verify_token"`
	IDName          string `json:"id_name"`
	IDNo            string `json:"id_no"`
	CertificateType int    `json:"certificate_type"`
}

// SubmitIDCard calls idcard/submit, before the user opens the H5 URL.
func (c *Client) SubmitIDCard(ctx context.Context, in SubmitIDCard) (Meta, error) {
	_, meta, err := c.Call(ctx, EndpointSubmit, in)
	return meta, err
}

// UploadMatchImage is uploadMatchImage's input.
type UploadMatchImage struct {
	VerifyToken     string `json:"verify_token"`
	Image           string `json:"image"` // base64, at most 10 MB, under 1920x1080
	QualityControl  string `json:"quality_control,omitempty"`
	LivenessControl string `json:"liveness_control,omitempty"`
}

// UploadMatchImage calls uploadMatchImage.
func (c *Client) UploadMatchImage(ctx context.Context, in UploadMatchImage) (Meta, error) {
	_, meta, err := c.Call(ctx, EndpointUploadMatch, in)
	return meta, err
}

// ResultSimple calls result/simple.
func (c *Client) ResultSimple(ctx context.Context, verifyToken string) (*SimpleResult, error) {
	return query(ctx, c, EndpointSimple, tokenBody{verifyToken}, func(v *SimpleResult, m Meta) { v.Meta = m })
}

// ResultDetail calls result/detail (successful verifications only; a failed
// one answers with a NotVerified error).
func (c *Client) ResultDetail(ctx context.Context, verifyToken string) (*DetailResult, error) {
	return query(ctx, c, EndpointDetail, tokenBody{verifyToken}, func(v *DetailResult, m Meta) { v.Meta = m })
}

// ResultStat calls result/stat.
func (c *Client) ResultStat(ctx context.Context, verifyToken string) (*StatResult, error) {
	return query(ctx, c, EndpointStat, tokenBody{verifyToken}, func(v *StatResult, m Meta) { v.Meta = m })
}

// UnmarshalJSON reads every per-API array.
func (s *StatResult) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &s.APIs) }

// MediaQuery calls result/media/query. Its URLs live one day.
func (c *Client) MediaQuery(ctx context.Context, verifyToken string) (*MediaResult, error) {
	return query(ctx, c, EndpointMedia, tokenBody{verifyToken}, func(v *MediaResult, m Meta) { v.Meta = m })
}

// GetAll calls result/getall: every attempt and the charges.
func (c *Client) GetAll(ctx context.Context, verifyToken string) (*GetAllResult, error) {
	return query(ctx, c, EndpointGetAll, tokenBody{verifyToken}, func(v *GetAllResult, m Meta) { v.Meta = m })
}

// DefaultH5URL is the H5 faceprint page a user is sent to (public: 001
// names the step, 跳转实名认证H5 URL, not the address).
const DefaultH5URL = "https://brain.baidu.com/face/print/"

// H5URL returns the page for a verify_token whose flow ends on successURL
// or failureURL (public parameter names: token, successUrl, failedUrl).
// The pages are query-escaped; the vendor appends verify_token to them.
func H5URL(base, verifyToken, successURL, failureURL string) string {
	q := url.Values{"token": {verifyToken}}
	if successURL != "" {
		q.Set("successUrl", successURL)
	}
	if failureURL != "" {
		q.Set("failedUrl", failureURL)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + q.Encode()
}
