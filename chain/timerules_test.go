package chain_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jbc-project/jbc/chain"
)

// clock is what mineToClock reads the time from and waits on.
type clock interface {
	Now() time.Time
	Sleep(time.Duration)
}

type realClock struct{}

func (realClock) Now() time.Time        { return time.Now() }
func (realClock) Sleep(d time.Duration) { time.Sleep(d) }

// fakeClock moves only when slept on: mining takes no time by it.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time        { return c.t }
func (c *fakeClock) Sleep(d time.Duration) { c.t = c.t.Add(d) }

// mineToClock mines n blocks on p as fast as the miner can, the way jbc
// mine and a node's miner do: a template stamped by the clock, a wait when
// StampDelay asks for one, the real Miner, and the Validator judging each
// block by the clock. It returns the tip, how far ahead of the clock a
// block was at most when accepted, and how long the miner waited.
func mineToClock(tb testing.TB, p *chain.Params, n int, c clock) (tip chain.Block, ahead, waited time.Duration) {
	tb.Helper()
	g := p.GenesisEntry()
	v, err := chain.NewValidator(p, g, []int64{g.Time})
	if err != nil {
		tb.Fatal(err)
	}
	m := &chain.Miner{}
	ctx := context.Background()
	ahead = -time.Hour
	for v.Tip().Height < uint64(n) {
		now := c.Now()
		tmpl, bits := v.Template("as fast as it goes", now.Unix())
		if d := v.StampDelay(tmpl.Timestamp, now); d > 0 {
			c.Sleep(d)
			waited += d
			continue
		}
		b, err := m.Solve(ctx, tmpl, bits)
		if err != nil {
			tb.Fatal(err)
		}
		now = c.Now()
		if _, err := v.Next(&b, now.Unix()); err != nil {
			tb.Fatalf("block %d: %v", b.Index, err)
		}
		ahead = max(ahead, time.Unix(b.Timestamp, 0).Sub(now))
		tip = b
	}
	return tip, ahead, waited
}

// maxTipAhead is how far ahead of the clock issue 12 allows the tip of a
// chain mined as fast as possible.
const maxTipAhead = 2 * time.Second

