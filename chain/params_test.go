package chain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// The built-in networks, pinned. A change to either is a new network (or a
// fork of the old one) and must be made on purpose: update these with it.
const (
	mainNetID   = "727c5957421f286e205f51920695fa8bf0559f9ff1ba510e54b1722bfd14df36"
	testNetID   = testGenesisHash
	mainNetJSON = `{"name":"jbc-main","genesis":{"index":0,"timestamp":1795392000,"data":"jbc genesis: the JackBlockChain carried on, 2026-11-23","prev_hash":"","hash":"727c5957421f286e205f51920695fa8bf0559f9ff1ba510e54b1722bfd14df36","nonce":0},"bits":22,"spacing":"30s","retarget_interval":20,"max_retarget_step":2,"min_bits":16,"max_bits":255,"max_data_size":65536,"median_time_blocks":11,"max_future_drift":"2h0m0s"}`
	testNetJSON = `{"name":"jbc-test","genesis":{"index":0,"timestamp":1577836800,"data":"jbc test network","prev_hash":"","hash":"821c2b47978926c2a7df3e866fab6e98aa84b0e0fa802110191bdcba54319d30","nonce":0},"bits":1,"spacing":"0s","retarget_interval":0,"max_retarget_step":0,"min_bits":1,"max_bits":1,"max_data_size":65536,"median_time_blocks":11,"max_future_drift":"2h0m0s"}`
)

func TestBuiltinNetworks(t *testing.T) {
	for _, tt := range []struct {
		p        *chain.Params
		id, json string
		names    []string
	}{
		{chain.MainNet(), mainNetID, mainNetJSON, []string{"main", "jbc-main"}},
		{chain.TestNet(), testNetID, testNetJSON, []string{"test", "jbc-test"}},
	} {
		if got := tt.p.ID().String(); got != tt.id {
			t.Errorf("%s: ID = %s, want %s", tt.p.Name, got, tt.id)
		}
		if got := refHash(&tt.p.Genesis).String(); got != tt.id {
			t.Errorf("%s: genesis hashes to %s, want %s", tt.p.Name, got, tt.id)
		}
		if err := tt.p.Validate(); err != nil {
			t.Errorf("%s: %v", tt.p.Name, err)
		}
		enc, err := json.Marshal(tt.p)
		if err != nil {
			t.Fatal(err)
		}
		if string(enc) != tt.json {
			t.Errorf("%s: genesis file\n%s\nwant\n%s", tt.p.Name, enc, tt.json)
		}
		for _, name := range tt.names {
			p, err := chain.Network(name)
			if err != nil || !reflect.DeepEqual(p, tt.p) {
				t.Errorf("Network(%q) = %+v, %v", name, p, err)
			}
		}
	}
	for _, name := range []string{"", "Main", "testnet", "jbc"} {
		if p, err := chain.Network(name); err == nil {
			t.Errorf("Network(%q) = %s, want an error", name, p.Name)
		}
	}
	// Each call returns a fresh value: changing one cannot change the next.
	p := chain.TestNet()
	p.Bits = 9
	if chain.TestNet().Bits != 1 {
		t.Error("TestNet shares state between calls")
	}
}

