package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/node/discovery"
	"github.com/jbc-project/jbc/node/peering"
)

// TestDoctorOffline runs jbc doctor with no node answering: it must say it
// checked offline and report the DHT as the node's flags would run it, not
// as off.
func TestDoctorOffline(t *testing.T) {
	d := t.TempDir()
	// Port 1 on loopback: nothing listens there, the dial is refused.
	out := mustJBC(t, "--datadir", d, "doctor", "--api", "127.0.0.1:1", "--listen", "/ip4/127.0.0.1/tcp/4747")
	if !strings.Contains(out, "No node answers at 127.0.0.1:1") {
		t.Fatalf("doctor does not say it ran offline:\n%s", out)
	}
	if !strings.Contains(out, "DHT             on (server mode); not checked") {
		t.Fatalf("offline doctor with default flags does not report the DHT on:\n%s", out)
	}
	out = mustJBC(t, "--datadir", d, "doctor", "--api", "127.0.0.1:1", "--listen", "/ip4/127.0.0.1/tcp/4747", "--no-dht")
	if !strings.Contains(out, "DHT             off") {
		t.Fatalf("offline doctor with --no-dht does not report the DHT off:\n%s", out)
	}
	var r struct {
		Offline    bool `json:"offline"`
		OfflineDHT bool `json:"offline_dht"`
	}
	if err := json.Unmarshal([]byte(mustJBC(t, "--datadir", d, "--json", "doctor", "--api", "127.0.0.1:1", "--listen", "/ip4/127.0.0.1/tcp/4747")), &r); err != nil || !r.Offline || !r.OfflineDHT {
		t.Fatalf("doctor --json offline: %+v, %v", r, err)
	}
}

// TestDoctorLoopbackChosen: the README's local network listens on
// loopback with mDNS off; doctor takes that as chosen (a note), not as a
// problem, while with mDNS on it stays a problem.
func TestDoctorLoopbackChosen(t *testing.T) {
	d := t.TempDir()
	out := mustJBC(t, "--datadir", d, "doctor", "--api", "127.0.0.1:1", "--listen", "/ip4/127.0.0.1/tcp/4747", "--no-mdns")
	if !strings.Contains(out, "Note: The node listens on loopback only") || strings.Contains(out, ". The node listens on loopback only") {
		t.Fatalf("loopback with --no-mdns is not a note, or still a problem:\n%s", out)
	}
	out = mustJBC(t, "--datadir", d, "doctor", "--api", "127.0.0.1:1", "--listen", "/ip4/127.0.0.1/tcp/4747")
	if !strings.Contains(out, ". The node listens on loopback only") {
		t.Fatalf("loopback with mDNS on is not a problem:\n%s", out)
	}
}

// TestDoctorPrintsBansAndCauses: the text report lists banned peers with
// why and until when, a dial's real cause with when it came, and notes.
func TestDoctorPrintsBansAndCauses(t *testing.T) {
	var buf strings.Builder
	now := time.Now()
	printReport(&app{stdout: &buf}, discovery.Report{
		Bootstrap: []discovery.PeerCheck{{ID: "12D3KooWBoot", Source: peering.SourceBootstrap,
			Error: "/ip4/127.0.0.1/tcp/4801: dial tcp4 127.0.0.1:4801: connect: connection refused", ErrorAt: now.Add(-3 * time.Second)}},
		Banned: []discovery.BanCheck{{ID: "12D3KooWBanned", Source: peering.SourceDirect,
			Reason: "on another network (genesis 727c5957421f)", Until: now.Add(time.Hour)}},
		Notes: []string{"The node listens on loopback only."},
	})
	out := buf.String()
	for _, want := range []string{
		"Bootstrap peers (1)\n  12D3KooWBoot bootstrap unreachable: /ip4/127.0.0.1/tcp/4801: dial tcp4 127.0.0.1:4801: connect: connection refused (last dial 3s ago)",
		"Banned peers (1)\n  12D3KooWBanned direct    until " + now.Add(time.Hour).Local().Format(time.TimeOnly) + " (in 1h0m0s): on another network (genesis 727c5957421f)",
		"Note: The node listens on loopback only.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
