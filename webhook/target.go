package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/licenseops/licenseops/licensing"
)

// metadataHosts are the names of cloud metadata services; their addresses
// are refused as well (refusedAddr), this is for the name itself.
var metadataHosts = map[string]bool{"metadata.google.internal": true, "metadata": true, "metadata.goog": true}

// awsMetadataV6 is the IPv6 address of the EC2 instance metadata service,
// a unique local address that no other rule catches.
var awsMetadataV6 = netip.MustParseAddr("fd00:ec2::254")

// refusedAddr says why an address may never be a webhook's target, or "".
// Link-local covers 169.254.169.254, the metadata service of most clouds.
// Private (RFC 1918, unique local) addresses are allowed: a partner's
// receiver may be on its own network, reached over a VPN. Loopback is
// allowed too, for a receiver on the same host (a local relay, tests).
func refusedAddr(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "not an IP address"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip == awsMetadataV6:
		return "a cloud metadata service"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local (cloud metadata services live there)"
	case ip.IsMulticast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "a multicast or broadcast address"
	}
	return ""
}

// isLoopbackHost reports whether host (a URL's hostname) is loopback by
// its name or address.
func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CheckURL validates a webhook URL as given: an absolute https URL (http
// too for loopback hosts, or for every host when allowHTTP is set), no
// credentials, and a host that is not refused by name or literal address.
// Names are resolved and checked again on every delivery (Sender), since
// what a name resolves to may change after this check.
func CheckURL(raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return licensing.Errorf(licensing.CodeInvalidRequest, "url must be an absolute URL such as https://hooks.example.com/licenseops, not %q", licensing.Truncate(raw, 100))
	}
	if u.User != nil {
		return licensing.Errorf(licensing.CodeInvalidRequest, "url must not contain a user name or password; the webhook's signature authenticates licenseops to the receiver")
	}
	if u.Fragment != "" {
		return licensing.Errorf(licensing.CodeInvalidRequest, "url must not have a #fragment; it is never sent")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (allowHTTP || isLoopbackHost(host)):
	case u.Scheme == "http":
		return licensing.Errorf(licensing.CodeWebhookTargetRefused, "url must use https: events carry customer data and plain http is only allowed to a loopback host (localhost, 127.0.0.1, ::1)")
	default:
		return licensing.Errorf(licensing.CodeInvalidRequest, "url must be an https URL, not %s", licensing.Truncate(u.Scheme, 20))
	}
	if metadataHosts[host] {
		return licensing.Errorf(licensing.CodeWebhookTargetRefused, "url points at %s, a cloud metadata service; give your receiver's own address", host)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := refusedAddr(ip); why != "" {
			return licensing.Errorf(licensing.CodeWebhookTargetRefused, "url points at %s, %s, which webhooks may never call; give your receiver's own address", host, why)
		}
	}
	return nil
}

// ErrRefusedAddress is the error of a delivery whose host resolved to an
// address webhooks may never call.
var ErrRefusedAddress = errors.New("refused address")

// guardDial is the net.Dialer Control hook of the sender: it runs on the
// address actually being connected to, after name resolution, so a name
// that resolves (or re-resolves, DNS rebinding) to a refused address is
// refused before any packet leaves.
func guardDial(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %q", ErrRefusedAddress, address)
	}
	if why := refusedAddr(ap.Addr()); why != "" {
		return fmt.Errorf("%w: %s is %s", ErrRefusedAddress, ap.Addr(), why)
	}
	return nil
}
