package main

import "testing"

func TestParseBenchLine(t *testing.T) {
	r, ok := parseBenchLine("BenchmarkSync/blocks=100000-2         \t       1\t2492198536 ns/op\t     42093 blocks/s\t       111.9 peak-RSS-MB")
	if !ok {
		t.Fatal("result line not parsed")
	}
	if r.Name != "BenchmarkSync/blocks=100000" || r.N != 1 || r.Metrics["blocks/s"] != 42093 || r.Metrics["peak-RSS-MB"] != 111.9 || r.Metrics["ns/op"] != 2492198536 {
		t.Fatalf("parsed %+v", r)
	}
	for _, line := range []string{
		"BenchmarkSync",
		"BenchmarkSync/blocks=100000",
		"    bench_test.go:421: sync of 100000 blocks: 2.38 s",
		"BenchmarkX-2 \t 1\t 12 ns/op\t 7", // odd field count
		"PASS",
	} {
		if _, ok := parseBenchLine(line); ok {
			t.Errorf("%q parsed as a result line", line)
		}
	}
}

func TestParseLAN(t *testing.T) {
	out := `[lan.sh] D: synced in 1500 ms and found A through the DHT rendezvous

e2e/lan.sh: time from start to synced              ms
B (same LAN, mDNS)                                412
C (other LAN, DHT from A's multiaddr)             987
D (other LAN, DHT from C's multiaddr)            1500
e2e/lan.sh: PASS
`
	got, err := parseLAN(out)
	if err != nil {
		t.Fatal(err)
	}
	if got != (lanTimes{MDNS: 412, DHT: 987, DHTRendezvous: 1500}) {
		t.Fatalf("parsed %+v", got)
	}
	if _, err := parseLAN("e2e/lan.sh: PASS\n"); err == nil {
		t.Fatal("output without the summary parsed")
	}
}

func TestParseLive(t *testing.T) {
	out := `[live.sh 22:00:00] 1: propagation ... p95=99 ms
e2e/live.sh: 21-bit network, 5 nodes x 1 thread                value
mDNS full mesh after start (ms)                                  812
1: blocks mined / on final chain / stale                    80/75/5
1: propagation p50 (ms)                                           31
1: propagation p95 (ms)                                           64
2: heights when healed: side a (3 nodes) / side b (2)        120/110
e2e/live.sh: PASS
`
	f, err := parseLive(out)
	if err != nil {
		t.Fatal(err)
	}
	if f[liveP95] != 64 || f[liveP50] != 31 || f[liveMesh] != 812 {
		t.Fatalf("parsed %v", f)
	}
	if _, ok := f["1: blocks mined / on final chain / stale"]; ok {
		t.Fatal("a row of several numbers parsed as one")
	}
	if _, err := parseLive("[live.sh] FAIL: something\n"); err == nil {
		t.Fatal("output without the summary parsed")
	}
	// A run that failed after phase 1: its log lines still count.
	log := `[live.sh 22:37:07] 1: full mesh after 1493 ms; mining at least 20s and 30 blocks, entries submitted at nodes 1..5
[live.sh 22:37:32] 1: propagation to all 4 other nodes, final-chain blocks mined after the mesh formed: n=80 p50=37 ms p95=178 ms max=484 ms (2 untimed)
[live.sh 22:38:37] FAIL: line 584: exited 1
`
	f, err = parseLive(log)
	if err != nil {
		t.Fatal(err)
	}
	if f[liveP95] != 178 || f[liveP50] != 37 || f[liveTimedN] != 80 || f[liveMesh] != 1493 {
		t.Fatalf("parsed from the log lines: %v", f)
	}
}

func TestPct(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	if got := pct(v, 95); got != 5 {
		t.Fatalf("p95 of 1..5 = %v, want 5", got)
	}
	if got := pct(v, 50); got != 3 {
		t.Fatalf("p50 of 1..5 = %v, want 3", got)
	}
	if got := pct([]float64{7}, 95); got != 7 {
		t.Fatalf("p95 of one value = %v", got)
	}
}

func TestRowStatus(t *testing.T) {
	for _, c := range []struct {
		r    row
		want string
	}{
		{row{Value: 60000, Target: 50000}, "ok"},
		{row{Value: 40000, Target: 50000}, "**missed**"},
		{row{Value: 150, Target: 200, Lower: true}, "ok"},
		{row{Value: 250, Target: 200, Lower: true}, "**missed**"},
		{row{Value: 0, Target: 25, Lower: true}, "ok"},
		{row{Value: 0, Target: 25}, "**missed**"},
		{row{Value: 3}, "-"},
		{row{Skipped: "not root"}, "skipped: not root"},
	} {
		if got := c.r.status(); got != c.want {
			t.Errorf("%+v: status %q, want %q", c.r, got, c.want)
		}
	}
	if got := format(12.4, "%"); got != "12 %" {
		t.Fatalf("format %% = %q", got)
	}
	if got := thousands(1234567.4); got != "1,234,567" {
		t.Fatalf("thousands = %q", got)
	}
}
