package harvester

import (
	"bytes"
	"context"
	"errors"
	"net/http"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// Caller makes one vendor call for a verification and reports the answer:
// the response to record (nil when no body came back) and its meaning.
type Caller interface {
	Call(ctx context.Context, st *schedule.State, endpoint string) (*contract.Response, schedule.Result)
}

func contentType(b []byte) string {
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return "application/json"
	}
	return http.DetectContentType(b)
}

// errorAnswer turns a failed call into a recordable response (when a body
// came back) and a schedule.Result.
func errorAnswer(v contract.Vendor, id, endpoint string, params map[string]string, err error) (*contract.Response, schedule.Result) {
	var ve *vendorerr.Error
	if !errors.As(err, &ve) {
		ve = &vendorerr.Error{Class: vendorerr.VendorFault, Message: err.Error()}
	}
	res := schedule.Result{Endpoint: endpoint, Class: ve.Class, Code: ve.Code, Message: ve.Error()}
	if ve.Body == nil && ve.HTTPStatus == 0 {
		return nil, res
	}
	res.Recorded = true
	res.Served = ve.HTTPStatus == http.StatusOK
	return &contract.Response{Vendor: v, VerificationID: id, Endpoint: endpoint, Params: params, HTTPStatus: ve.HTTPStatus,
		ErrorClass: ve.Class.String(), ContentType: contentType(ve.Body), Body: ve.Body}, res
}

// MegviiCaller calls get_result with the verify time and the return_image
// value asked for next (schedule.NextReturnImage), and reports which images
// of the flow the answer lacks.
type MegviiCaller struct{ Client *megvii.Client }

// Call implements Caller.
func (c MegviiCaller) Call(ctx context.Context, st *schedule.State, endpoint string) (*contract.Response, schedule.Result) {
	ri, _ := schedule.NextReturnImage(st)
	opts := megvii.GetResultOptions{ReturnImage: megvii.ReturnImage(ri), ReturnVerifyTime: true}
	params := opts.Params(st.ID)
	// The answer goes to the raw topic byte for byte and the archiver decodes
	// it; here only its status (and, when no callback told it, the
	// procedure) matters.
	r, raw, err := c.Client.GetResultSummary(ctx, st.ID, opts)
	if err != nil {
		resp, res := errorAnswer(contract.Megvii, st.ID, endpoint, params, err)
		res.ReturnImage = ri
		return resp, res
	}
	if st.FlowStatus == "" || !megvii.Status(st.FlowStatus).Final() {
		st.FlowStatus = string(r.Status)
	}
	if st.Procedure == "" {
		st.Procedure = megvii.ProcedureType(raw)
	}
	res := schedule.Result{Endpoint: endpoint, Recorded: true, Served: true, ReturnImage: ri}
	for _, v := range megvii.MissingImages(raw) {
		res.Missing = append(res.Missing, int(v))
	}
	return &contract.Response{Vendor: contract.Megvii, VerificationID: st.ID, Endpoint: endpoint, Params: params, HTTPStatus: http.StatusOK,
		ContentType: "application/json", Body: raw}, res
}

// BaiduCaller calls the faceprint query endpoints.
type BaiduCaller struct{ Client *baidu.Client }

// Call implements Caller.
func (c BaiduCaller) Call(ctx context.Context, st *schedule.State, endpoint string) (*contract.Response, schedule.Result) {
	params := map[string]string{"verify_token": st.ID}
	var (
		meta baidu.Meta
		err  error
		res  = schedule.Result{Endpoint: endpoint, Recorded: true}
	)
	switch endpoint {
	case baidu.EndpointGetAll:
		var g *baidu.GetAllResult
		if g, err = c.Client.GetAll(ctx, st.ID); err == nil {
			meta = g.Meta
			res.Attempts = len(g.VerifyResult)
			res.AnyPassed = g.Passed()
			for _, a := range g.VerifyResult {
				if t, perr := baidu.ParseTime(a.VerifyTime); perr == nil && (res.LastVerified == nil || t.After(*res.LastVerified)) {
					t := t.UTC()
					res.LastVerified = &t
				}
			}
		}
	case baidu.EndpointDetail:
		var d *baidu.DetailResult
		if d, err = c.Client.ResultDetail(ctx, st.ID); err == nil {
			meta = d.Meta
		}
	case baidu.EndpointMedia:
		var m *baidu.MediaResult
		if m, err = c.Client.MediaQuery(ctx, st.ID); err == nil {
			meta = m.Meta
		}
	default:
		return nil, schedule.Result{Endpoint: endpoint, Class: vendorerr.CallerBug, Message: "unknown endpoint " + endpoint}
	}
	if err != nil {
		return errorAnswer(contract.Baidu, st.ID, endpoint, params, err)
	}
	return &contract.Response{Vendor: contract.Baidu, VerificationID: st.ID, Endpoint: endpoint, Params: params, HTTPStatus: meta.HTTPStatus,
		ContentType: contentType(meta.Raw), Body: meta.Raw}, res
}
