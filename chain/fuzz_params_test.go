package chain_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// FuzzParamsJSON decodes arbitrary genesis files, as jbc init --genesis and
// a store's saved parameters are decoded. A file that fails leaves the
// value alone. One that decodes gives parameters that Validate, whose
// genesis hashes (computed independently) to the network ID, and that
// encode to a genesis file decoding to the same parameters and the same
// file. They are usable: a Validator starts on the genesis with a bounded
// window, and at a retarget the difficulty moves at most MaxRetargetStep
// bits, stays within [MinBits, MaxBits], and moves up only when blocks came
// faster than Spacing, down only when slower.
func FuzzParamsJSON(f *testing.F) {
	private, err := chain.NewParams("private", "our genesis ✓", 1700000000, 12, 15*time.Second)
	if err != nil {
		f.Fatal(err)
	}
	fixed, err := chain.NewParams("fixed", "", -5, 3, 0)
	if err != nil {
		f.Fatal(err)
	}
	imported := chain.TestNet()
	imported.MedianTimeInclusive = true
	imported.MaxDataSize = 1 << 20
	for _, p := range []*chain.Params{private, fixed, imported} {
		enc, err := json.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc, int32(1))
	}
	for _, gap := range []int32{0, 1, 30, 31, 600, -5, 1 << 30} {
		f.Add([]byte(mainNetJSON), gap)
	}
	f.Add([]byte(testNetJSON), int32(1))
	for _, edit := range [][2]string{
		{`"spacing":"30s"`, `"spacing":"1ns"`},
		{`"spacing":"30s"`, `"spacing":"-30s"`},
		{`"spacing":"30s"`, `"spacing":"2562047h47m16.854775807s"`},
		{`"spacing":"30s"`, `"spacing":"9223372036854775808ns"`},
		{`"spacing":"30s"`, `"spacing":"1.5s"`},
		{`"retarget_interval":20`, `"retarget_interval":10000`},
		{`"retarget_interval":20`, `"retarget_interval":10001`},
		{`"retarget_interval":20`, `"retarget_interval":1`},
		{`"max_retarget_step":2`, `"max_retarget_step":255`},
		{`"min_bits":16`, `"min_bits":0`},
		{`"min_bits":16`, `"min_bits":23`},
		{`"max_bits":255`, `"max_bits":22`},
		{`"median_time_blocks":11`, `"median_time_blocks":1000`},
		{`"median_time_blocks":11`, `"median_time_blocks":1001`},
		{`"max_data_size":65536`, `"max_data_size":-1`},
		{`"max_data_size":65536`, `"max_data_size":0`},
		{`"max_future_drift":"2h0m0s"`, `"max_future_drift":"0s"`},
		{`"index":0`, `"index":1`},
		{`"prev_hash":""`, `"prev_hash":"` + mainNetID + `"`},
		{`"nonce":0}`, `"nonce":1}`},
		{`"name":"jbc-main"`, `"name":"\ud800","extra":[1,{}]`},
		{`"bits":22`, `"bits":22,"bits":17`},
		{`"max_future_drift":"2h0m0s"`, `"max_future_drift":"10m0s","time_rules":1`},
		{`"max_future_drift":"2h0m0s"`, `"max_future_drift":"2h0m0s","time_rules":1,"median_time_inclusive":true`},
		{`"retarget_interval":20`, `"retarget_interval":10000,"time_rules":1`},
		{`"max_future_drift":"2h0m0s"`, `"max_future_drift":"2h0m0s","time_rules":0`},
		{`"max_future_drift":"2h0m0s"`, `"max_future_drift":"2h0m0s","time_rules":2`},
		{`"max_future_drift":"2h0m0s"`, `"max_future_drift":"2h0m0s","time_rules":256`},
	} {
		f.Add([]byte(strings.Replace(mainNetJSON, edit[0], edit[1], 1)), int32(1))
	}
	for _, s := range []string{`null`, `{}`, `[]`, `"params"`, `{"genesis":null}`} {
		f.Add([]byte(s), int32(1))
	}

	f.Fuzz(func(t *testing.T, data []byte, gap int32) {
		sentinel := *chain.TestNet()
		sentinel.Name = "sentinel"
		p := sentinel
		if err := json.Unmarshal(data, &p); err != nil {
			if !reflect.DeepEqual(p, sentinel) {
				t.Fatalf("failed decode (%v) changed the parameters: %+v", err, p)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("decoded parameters do not validate: %v", err)
		}
		g := p.Genesis
		if g.Index != 0 || !g.PrevHash.IsZero() || refHash(&g) != p.ID() {
			t.Fatalf("genesis %+v is not a genesis hashing to the ID %s", g, p.ID())
		}

		// The genesis file written back names the same network.
		enc, err := json.Marshal(&p)
		if err != nil {
			t.Fatalf("encoding %+v: %v", p, err)
		}
		var q chain.Params
		if err := json.Unmarshal(enc, &q); err != nil {
			t.Fatalf("decoding our own genesis file %s: %v", enc, err)
		}
		if !reflect.DeepEqual(q, p) || q.ID() != p.ID() {
			t.Fatalf("round trip changed the parameters:\n%+v\n%+v", p, q)
		}
		if enc2, _ := json.Marshal(&q); string(enc2) != string(enc) {
			t.Fatalf("genesis file not a fixed point:\n%s\n%s", enc, enc2)
		}

		// Usable: a Validator on the genesis keeps a bounded window (the
		// retarget interval, plus one under the anchored rules).
		w := p.TimeWindow()
		if w < 1 || w > 10001 {
			t.Fatalf("time window %d", w)
		}
		if _, err := chain.NewValidator(&p, p.GenesisEntry(), []int64{g.Timestamp}); err != nil {
			t.Fatalf("validator on the genesis: %v", err)
		}

		// A retarget, after a window of blocks gap seconds apart.
		if p.Spacing == 0 {
			return
		}
		n := p.RetargetInterval
		parent := chain.Entry{Height: n - 1, Bits: p.Bits, Time: 1 << 40}
		recent := make([]int64, n)
		for i := range recent {
			recent[i] = parent.Time - int64(i)*int64(gap)
		}
		nb := p.NextBits(&parent, recent)
		if nb < p.MinBits || nb > p.MaxBits {
			t.Fatalf("retarget to %d bits, outside [%d, %d]", nb, p.MinBits, p.MaxBits)
		}
		if d := int(nb) - int(p.Bits); d > int(p.MaxRetargetStep) || -d > int(p.MaxRetargetStep) {
			t.Fatalf("retarget from %d to %d bits, step limit %d", p.Bits, nb, p.MaxRetargetStep)
		}
		actual := max(recent[0]-recent[n-1], 1)
		target := int64(n-1) * int64(p.Spacing/time.Second)
		if (actual < target && nb < p.Bits) || (actual > target && nb > p.Bits) {
			t.Fatalf("blocks took %d s against a target of %d s, yet the difficulty went from %d to %d bits", actual, target, p.Bits, nb)
		}
		// Between retargets the difficulty stays.
		parent.Height = n
		if got := p.NextBits(&parent, recent); got != p.Bits {
			t.Fatalf("difficulty changed to %d bits off a retarget height", got)
		}

		// The second retarget reads the window the rules name (under the
		// anchored rules reaching back to the first window's end), and
		// moves the same way.
		parent.Height = 2*n - 1
		recent = make([]int64, w)
		for i := range recent {
			recent[i] = parent.Time - int64(i)*int64(gap)
		}
		nb2 := p.NextBits(&parent, recent)
		if nb2 < p.MinBits || nb2 > p.MaxBits {
			t.Fatalf("second retarget to %d bits, outside [%d, %d]", nb2, p.MinBits, p.MaxBits)
		}
		if d := int(nb2) - int(p.Bits); d > int(p.MaxRetargetStep) || -d > int(p.MaxRetargetStep) {
			t.Fatalf("second retarget from %d to %d bits, step limit %d", p.Bits, nb2, p.MaxRetargetStep)
		}
		if (actual < target && nb2 < p.Bits) || (actual > target && nb2 > p.Bits) {
			t.Fatalf("second retarget: blocks %d s apart against %s, yet the difficulty went from %d to %d bits", gap, p.Spacing, p.Bits, nb2)
		}
	})
}
