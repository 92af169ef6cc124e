package discovery

import (
	"net"
	"slices"
	"testing"
)

// TestMDNSAddrs: the interfaces whose change restarts mDNS are those up,
// multicast-capable and holding an IPv4 or a non-link-local IPv6 address.
func TestMDNSAddrs(t *testing.T) {
	ipn := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	up := net.FlagUp | net.FlagMulticast
	for _, c := range []struct {
		name  string
		flags net.Flags
		addrs []net.Addr
		want  []string
	}{
		{"LAN interface", up, []net.Addr{ipn("10.77.1.3/24"), ipn("fe80::1/64")}, []string{"10.77.1.3/24"}},
		{"global IPv6", up, []net.Addr{ipn("2001:db8::5/64")}, []string{"2001:db8::5/64"}},
		{"veth with only link-local IPv6", up, []net.Addr{ipn("fe80::a8c1:abff:fe12:3456/64")}, nil},
		{"down", net.FlagMulticast, []net.Addr{ipn("10.77.1.3/24")}, nil},
		{"no multicast", net.FlagUp, []net.Addr{ipn("10.77.1.3/24")}, nil},
		{"loopback", up | net.FlagLoopback, []net.Addr{ipn("127.0.0.1/8"), ipn("::1/128")}, nil},
		{"no address", up, nil, nil},
	} {
		if got := mdnsAddrs(c.flags, c.addrs); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
