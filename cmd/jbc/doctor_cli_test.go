package main

import (
	"encoding/json"
	"strings"
	"testing"
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
