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

func TestParseNAT(t *testing.T) {
	out := `B has A's chain                                       799
e2e/nat.sh: start to direct connection (B, cold): 760 ms
e2e/nat.sh: PASS
`
	got, err := parseNAT(out)
	if err != nil || got != 760 {
		t.Fatalf("parsed %v, %v; want 760", got, err)
	}
	if _, err := parseNAT("e2e/nat.sh: PASS\n"); err == nil {
		t.Fatal("output without the line parsed")
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

func TestRowZeroTarget(t *testing.T) {
	if got := (row{Value: 0, Zero: true}).status(); got != "ok" {
		t.Errorf("zero against a zero target: %q", got)
	}
	if got := (row{Value: 3, Zero: true}).status(); got != "**missed**" {
		t.Errorf("3 against a zero target: %q", got)
	}
	if got := (row{Value: 3, Zero: true}).target(); got != "0" {
		t.Errorf("zero target shown as %q", got)
	}
}

func TestParseLayouts(t *testing.T) {
	got, err := parseLayouts("1x60, 3x20")
	if err != nil || len(got) != 2 || got[0] != (crowdLayout{1, 60}) || got[1] != (crowdLayout{3, 20}) {
		t.Fatalf("parseLayouts = %v, %v", got, err)
	}
	if got, err := parseLayouts("off"); err != nil || got != nil {
		t.Fatalf("off = %v, %v", got, err)
	}
	for _, bad := range []string{"60", "1x61", "9x10", "1x1", "ax2", "1x60,"} {
		if _, err := parseLayouts(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseCrowd(t *testing.T) {
	out := `[crowd 12:00:00.000] idle: ...
e2e/crowd.sh: MISSED TARGETS
CROWD_RESULT {"nodes":60,"lans":1,"min_peers":8,"connect_ms":-1,"connect_timeout_ms":90000,"at_target":{"peers_min":20,"peers_median":37,"peers_max":45,"enough":60,"synced":8,"answered":60,"isolated":0,"components":1},"propagation":{"blocks":101,"timed":100,"p50_ms":179,"p95_ms":1681,"max_ms":3736},"idle":{"seconds":60,"conns_opened":2,"conns_closed":1,"lines_warn_error":0,"cpu_pct_max":1.91},"addresses":{"self_dials":13128,"loopback_status_nodes":60,"mdns_records":60,"mdns_loopback_records":60},"disturbance":{"kill":{"timed":20,"p95_ms":1069},"join_ms":2324,"join":{"timed":20,"p95_ms":727},"others_warn_error":0}}
[crowd.sh] logs kept in /tmp/x
`
	r, err := parseCrowd(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Nodes != 60 || r.ConnectMS != -1 || r.Prop.P95 != 1681 || r.Addrs.SelfDials != 13128 || r.Disturb == nil || r.Disturb.JoinMS != 2324 {
		t.Fatalf("parsed %+v", r)
	}
	rows := crowdRows(crowdLayout{1, 60}, r, "cmd")
	byFigure := map[string]row{}
	for _, x := range rows {
		byFigure[x.Figure] = x
	}
	c := byFigure["LAN of 60 nodes: every node >= 8 peers and synced, by its own answers, after the last start"]
	if c.Value != 90000 || c.status() != "**missed**" {
		t.Errorf("connect row for a run that never connected: %+v", c)
	}
	if x := byFigure["LAN of 60 nodes: idle 60 s: connections opened and closed, all nodes"]; x.Value != 3 || x.status() != "**missed**" {
		t.Errorf("churn row: %+v", x)
	}
	if x := byFigure["LAN of 60 nodes: idle 60 s: WARN and ERROR lines, all nodes"]; x.status() != "ok" {
		t.Errorf("no WARN lines, not ok: %+v", x)
	}
	if _, err := parseCrowd("e2e/crowd.sh: FAIL\n"); err == nil {
		t.Fatal("output without CROWD_RESULT parsed")
	}
}

// TestParseSync reads e2e/sync.sh's result line and the smallest share.
func TestParseSync(t *testing.T) {
	out := "[sync.sh] synced\nSYNC_RESULT {\"blocks\":100,\"seconds\":2,\"bytes\":1000,\"blocks_per_s\":50,\"seeders\":3,\"sources\":{\"a\":50,\"b\":30,\"c\":20}}\n"
	r, err := parseSync(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Seconds != 2 || r.Bytes != 1000 || len(r.Sources) != 3 {
		t.Fatalf("parsed %+v", r)
	}
	if got := r.minShare(); got != 0.2 {
		t.Fatalf("min share %v, want 0.2", got)
	}
	r.Seeders = 4 // one seeder sent nothing
	if got := r.minShare(); got != 0 {
		t.Fatalf("min share with a silent seeder %v, want 0", got)
	}
	if _, err := parseSync("no result here"); err == nil {
		t.Fatal("no error without a SYNC_RESULT line")
	}
}
