package archiver

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
	"github.com/faceharvest/faceharvest/pkg/objstore"

	"github.com/prometheus/client_golang/prometheus"
)

// The dial check, over both address families: what is refused, with which
// bounded reason, and what an allowed range lets through.
func TestCheckAddr(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, c := range []struct {
		ip      string
		allowed []netip.Prefix
		want    string // "" when fetched
	}{
		{"8.8.8.8", nil, ""},
		{"180.76.76.76", nil, ""},
		{"2400:da00::6666", nil, ""},
		{"2606:4700:4700::1111", nil, ""},
		{"64:ff9b::808:808", nil, ""}, // NAT64 of 8.8.8.8
		{"127.0.0.1", nil, RefusedLoopback},
		{"127.9.8.7", nil, RefusedLoopback},
		{"::1", nil, RefusedLoopback},
		{"::ffff:127.0.0.1", nil, RefusedLoopback}, // IPv4-mapped
		{"10.1.2.3", nil, RefusedPrivate},
		{"172.16.0.1", nil, RefusedPrivate},
		{"172.31.255.255", nil, RefusedPrivate},
		{"172.32.0.1", nil, ""},
		{"192.168.1.1", nil, RefusedPrivate},
		{"fd12:3456::1", nil, RefusedPrivate},
		{"fc00::1", nil, RefusedPrivate},
		{"169.254.1.1", nil, RefusedLinkLocal},
		{"fe80::1", nil, RefusedLinkLocal},
		{"fe80::1%eth0", nil, RefusedLinkLocal},
		{"169.254.169.254", nil, RefusedMetadata},
		{"fd00:ec2::254", nil, RefusedMetadata},
		{"100.100.100.200", nil, RefusedMetadata},
		{"::ffff:169.254.169.254", nil, RefusedMetadata},
		{"64:ff9b::a9fe:a9fe", nil, RefusedMetadata}, // NAT64 of 169.254.169.254
		{"2002:a9fe:a9fe::1", nil, RefusedMetadata},  // 6to4 of it
		{"2002:0a00:0001::1", nil, RefusedPrivate},   // 6to4 of 10.0.0.1
		{"0.0.0.0", nil, RefusedUnspecified},
		{"0.1.2.3", nil, RefusedUnspecified},
		{"::", nil, RefusedUnspecified},
		{"224.0.0.1", nil, RefusedMulticast},
		{"239.255.255.250", nil, RefusedMulticast},
		{"ff02::1", nil, RefusedMulticast},
		{"100.64.0.1", nil, RefusedCGNAT},
		{"100.127.255.254", nil, RefusedCGNAT},
		{"100.128.0.1", nil, ""},
		{"192.0.2.10", nil, RefusedReserved},
		{"198.18.0.1", nil, RefusedReserved},
		{"240.0.0.1", nil, RefusedReserved},
		{"255.255.255.255", nil, RefusedReserved},
		{"2001:db8::1", nil, RefusedReserved},
		{"2001::1", nil, RefusedReserved}, // Teredo
		{"100::1", nil, RefusedReserved},
		{"::127.0.0.1", nil, RefusedReserved}, // IPv4-compatible, deprecated
		{"4000::1", nil, RefusedReserved},     // outside global unicast
		{"127.0.0.1", loop, ""},
		{"::1", loop, ""},
		{"::ffff:127.0.0.1", loop, ""},
		{"10.1.2.3", loop, RefusedPrivate},
		{"10.1.2.3", []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, ""},
		{"10.2.0.1", []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, RefusedPrivate},
		{"fd00:ec2::254", []netip.Prefix{netip.MustParsePrefix("fd00::/8")}, ""},
		{"64:ff9b::a00:1", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, ""},
	} {
		e := checkAddr(netip.MustParseAddr(c.ip), c.allowed)
		got := ""
		if e != nil {
			got = e.Reason
			if !strings.Contains(e.Error(), "not in the allowed ranges") {
				t.Errorf("%s: detail %q", c.ip, e.Error())
			}
		}
		if got != c.want {
			t.Errorf("%s (allowed %v): %q, want %q (%v)", c.ip, c.allowed, got, c.want, e)
		}
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs(" 127.0.0.0/8, ::1 ,10.1.2.3/16,")
	if err != nil || len(got) != 3 || got[0].String() != "127.0.0.0/8" || got[1].String() != "::1/128" || got[2].String() != "10.1.0.0/16" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := ParseCIDRs("10.0.0.0/33"); err == nil {
		t.Fatal("a /33 was accepted")
	}
	if _, err := ParseCIDRs("localhost"); err == nil {
		t.Fatal("a name was accepted")
	}
}

// target is a loopback server counting what reaches it.
type target struct {
	srv     *httptest.Server
	hits    atomic.Int32
	referer atomic.Value
}

// listenTarget serves h on addr ("127.0.0.2:0" is a second loopback
// address, outside an allowed 127.0.0.1/32).
func listenTarget(t *testing.T, addr string, h http.HandlerFunc) *target {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	tg := &target{}
	tg.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.hits.Add(1)
		tg.referer.Store(r.Header.Get("Referer"))
		h(w, r)
	}))
	tg.srv.Listener.Close()
	tg.srv.Listener = ln
	tg.srv.Start()
	t.Cleanup(tg.srv.Close)
	return tg
}

