package archiver

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Media links come from vendor answers, so the archiver treats them as a
// stranger's: a link (or a redirect, or a DNS answer that changes between
// look-up and dial) must not make it fetch an internal address, such as the
// cloud metadata service, and store the answer as evidence.

// DefaultMaxRedirects bounds the redirects one media download follows.
const DefaultMaxRedirects = 3

// MediaPolicy says which media links the archiver fetches.
type MediaPolicy struct {
	// AllowedCIDRs are non-public ranges fetched anyway: none by default;
	// development allows loopback, where the simulator serves its media.
	AllowedCIDRs []netip.Prefix
	// AllowHTTP permits plain http links (and redirects to them); by default
	// only https is fetched.
	AllowHTTP bool
	// MaxRedirects bounds the redirects of one download (DefaultMaxRedirects
	// when 0; negative: none).
	MaxRedirects int
}

// Refusal reasons: the bounded label of faceharvest_archiver_media_refused_total.
const (
	RefusedLoopback    = "loopback"
	RefusedPrivate     = "private"
	RefusedLinkLocal   = "link_local"
	RefusedMetadata    = "metadata"
	RefusedUnspecified = "unspecified"
	RefusedMulticast   = "multicast"
	RefusedCGNAT       = "cgnat"
	RefusedReserved    = "reserved" // documentation, benchmarking, future use, broadcast, outside IPv6 global unicast
	RefusedScheme      = "scheme"   // plain http without AllowHTTP, or not http(s)
	RefusedRedirects   = "redirects"
)

// RefusedError is a media link the policy does not fetch. Its text names the
// address or the rule, never the link (whose query is a credential).
type RefusedError struct {
	Reason string // one of the Refused* constants
	Detail string
}

func (e *RefusedError) Error() string { return e.Detail }

// NewMediaClient returns the HTTP client that downloads media links under p:
// every address it connects to, for the first request and for every
// redirect, is checked at dial time against the non-public ranges; it uses
// no proxy (the check would see the proxy's address), sends no Referer, and
// follows at most p.MaxRedirects redirects. A refusal is a *RefusedError
// inside the client's error.
func NewMediaClient(p MediaPolicy) *http.Client {
	maxRedirects := p.MaxRedirects
	if maxRedirects == 0 {
		maxRedirects = DefaultMaxRedirects
	}
	allowed := append([]netip.Prefix(nil), p.AllowedCIDRs...)
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error { return checkDial(network, address, allowed) }}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = d.DialContext
	return &http.Client{
		Transport: schemeGuard{next: tr, allowHTTP: p.AllowHTTP},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return &RefusedError{Reason: RefusedRedirects, Detail: fmt.Sprintf("more than %d redirects", max(maxRedirects, 0))}
			}
			req.Header.Del("Referer")
			return nil
		},
	}
}

// schemeGuard refuses plain http (unless allowed) on every request the
// client makes, redirects included.
type schemeGuard struct {
	next      http.RoundTripper
	allowHTTP bool
}

func (g schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Scheme {
	case "https":
	case "http":
		if !g.allowHTTP {
			closeBody(req)
			return nil, &RefusedError{Reason: RefusedScheme, Detail: "plain http refused (only https is allowed)"}
		}
	default:
		closeBody(req)
		return nil, &RefusedError{Reason: RefusedScheme, Detail: "not an http(s) link"}
	}
	return g.next.RoundTrip(req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// checkDial is the dialer's Control: address is the resolved IP and port
// about to be connected.
func checkDial(network, address string, allowed []netip.Prefix) error {
	if !strings.HasPrefix(network, "tcp") {
		return &RefusedError{Reason: RefusedReserved, Detail: "network " + network + " refused"}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Reason: RefusedReserved, Detail: "unparsable address refused"}
	}
	if e := checkAddr(ap.Addr(), allowed); e != nil {
		return e
	}
	return nil
}

// checkAddr refuses an address outside the public internet unless a prefix
// of allowed contains it.
func checkAddr(ip netip.Addr, allowed []netip.Prefix) *RefusedError {
	ip = ip.WithZone("").Unmap()
	for _, p := range allowed {
		if p.Contains(ip) {
			return nil
		}
	}
	reason := classify(ip)
	if reason == "" {
		// NAT64 and 6to4 addresses reach the IPv4 address they embed.
		if v4, ok := embeddedV4(ip); ok {
			if e := checkAddr(v4, allowed); e != nil {
				e.Detail = ip.String() + " embeds " + e.Detail
				return e
			}
		}
		return nil
	}
	what := strings.ReplaceAll(reason, "_", "-")
	switch reason {
	case RefusedMetadata:
		what = "a cloud metadata"
	case RefusedCGNAT:
		what = "a carrier-grade NAT (100.64.0.0/10)"
	case RefusedReserved:
		what = "a reserved"
	}
	return &RefusedError{Reason: reason, Detail: fmt.Sprintf("%s is %s address, not in the allowed ranges", ip, what)}
}

type special struct {
	p      netip.Prefix
	reason string
}

// specials lists the non-public ranges (IANA's special-purpose registries),
// most specific first.
var specials = func() []special {
	var s []special
	add := func(reason string, prefixes ...string) {
		for _, p := range prefixes {
			s = append(s, special{netip.MustParsePrefix(p), reason})
		}
	}
	add(RefusedMetadata, "169.254.169.254/32", "169.254.170.2/32", "100.100.100.200/32", "fd00:ec2::254/128")
	add(RefusedUnspecified, "0.0.0.0/8", "::/128")
	add(RefusedLoopback, "127.0.0.0/8", "::1/128")
	add(RefusedPrivate, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10", "64:ff9b:1::/48")
	add(RefusedLinkLocal, "169.254.0.0/16", "fe80::/10")
	add(RefusedCGNAT, "100.64.0.0/10")
	add(RefusedMulticast, "224.0.0.0/4", "ff00::/8")
	add(RefusedReserved, "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"2001::/23", "2001:db8::/32", "3fff::/20", "100::/64")
	return s
}()

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour      = netip.MustParsePrefix("2002::/16")
)

// classify names the non-public range ip is in, "" for a public address.
func classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return RefusedReserved
	}
	for _, s := range specials {
		if s.p.Contains(ip) {
			return s.reason
		}
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) && !nat64.Contains(ip) {
		return RefusedReserved
	}
	return ""
}

func embeddedV4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// refusal finds a policy refusal inside a client's error.
func refusal(err error) (*RefusedError, bool) {
	var r *RefusedError
	if errors.As(err, &r) {
		return r, true
	}
	return nil, false
}

// ParseCIDRs reads a comma-separated list of CIDR prefixes or single
// addresses (a /32 or /128).
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR prefix nor an address", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
