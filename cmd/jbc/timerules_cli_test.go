package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// oldGenesis is a genesis file jbc init wrote before the anchored time
// rules, with the chain package's chains mined on it.
func oldGenesis(name string) string {
	return filepath.Join("..", "..", "chain", "testdata", "oldrules", name+".genesis.json")
}

// TestMineKeepsToClock mines 30 blocks with jbc mine on a
// network made by jbc init before the anchored time rules (fixed 4 bits,
// strict median): blocks that take microseconds, each of which the rule
// wants a second past the median of the last 11. jbc mine used to stamp
// them max(now, median + 1), running the chain's time a second ahead every
// six blocks; it now waits for its clock, and the tip is at most 2 s ahead.
func TestMineKeepsToClock(t *testing.T) {
	d := t.TempDir()
	mustJBC(t, "--datadir", d, "init", "--genesis", oldGenesis("init-fixed"))
	mustJBC(t, "--datadir", d, "mine", "--blocks", "30", "--threads", "1")
	bs := blocksList(t, d, "--from", "30")
	if len(bs) != 1 {
		t.Fatalf("blocks --from 30: %+v", bs)
	}
	if ahead := time.Unix(bs[0].Timestamp, 0).Sub(time.Now()); ahead > 2*time.Second {
		t.Fatalf("after 30 blocks the tip is %s ahead of the clock, want at most 2 s", ahead)
	}
}

// TestVerifyTimeRules checks what jbc verify says of a network's time
// rules: a note for a retargeting network that keeps the original ones (a
// genesis file written before the anchored rules), none for one jbc init
// makes today or for a fixed difficulty; --json names them.
func TestVerifyTimeRules(t *testing.T) {
	for _, tt := range []struct {
		name  string
		init  []string
		rules string
		note  bool
	}{
		{"old retargeting", []string{"init", "--genesis", oldGenesis("init-retarget")}, "original", true},
		{"old fixed", []string{"init", "--genesis", oldGenesis("init-fixed")}, "original", false},
		{"new retargeting", []string{"init", "--difficulty", "2", "--spacing", "10s"}, "anchored", false},
	} {
		d := t.TempDir()
		mustJBC(t, append([]string{"--datadir", d}, tt.init...)...)
		out := mustJBC(t, "--datadir", d, "verify")
		if !strings.HasPrefix(out, "ok:") || strings.Contains(out, "note:") != tt.note {
			t.Errorf("%s: verify printed\n%s", tt.name, out)
		}
		if tt.note && !strings.Contains(out, "time warp") {
			t.Errorf("%s: the note does not name the time warp:\n%s", tt.name, out)
		}
		var v struct {
			OK        bool   `json:"ok"`
			TimeRules string `json:"time_rules"`
		}
		if err := json.Unmarshal([]byte(mustJBC(t, "--datadir", d, "verify", "--json")), &v); err != nil || !v.OK || v.TimeRules != tt.rules {
			t.Errorf("%s: verify --json: %+v, %v; want time_rules %q", tt.name, v, err, tt.rules)
		}
	}
}