// A media link pointing, directly or through a redirect, at an address the
// policy does not allow is never fetched: the record says refused with the
// reason, the evidence document keeps the link and the refusal, and the
// refusal is counted. Plain http needs AllowHTTP; an allowed range works,
// and no Referer is sent.
func TestMediaLinksToInternalAddressesAreRefused(t *testing.T) {
	schema := schematest.Compile(t)
	jpg := testJPEG(t, 5)
	metadata := listenTarget(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(jpg) // what a metadata service answers, stored as "evidence" if fetched
	})
	cdn := listenTarget(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/to-metadata/"):
			http.Redirect(w, r, metadata.srv.URL+"/latest/meta-data/iam/x.jpg", http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/hop/"):
			http.Redirect(w, r, cdn2URL(r), http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/loop/"):
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		default:
			w.Header().Set("Content-Type", "image/jpeg")
			w.Write(jpg)
		}
	})
	cdnURL := cdn.srv.URL
	allowLocal := MediaPolicy{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, AllowHTTP: true}
	for _, c := range []struct {
		name       string
		policy     MediaPolicy
		link       string
		status     string
		reason     string // in the record's reason
		metric     string // refusal reason label
		cdnHits    int32
		metaHits   int32
		wantStored bool
	}{
		{"redirect to metadata", allowLocal, cdnURL + "/to-metadata/a.jpg", "refused", "127.0.0.2 is loopback", RefusedLoopback, 1, 0, false},
		{"direct link to a disallowed address", allowLocal, metadata.srv.URL + "/latest/a.jpg", "refused", "127.0.0.2 is loopback", RefusedLoopback, 0, 0, false},
		{"loopback by default", MediaPolicy{AllowHTTP: true}, cdnURL + "/a.jpg", "refused", "127.0.0.1 is loopback", RefusedLoopback, 0, 0, false},
		// A name is checked by what it resolves to, at dial time.
		{"a name resolving to loopback", MediaPolicy{AllowHTTP: true}, "http://localhost:" + cdn.srv.URL[strings.LastIndexByte(cdn.srv.URL, ':')+1:] + "/a.jpg", "refused", "is loopback", RefusedLoopback, 0, 0, false},
		{"http without the flag", MediaPolicy{AllowedCIDRs: allowLocal.AllowedCIDRs}, cdnURL + "/a.jpg", "refused", "plain http", RefusedScheme, 0, 0, false},
		{"too many redirects", allowLocal, cdnURL + "/loop/a.jpg", "refused", "more than 3 redirects", RefusedRedirects, 4, 0, false},
		{"an allowed range works", allowLocal, cdnURL + "/hop/a.jpg", "stored", "", "", 2, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cdn.hits.Store(0)
			metadata.hits.Store(0)
			cdn.referer.Store("")
			store := objstore.NewMemory()
			reg := prometheus.NewRegistry()
			a := newTest(t, store, NewMediaClient(c.policy))
			a.m = NewMetrics(reg)
			body := mustJSON(t, map[string]any{"success": true, "log_id": "1", "result": map[string]any{"images": []string{c.link}}})
			rec := archive(t, a, terminal(contract.Baidu, "b-ssrf", contract.OutcomeHarvested), response(contract.Baidu, "b-ssrf", "result/media/query", body))
			if ok, err := schematest.Valid(schema, mustJSON(t, rec)); !ok {
				t.Errorf("record does not validate: %v", err)
			}
			if len(rec.Media) != 1 {
				t.Fatalf("media %+v", rec.Media)
			}
			m := rec.Media[0]
			if m.Status != c.status || !strings.Contains(m.Reason, c.reason) {
				t.Errorf("media %s %q, want %s %q", m.Status, m.Reason, c.status, c.reason)
			}
			if n := metadata.hits.Load(); n != c.metaHits {
				t.Errorf("the metadata server received %d requests, want %d", n, c.metaHits)
			}
			if n := cdn.hits.Load(); n != c.cdnHits {
				t.Errorf("the media server received %d requests, want %d", n, c.cdnHits)
			}
			if ref, _ := cdn.referer.Load().(string); ref != "" {
				t.Errorf("Referer %q sent", ref)
			}
			if c.wantStored != (m.Key != "") {
				t.Errorf("key %q", m.Key)
			}
			if c.metric != "" {
				if v := counter(t, reg, "faceharvest_archiver_media_refused_total", "reason", c.metric); v != 1 {
					t.Errorf("faceharvest_archiver_media_refused_total{reason=%q} = %v, want 1", c.metric, v)
				}
				if strings.Contains(m.Reason, c.link) || strings.Contains(strings.Join(rec.Problems, " "), "/latest/") {
					t.Errorf("a link leaked into the record: %q %q", m.Reason, rec.Problems)
				}
				rc, err := store.Get(context.Background(), rec.Evidence.Key)
				if err != nil {
					t.Fatal(err)
				}
				ev, _ := io.ReadAll(rc)
				if !strings.Contains(string(ev), `"source_url":"`+c.link) || !strings.Contains(string(ev), `"status":"refused"`) {
					t.Errorf("the evidence document lacks the link or the refusal: %s", ev)
				}
			}
		})
	}
}

// cdn2URL sends /hop/x to /x on the same (allowed) server.
func cdn2URL(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, "/hop") }

// counter reads one labelled counter from reg (0 when absent).
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
