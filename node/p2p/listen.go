package p2p

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
)

// go-libp2p's TCP transport binds its listeners with SO_REUSEPORT (unless
// LIBP2P_TCP_REUSEPORT=false), so that its outgoing connections can leave
// from the listen port: peers then observe, and record, an address they can
// dial back, which matters behind NAT. The price is that a second process
// binding the same port with SO_REUSEPORT succeeds too, and the kernel
// spreads incoming connections between the two nodes. Turning reuse off
// would lose the first for the sake of the second; instead the node checks
// each listen port itself first with a plain bind (no SO_REUSEPORT), which
// fails whenever any other socket listens there. QUIC binds without
// SO_REUSEPORT, so a taken UDP port fails in go-libp2p anyway; checking it
// here too gives the same plain error.

// ErrAddrInUse: another process already listens on a --listen address.
var ErrAddrInUse = errors.New("another process already listens there")

// CheckListenAddrs refuses listen addresses whose port another socket
// already holds, with an error naming the address and what to do. Port 0
// (any free port) and addresses that are not IP and TCP or UDP are not
// checked; a bind that fails for another reason (no IPv6 on the machine,
// say) is left for the host to report. It binds and closes at once, so a
// process that takes the port in between is not caught.
func CheckListenAddrs(addrs []ma.Multiaddr) error {
	for _, a := range addrs {
		network, hostport, ok := probeAddr(a)
		if !ok {
			continue
		}
		var err error
		if network == "udp" {
			var c net.PacketConn
			if c, err = net.ListenPacket("udp", hostport); err == nil {
				c.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen("tcp", hostport); err == nil {
				l.Close()
			}
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("--listen %s: %w (%s %s): stop that process, or give this node another port (port 0 picks a free one)", a, ErrAddrInUse, network, hostport)
		}
	}
	return nil
}

// probeAddr returns the network and host:port of a listen multiaddr with an
// IP address and a non-zero TCP or UDP port.
func probeAddr(a ma.Multiaddr) (network, hostport string, ok bool) {
	if len(a) < 2 {
		return "", "", false
	}
	ipc, portc := a[0], a[1]
	switch ipc.Protocol().Code {
	case ma.P_IP4, ma.P_IP6:
	default:
		return "", "", false
	}
	switch portc.Protocol().Code {
	case ma.P_TCP:
		network = "tcp"
	case ma.P_UDP:
		network = "udp"
	default:
		return "", "", false
	}
	port, err := strconv.Atoi(portc.Value())
	if err != nil || port == 0 {
		return "", "", false
	}
	return network, net.JoinHostPort(ipc.Value(), portc.Value()), true
}
