// Command gen writes chains mined by jbc at commit 045bae5, before the
// anchored time rules, for chain's TestOldRulesChains. It builds only
// against that commit: copy it to cmd/oldgen in a tree of it and run it
// there,
//
//	mkdir /tmp/old && git archive 045bae5 | tar -x -C /tmp/old
//	mkdir /tmp/old/cmd/oldgen && cp main.go /tmp/old/cmd/oldgen/
//	cd /tmp/old && go run ./cmd/oldgen OUTDIR
//
// For each network it writes NAME.genesis.json (as that jbc init wrote it),
// NAME.chain.json (the blocks, genesis first) and NAME.want.json (the
// difficulty each block was held to, the tip's work and the clock the
// chain validates against), all computed by the old code.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jbc-project/jbc/chain"
)

type want struct {
	Now  int64  `json:"now"`
	Bits []int  `json:"bits"`
	Work string `json:"work"`
	Tip  string `json:"tip"`
}

// gen mines len(nows) blocks on p: block i is templated with the clock at
// nows[i] by the old Validator.Template (max(now, median+1)), unless stamp
// gives it another timestamp.
func gen(dir, name string, p *chain.Params, nows []int64, stamp func(h uint64, v *chain.Validator, tmpl int64) int64) {
	g := p.GenesisEntry()
	v, err := chain.NewValidator(p, g, []int64{g.Time})
	must(err)
	m := &chain.Miner{Threads: 1}
	blocks := []chain.Block{p.Genesis}
	w := want{Bits: []int{int(g.Bits)}}
	last := p.Genesis.Timestamp
	for i, now := range nows {
		tmpl, bits := v.Template(fmt.Sprintf("%s block %d", name, i+1), now)
		if stamp != nil {
			tmpl.Timestamp = stamp(tmpl.Index, v, tmpl.Timestamp)
		}
		b, err := m.Solve(context.Background(), tmpl, bits)
		must(err)
		e, err := v.Next(&b, max(now, tmpl.Timestamp))
		must(err)
		blocks = append(blocks, b)
		w.Bits = append(w.Bits, int(e.Bits))
		w.Work, w.Tip = e.Work.String(), e.Hash.String()
		last = max(last, b.Timestamp)
	}
	w.Now = last + 60
	c := &chain.Chain{Params: p, Blocks: blocks}
	must(c.Validate(func() time.Time { return time.Unix(w.Now, 0) }))
	gj, err := json.MarshalIndent(p, "", "  ")
	must(err)
	must(os.WriteFile(filepath.Join(dir, name+".genesis.json"), append(gj, '\n'), 0o644))
	cj, err := json.Marshal(blocks)
	must(err)
	must(os.WriteFile(filepath.Join(dir, name+".chain.json"), append(cj, '\n'), 0o644))
	wj, err := json.MarshalIndent(w, "", "  ")
	must(err)
	must(os.WriteFile(filepath.Join(dir, name+".want.json"), append(wj, '\n'), 0o644))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func main() {
	dir := os.Args[1]
	must(os.MkdirAll(dir, 0o755))

	// jbc init --difficulty 8 --spacing 10s: a burst in one second (the
	// timestamps run ahead), slow and fast stretches across retargets, a
	// window closed far ahead and the next opened back at the median (a
	// time warp, valid under the original rules), a block earlier than
	// its parent.
	const g1 = 1700000000
	p, err := chain.NewParams("old-retarget", "jbc init before the anchored time rules", g1, 8, 10*time.Second)
	must(err)
	var nows []int64
	now := int64(g1)
	for h := 1; h <= 140; h++ {
		switch {
		case h <= 25:
			now += 0
		case h <= 45:
			now += 30
		case h <= 60:
			now += 2
		default:
			now += 10
		}
		nows = append(nows, now)
	}
	gen(dir, "init-retarget", p, nows, func(h uint64, v *chain.Validator, ts int64) int64 {
		switch h {
		case 79, 99:
			return ts + 1500 // a window closed far ahead
		case 80, 100:
			return v.MedianTime() + 1 // the next opened back at the median
		case 90:
			return v.MedianTime() + 1 // earlier than its parent, mid-window
		}
		return ts
	})

	// jbc init --difficulty 4: 60 blocks mined in one second, stamped
	// ahead of the clock by the strict median rule.
	const g2 = 1700001000
	p, err = chain.NewParams("old-fixed", "jbc init before the anchored time rules, fixed", g2, 4, 0)
	must(err)
	nows = nows[:0]
	for range 60 {
		nows = append(nows, g2+5)
	}
	gen(dir, "init-fixed", p, nows, nil)
}