// TestMinerKeepsToClock mines 20,000 blocks as fast as an easy network
// allows (one bit, as jbc init makes networks today: a timestamp may equal
// the median) by the real clock, and checks that no block, and in the end
// the tip, is more than 2 s ahead of the clock. With the old stamping,
// max(now, median + 1), such a chain gained a second every six blocks:
// about 3,300 s ahead after 20,000. On a network under the strict median
// rule (as jbc init made them before) the miner waits for its clock
// instead: 20,000 blocks by a clock that moves only while the miner waits
// keep as close, at the rule's pace of about six blocks a second.
func TestMinerKeepsToClock(t *testing.T) {
	const n = 20000
	start := time.Now()
	fast, err := chain.NewParams("fast", "as fast as it goes", start.Unix()-3600, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	tip, ahead, waited := mineToClock(t, fast, n, realClock{})
	el := time.Since(start)
	late := time.Unix(tip.Timestamp, 0).Sub(time.Now())
	t.Logf("inclusive median: %d blocks in %s (%.0f blocks/s); tip %s ahead of the clock, at most %s; waited %s",
		n, el.Round(time.Millisecond), n/el.Seconds(), late, ahead, waited)
	if ahead > maxTipAhead || late > maxTipAhead {
		t.Fatalf("a block was %s ahead of the clock, the tip %s: want at most %s", ahead, late, maxTipAhead)
	}

	strict := *fast
	strict.MedianTimeInclusive = false
	strict.TimeRules = chain.TimeRulesOriginal
	c := &fakeClock{start}
	tip, ahead, waited = mineToClock(t, &strict, n, c)
	late = time.Unix(tip.Timestamp, 0).Sub(c.Now())
	t.Logf("strict median: %d blocks; tip %s ahead of the clock, at most %s; waited %s (%.1f blocks a second)",
		n, late, ahead, waited, n/waited.Seconds())
	if ahead > maxTipAhead || late > maxTipAhead {
		t.Fatalf("strict median: a block was %s ahead of the clock, the tip %s: want at most %s", ahead, late, maxTipAhead)
	}
	if perSec := n / waited.Seconds(); perSec < 5 || perSec > 7 {
		t.Fatalf("strict median: %.1f blocks a second, want about 6 (a second every six blocks)", perSec)
	}
}

// TestStampDelay pins when a miner waits: never for a timestamp at most
// MaxStampAhead ahead of its clock, nor for one no later than the newest
// on the chain (blocks stamped ahead by others: it follows them); else
// until its clock is within MaxStampAhead of it.
func TestStampDelay(t *testing.T) {
	p := chain.TestNet()
	// recent returns 11 timestamps, newest first: n of them at top, the
	// rest at 1000.
	recent := func(top int64, n int) []int64 {
		r := repeat(1000, 11)
		for i := range n {
			r[i] = top
		}
		return r
	}
	for _, tt := range []struct {
		name   string
		recent []int64
		ts     int64
		now    time.Time
		want   time.Duration
	}{
		{"behind the clock", recent(1000, 11), 990, time.Unix(1000, 300e6), 0},
		{"at the clock", recent(1000, 11), 1000, time.Unix(1000, 300e6), 0},
		{"a second ahead", recent(1000, 11), 1001, time.Unix(1000, 300e6), 0},
		{"strict median, clock behind", recent(1000, 11), 1001, time.Unix(999, 300e6), 700 * time.Millisecond},
		{"strict median, clock far behind", recent(1000, 11), 1001, time.Unix(900, 0), 100 * time.Second},
		{"following one block ahead", recent(5000, 1), 1001, time.Unix(500, 0), 0},
		{"following five blocks ahead", recent(5000, 5), 4000, time.Unix(500, 0), 0},
		{"at the newest", recent(5000, 6), 5000, time.Unix(500, 0), 0},
		{"past the newest", recent(5000, 6), 5001, time.Unix(500, 0), 4500 * time.Second},
	} {
		parent := chain.Entry{Height: 20, Time: tt.recent[0], Work: chain.BlockWork(1)}
		v, err := chain.NewValidator(p, parent, tt.recent)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.StampDelay(tt.ts, tt.now); got != tt.want {
			t.Errorf("%s: StampDelay(%d) = %s, want %s", tt.name, tt.ts, got, tt.want)
		}
	}
}

// TestEarliestTime checks on random chains of three networks that
// EarliestTime is exactly the boundary the rules draw: a block stamped at
// it is accepted, one a second earlier refused, and Template stamps it
// when the clock is behind.
func TestEarliestTime(t *testing.T) {
	retarget, err := chain.NewParams("retarget", "earliest", testNetGenesisTime, 1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*chain.Params{chain.TestNet(), anchoredParams(t), retarget} {
		rng := rand.New(rand.NewPCG(7, 12))
		g := p.GenesisEntry()
		v, err := chain.NewValidator(p, g, []int64{g.Time})
		if err != nil {
			t.Fatal(err)
		}
		w := max(p.RetargetInterval, 1)
		bound := 0 // blocks whose earliest time the window rules set
		for v.Tip().Height < max(5*w+3, 40) {
			e := v.EarliestTime()
			med := refMedian(v.Recent())
			if !p.MedianTimeInclusive {
				med++
			}
			if e < med {
				t.Fatalf("%s at %d: earliest time %d before the median rule's %d", p.Name, v.Tip().Height+1, e, med)
			}
			if e > med {
				bound++
			}
			tmpl, bits := v.Template("earliest", e-1000)
			if tmpl.Timestamp != e {
				t.Fatalf("%s at %d: Template stamped %d with the clock behind, want %d", p.Name, tmpl.Index, tmpl.Timestamp, e)
			}
			before := tmpl
			before.Timestamp--
			if _, err := p.CheckBlock(ptr(solve(t, before, int(bits))), ptrEntry(v.Tip()), v.Recent(), testNow); err == nil {
				t.Fatalf("%s at %d: a block a second before the earliest time %d was accepted", p.Name, tmpl.Index, e)
			} else if !isTimeRule(err) {
				t.Fatalf("%s at %d: a block a second early refused for %v", p.Name, tmpl.Index, err)
			}
			if _, err := p.CheckBlock(ptr(solve(t, tmpl, int(bits))), ptrEntry(v.Tip()), v.Recent(), testNow); err != nil {
				t.Fatalf("%s at %d: a block at the earliest time %d: %v", p.Name, tmpl.Index, e, err)
			}
			// Extend by a block at a random allowed time: often early,
			// sometimes far ahead, so that windows open and close both
			// ways.
			ts := e + int64(rng.IntN(15))
			if rng.IntN(5) == 0 {
				drift := int(p.MaxFutureDrift / time.Second)
				ts = e + int64(drift/2+rng.IntN(2*drift))
			}
			tmpl.Timestamp = ts
			b := solve(t, tmpl, int(bits))
			if _, err := v.Next(&b, testNow); err != nil {
				t.Fatalf("%s at %d: %v", p.Name, b.Index, err)
			}
		}
		if p.TimeRules == chain.TimeRulesAnchored && bound == 0 {
			t.Errorf("%s: the window rules never set the earliest time", p.Name)
		}
		t.Logf("%s: %d blocks, %d bounded by the window rules, tip at %d bits", p.Name, v.Tip().Height, bound, v.NextBits())
	}
}

func ptr(b chain.Block) *chain.Block      { return &b }
func ptrEntry(e chain.Entry) *chain.Entry { return &e }

func isTimeRule(err error) bool {
	var re *chain.RuleError
	return errors.As(err, &re) && (re.Code == chain.ErrTimeTooOld || re.Code == chain.ErrTimeWarp)
}

// TestOldRulesChains validates chains mined by jbc before the anchored time
// rules (testdata/oldrules, made by gen/main.go at commit 045bae5) against
// the genesis files that jbc init wrote for them: a retargeting network
// whose chain has blocks stamped ahead of the clock and a time warp across
// a window, and a fixed-difficulty one whose 60 blocks were mined in one
// second. Their genesis files name no time rules, so they keep the
// original ones: every block validates, held to the same difficulty, with
// the same work, and the genesis file written back is the same file.
func TestOldRulesChains(t *testing.T) {
	for _, name := range []string{"init-retarget", "init-fixed"} {
		read := func(suffix string) []byte {
			b, err := os.ReadFile(filepath.Join("testdata", "oldrules", name+suffix))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		gen := read(".genesis.json")
		var p chain.Params
		if err := json.Unmarshal(gen, &p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.TimeRules != chain.TimeRulesOriginal || p.MedianTimeInclusive || p.MaxFutureDrift != 2*time.Hour {
			t.Fatalf("%s: old genesis file read as %+v", name, p)
		}
		again, err := json.MarshalIndent(&p, "", "  ")
		if err != nil || string(again)+"\n" != string(gen) {
			t.Fatalf("%s: genesis file written back differs:\n%s\nwant\n%s", name, again, gen)
		}
		var blocks []chain.Block
		if err := json.Unmarshal(read(".chain.json"), &blocks); err != nil {
			t.Fatal(err)
		}
		var want struct {
			Now  int64   `json:"now"`
			Bits []uint8 `json:"bits"`
			Work string  `json:"work"`
			Tip  string  `json:"tip"`
		}
		if err := json.Unmarshal(read(".want.json"), &want); err != nil {
			t.Fatal(err)
		}
		c := &chain.Chain{Params: &p, Blocks: blocks}
		if err := c.Validate(func() time.Time { return time.Unix(want.Now, 0) }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Work().String() != want.Work || c.TipEntry().Hash.String() != want.Tip || len(want.Bits) != len(blocks) {
			t.Fatalf("%s: tip %s work %s, want %s %s", name, c.TipEntry().Hash, c.Work(), want.Tip, want.Work)
		}
		v, err := chain.NewValidator(&p, p.GenesisEntry(), []int64{p.Genesis.Timestamp})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(blocks); i++ {
			e, err := v.Next(&blocks[i], want.Now)
			if err != nil || e.Bits != want.Bits[i] {
				t.Fatalf("%s: block %d held to %d bits (%v), want %d", name, i, e.Bits, err, want.Bits[i])
			}
		}
	}

	// The retargeting chain depends on the original rules: under the
	// anchored ones it is refused, so keeping the version is what keeps
	// it valid.
	var p chain.Params
	raw, _ := os.ReadFile(filepath.Join("testdata", "oldrules", "init-retarget.genesis.json"))
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	var blocks []chain.Block
	raw, _ = os.ReadFile(filepath.Join("testdata", "oldrules", "init-retarget.chain.json"))
	if err := json.Unmarshal(raw, &blocks); err != nil {
		t.Fatal(err)
	}
	p.TimeRules = chain.TimeRulesAnchored
	err := (&chain.Chain{Params: &p, Blocks: blocks}).Validate(func() time.Time { return time.Unix(blocks[len(blocks)-1].Timestamp+3*3600, 0) })
	var re *chain.RuleError
	if !errors.As(err, &re) {
		t.Fatalf("old retargeting chain under the anchored rules: %v, want a refusal", err)
	}
	t.Logf("old retargeting chain under the anchored rules: %v", err)
}

// anchoredNetJSON is the genesis file of a network jbc init makes today
// with --difficulty 12 --spacing 10s: the new fields pinned.
const anchoredNetJSON = `{"name":"private","genesis":{"index":0,"timestamp":1700000000,"data":"our genesis","prev_hash":"","hash":"842815a284289eb44b08d13742494ce50c2d924c6d05e5afe0b78e3aa1bb1acf","nonce":0},"bits":12,"spacing":"10s","retarget_interval":20,"max_retarget_step":2,"min_bits":1,"max_bits":255,"max_data_size":65536,"median_time_blocks":11,"max_future_drift":"3m20s","median_time_inclusive":true,"time_rules":1}`

// TestTimeRulesGenesisFile pins the genesis file of a new network, and
// checks that the time rules are read from it: absent means the original
// ones, 1 the anchored ones, anything else is refused as a network this
// jbc does not know.
func TestTimeRulesGenesisFile(t *testing.T) {
	p, err := chain.NewParams("private", "our genesis", 1700000000, 12, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := anchoredNetJSON
	if string(enc) != want {
		t.Fatalf("genesis file\n%s\nwant\n%s", enc, want)
	}
	var q chain.Params
	if err := json.Unmarshal(enc, &q); err != nil || !reflect.DeepEqual(&q, p) {
		t.Fatalf("round trip: %+v, %v", q, err)
	}

	for _, tt := range []struct {
		edit string
		want chain.TimeRules
		err  string
	}{
		{`"time_rules":1`, chain.TimeRulesAnchored, ""},
		{`"time_rules":0`, chain.TimeRulesOriginal, ""},
		{``, chain.TimeRulesOriginal, ""},
		{`"time_rules":2`, 0, "time_rules 2 is unknown"},
		{`"time_rules":-1`, 0, "cannot unmarshal"},
		{`"time_rules":"anchored"`, 0, "cannot unmarshal"},
	} {
		in := strings.Replace(want, `,"time_rules":1`, map[bool]string{true: "", false: "," + tt.edit}[tt.edit == ""], 1)
		q := *chain.TestNet()
		err := json.Unmarshal([]byte(in), &q)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want one about %q", tt.edit, err, tt.err)
		case tt.err == "" && (err != nil || q.TimeRules != tt.want):
			t.Errorf("%s: rules %s, %v; want %s", tt.edit, q.TimeRules, err, tt.want)
		case tt.err != "" && !reflect.DeepEqual(q, *chain.TestNet()):
			t.Errorf("%s: failed decode changed the params", tt.edit)
		}
	}
	for r, s := range map[chain.TimeRules]string{chain.TimeRulesOriginal: "original", chain.TimeRulesAnchored: "anchored", 7: "TimeRules(7)"} {
		if r.String() != s {
			t.Errorf("TimeRules(%d).String() = %q, want %q", r, r.String(), s)
		}
	}
}