func TestParamsJSONRoundTrip(t *testing.T) {
	private, err := chain.NewParams("private", "our genesis ✓", 1700000000, 12, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := chain.NewParams("fixed", "", -5, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*chain.Params{chain.MainNet(), chain.TestNet(), private, fixed} {
		enc, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var got chain.Params
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if !reflect.DeepEqual(&got, p) {
			t.Errorf("%s round trip:\n%+v\nwant\n%+v", p.Name, got, *p)
		}
	}
}

func TestParamsJSONRefused(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"spacing unparsable", `"spacing":"30s"`, `"spacing":"30 parsecs"`, "spacing"},
		{"spacing missing", `"spacing":"30s",`, ``, "spacing"},
		{"drift unparsable", `"max_future_drift":"2h0m0s"`, `"max_future_drift":"soon"`, "max_future_drift"},
		{"genesis hash tampered", `"hash":"727c`, `"hash":"727d`, "does not match"},
		{"genesis hash uppercase", `"hash":"727c5957421f`, `"hash":"727C5957421F`, "hex"},
		{"genesis missing field", `,"nonce":0},`, `},`, "missing field nonce"},
		{"bits too low", `"bits":22`, `"bits":15`, "bits 15"},
		{"bits not a byte", `"bits":22`, `"bits":256`, "bits"},
		{"median window zero", `"median_time_blocks":11`, `"median_time_blocks":0`, "median_time_blocks"},
		{"not an object", mainNetJSON, `[]`, "cannot unmarshal"},
	}
	for _, tt := range tests {
		in := strings.Replace(mainNetJSON, tt.old, tt.new, 1)
		if in == mainNetJSON && tt.old != mainNetJSON {
			t.Fatalf("%s: %q not found in the genesis file", tt.name, tt.old)
		}
		p := chain.TestNet()
		err := json.Unmarshal([]byte(in), p)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one about %q", tt.name, err, tt.want)
		}
		if !reflect.DeepEqual(p, chain.TestNet()) {
			t.Errorf("%s: failed decode changed the params", tt.name)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *chain.Params)
		want   string // "" when valid
	}{
		{"mainnet", func(p *chain.Params) {}, ""},
		{"genesis index", func(p *chain.Params) { p.Genesis.Index = 1; p.Genesis.Hash = p.Genesis.ComputeHash() }, "genesis index"},
		{"genesis prev_hash", func(p *chain.Params) { p.Genesis.PrevHash = p.Genesis.Hash; p.Genesis.Hash = p.Genesis.ComputeHash() }, "prev_hash"},
		{"genesis hash", func(p *chain.Params) { p.Genesis.Nonce = 1 }, "does not match"},
		{"genesis data changed", func(p *chain.Params) { p.Genesis.Data += "!" }, "does not match"},
		{"min above max", func(p *chain.Params) { p.MinBits, p.MaxBits = 30, 20 }, "min_bits"},
		{"bits below min", func(p *chain.Params) { p.Bits = 15 }, "outside"},
		{"bits above max", func(p *chain.Params) { p.MaxBits = 21 }, "outside"},
		{"bits at min", func(p *chain.Params) { p.Bits = 16 }, ""},
		{"negative spacing", func(p *chain.Params) { p.Spacing = -time.Second }, "spacing"},
		{"sub-second spacing", func(p *chain.Params) { p.Spacing = 999 * time.Millisecond }, "spacing"},
		{"one-second spacing", func(p *chain.Params) { p.Spacing = time.Second }, ""},
		{"retarget interval 1", func(p *chain.Params) { p.RetargetInterval = 1 }, "retarget interval"},
		{"retarget interval 2", func(p *chain.Params) { p.RetargetInterval = 2 }, ""},
		{"retarget interval 10000", func(p *chain.Params) { p.RetargetInterval = 10000 }, ""},
		// A huge interval would make every Validator allocate a window of
		// that many timestamps.
		{"retarget interval 10001", func(p *chain.Params) { p.RetargetInterval = 10001 }, "retarget interval"},
		{"retarget interval 1e12", func(p *chain.Params) { p.RetargetInterval = 1e12 }, "retarget interval"},
		{"fixed difficulty ignores interval", func(p *chain.Params) { p.Spacing = 0; p.RetargetInterval = 0 }, ""},
		{"negative data size", func(p *chain.Params) { p.MaxDataSize = -1 }, "max_data_size"},
		{"zero data size", func(p *chain.Params) { p.MaxDataSize = 0 }, ""},
		{"median window 0", func(p *chain.Params) { p.MedianTimeBlocks = 0 }, "median_time_blocks"},
		{"median window 1", func(p *chain.Params) { p.MedianTimeBlocks = 1 }, ""},
		{"median window 1000", func(p *chain.Params) { p.MedianTimeBlocks = 1000 }, ""},
		{"median window 1001", func(p *chain.Params) { p.MedianTimeBlocks = 1001 }, "median_time_blocks"},
		{"zero drift", func(p *chain.Params) { p.MaxFutureDrift = 0 }, "max_future_drift"},
		{"negative drift", func(p *chain.Params) { p.MaxFutureDrift = -time.Hour }, "max_future_drift"},
	}
	for _, tt := range tests {
		p := chain.MainNet()
		tt.mutate(p)
		err := p.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one about %q", tt.name, err, tt.want)
		}
	}
}

