package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The workload's tokens issued through ingest: ingest calls the simulated
// vendor and registers each token in the same request.

// issuedCount counts the tokens issued through ingest: Megvii, Baidu (of
// which Submitted with idcard/submit), and the retries with the same
// Idempotency-Key answered with the same token.
type issuedCount struct {
	Megvii    int `json:"megvii"`
	Baidu     int `json:"baidu"`
	Submitted int `json:"baidu_submitted"`
	Replayed  int `json:"replayed"`
}

// baiduIssued reports whether Baidu verification i of the workload is
// issued through ingest: half of those with the simulator's default course
// (recorded media, one attempt), which is what verifyToken/generate starts.
func baiduIssued(i, completing int) bool {
	return i < completing && i%2 == 0 && i%4 != 3 && i%5 != 1
}

type issueAnswer struct {
	BizID       string `json:"biz_id"`
	Token       string `json:"token"`
	VerifyToken string `json:"verify_token"`
	URL         string `json:"url"`
}

// issue posts one issuing request with an Idempotency-Key.
func (s *stack) issue(ctx context.Context, route, key string, body any) (issueAnswer, bool, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr("ingest")+route, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return issueAnswer{}, false, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return issueAnswer{}, false, fmt.Errorf("POST %s: %d %s", route, resp.StatusCode, strings.TrimSpace(string(rb)))
	}
	var a issueAnswer
	return a, resp.Header.Get("Idempotent-Replayed") == "true", json.Unmarshal(rb, &a)
}

// issueMegvii issues Megvii verification i; every tenth request is sent
// twice, as a client retrying after a lost answer would, and must get the
// same token back.
func (s *stack) issueMegvii(ctx context.Context, i int, n *issuedCount) (issueAnswer, error) {
	key := fmt.Sprintf("devstack-megvii-%03d", i)
	body := map[string]any{"biz_no": fmt.Sprintf("loan-m%03d", i), "return_url": "http://127.0.0.1/kyc/done"}
	a, _, err := s.issue(ctx, "/v1/megvii/tokens", key, body)
	if err != nil {
		return a, err
	}
	n.Megvii++
	if i%10 == 0 {
		again, replayed, err := s.issue(ctx, "/v1/megvii/tokens", key, body)
		if err != nil {
			return a, err
		}
		if !replayed || again != a {
			return a, fmt.Errorf("a retry with Idempotency-Key %s answered %+v (replayed %v), the first %+v", key, again, replayed, a)
		}
		n.Replayed++
	}
	return a, nil
}

// issueBaidu issues Baidu verification i (every third with the user's name
// and ID number, idcard/submit) and opens its H5 URL, as the user does.
func (s *stack) issueBaidu(ctx context.Context, i int, n *issuedCount) (string, error) {
	body := map[string]any{"plan_id": "1", "biz_no": fmt.Sprintf("loan-b%03d", i), "success_url": "http://127.0.0.1/kyc/ok", "failure_url": "http://127.0.0.1/kyc/retry"}
	if i%3 == 0 {
		body["id_name"], body["id_no"] = "张三", fmt.Sprintf("1101011990010%05d", i)
	}
	a, _, err := s.issue(ctx, "/v1/baidu/tokens", fmt.Sprintf("devstack-baidu-%03d", i), body)
	if err != nil {
		return "", err
	}
	n.Baidu++
	if i%3 == 0 {
		n.Submitted++
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("opening the H5 URL of %s: %d", a.VerifyToken, resp.StatusCode)
	}
	return a.VerifyToken, nil
}