func TestNewParams(t *testing.T) {
	p, err := chain.NewParams("fixed", "g", 1700000000, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := chain.Block{Data: "g", Timestamp: 1700000000}
	want.Hash = refHash(&want)
	if p.Genesis != want || chain.NewGenesis("g", 1700000000) != want {
		t.Errorf("genesis %+v, want %+v", p.Genesis, want)
	}
	// New networks follow the anchored time rules and allow a timestamp
	// equal to the median; with a fixed difficulty the drift stays 2 h.
	if p.Bits != 8 || p.MinBits != 8 || p.MaxBits != 8 || p.Spacing != 0 || p.TimeWindow() != medianTimeBlocks ||
		p.MaxDataSize != maxDataSize || p.MedianTimeBlocks != medianTimeBlocks || p.MaxFutureDrift != maxFutureDrift*time.Second ||
		p.TimeRules != chain.TimeRulesAnchored || !p.MedianTimeInclusive {
		t.Errorf("fixed params %+v", p)
	}

	p, err = chain.NewParams("retarget", "g", 1700000000, 8, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// The window reaches back to the previous window's last block: 21
	// timestamps. The drift is one window's target time, 20 minutes.
	if p.Bits != 8 || p.MinBits != 1 || p.MaxBits != 255 || p.RetargetInterval != 20 || p.MaxRetargetStep != 2 || p.TimeWindow() != 21 ||
		p.TimeRules != chain.TimeRulesAnchored || !p.MedianTimeInclusive || p.MaxFutureDrift != 20*time.Minute {
		t.Errorf("retargeting params %+v", p)
	}
	for _, tt := range []struct {
		spacing time.Duration
		want    time.Duration
	}{
		{time.Second, 20 * time.Second},
		{10 * time.Second, 200 * time.Second},
		{6 * time.Minute, 2 * time.Hour},
		{7 * time.Minute, 2 * time.Hour},
		{1 << 62, 2 * time.Hour},
	} {
		p, err := chain.NewParams("drift", "g", 1700000000, 8, tt.spacing)
		if err != nil {
			t.Fatal(err)
		}
		if p.MaxFutureDrift != tt.want {
			t.Errorf("spacing %s: drift %s, want %s", tt.spacing, p.MaxFutureDrift, tt.want)
		}
	}
	if p, err := chain.NewParams("zero", "g", 0, 0, time.Minute); err != nil || p.MinBits != 0 {
		t.Errorf("zero bits: %+v, %v", p, err)
	}
	if _, err := chain.NewParams("bad", "g", 0, 8, time.Millisecond); err == nil {
		t.Error("sub-second spacing accepted")
	}

	// TimeWindow covers the median window and, when retargeting, the
	// retarget interval.
	p = chain.MainNet()
	p.RetargetInterval = 5
	if got := p.TimeWindow(); got != 11 {
		t.Errorf("TimeWindow with interval 5 = %d, want 11", got)
	}
	p.Spacing = 0
	p.RetargetInterval = 50
	if got := p.TimeWindow(); got != 11 {
		t.Errorf("TimeWindow without retargeting = %d, want 11", got)
	}

	g := chain.MainNet().GenesisEntry()
	if g.Hash.String() != mainNetID || g.Height != 0 || g.Time != 1795392000 || g.Bits != 22 ||
		g.Work.Cmp(workOf(22)) != 0 || !g.Parent.IsZero() {
		t.Errorf("mainnet genesis entry %+v", g)
	}
}

func TestMedianTimeInclusive(t *testing.T) {
	p := chain.TestNet()
	g := p.GenesisEntry()
	recent := []int64{g.Time}
	mineAt := func(ts int64) chain.Block {
		b := chain.Block{Index: 1, Timestamp: ts, Data: "same second", PrevHash: g.Hash}
		for b.Hash = b.ComputeHash(); chain.LeadingZeroBits(&b.Hash) < int(p.Bits); b.Hash = b.ComputeHash() {
			b.Nonce++
		}
		return b
	}
	same, before := mineAt(g.Time), mineAt(g.Time-1)
	var re *chain.RuleError
	if _, err := p.CheckBlock(&same, &g, recent, g.Time); !errors.As(err, &re) || re.Code != chain.ErrTimeTooOld {
		t.Fatalf("strict rule, timestamp equal to the median: %v", err)
	}
	p.MedianTimeInclusive = true
	if _, err := p.CheckBlock(&same, &g, recent, g.Time); err != nil {
		t.Fatalf("inclusive rule, timestamp equal to the median: %v", err)
	}
	if _, err := p.CheckBlock(&before, &g, recent, g.Time); !errors.As(err, &re) || re.Code != chain.ErrTimeTooOld {
		t.Fatalf("inclusive rule, timestamp before the median: %v", err)
	}
	// The flag survives the genesis file, and is absent when false.
	js, _ := json.Marshal(p)
	var q chain.Params
	if err := json.Unmarshal(js, &q); err != nil || !q.MedianTimeInclusive {
		t.Fatalf("round trip lost the flag: %v %s", err, js)
	}
	js, _ = json.Marshal(chain.TestNet())
	if strings.Contains(string(js), "median_time_inclusive") {
		t.Fatalf("false flag written: %s", js)
	}
}
