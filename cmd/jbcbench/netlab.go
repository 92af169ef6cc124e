package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Lab names for the e2e scripts: our own, so that a run of the suite does
// not collide with someone running the scripts by hand (netlab allows 1-8
// characters of a-z0-9).
const (
	labLAN  = "jbcbl"
	labLive = "jbcbv"
	labNAT  = "jbcbn"
	// labProbe is the namespace made and removed to see whether namespaces
	// can be made at all.
	labProbe = "jbcbprobe"
)

// netlabCheck reports why the namespace benchmarks cannot run here, or ""
// if they can: root, iproute2, the tools the scripts use, netlab, and a
// namespace actually made and removed.
func netlabCheck(ctx context.Context, repo string) string {
	if os.Geteuid() != 0 {
		return "not root: network namespaces need root"
	}
	for _, tool := range []string{"ip", "jq", "curl", "awk", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "the e2e scripts need " + tool
		}
	}
	if _, err := os.Stat(netlabPath(repo)); err != nil {
		return "netlab not found at " + netlabPath(repo) + " (set NETLAB)"
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", labProbe).CombinedOutput(); err != nil {
		return "cannot make a network namespace: " + strings.TrimSpace(string(out))
	}
	exec.CommandContext(ctx, "ip", "netns", "del", labProbe).Run()
	return ""
}

// netlabPath is where the e2e scripts find netlab.
func netlabPath(repo string) string {
	if p := os.Getenv("NETLAB"); p != "" {
		return p
	}
	return filepath.Join(repo, "..", "shared", "netlab")
}

// runScript runs an e2e script with env added, echoing its output to log
// when verbose, and returns its stdout and stderr together.
func runScript(ctx context.Context, repo, script string, env []string, log io.Writer, verbose bool) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, script))
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	var w io.Writer = &buf
	if verbose {
		w = io.MultiWriter(&buf, log)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	return buf.String(), err
}

// lanTimes are the start-to-synced times e2e/lan.sh prints, in ms.
type lanTimes struct {
	MDNS, DHT, DHTRendezvous float64
}

var (
	lanMDNS = regexp.MustCompile(`(?m)^B \(same LAN, mDNS\)\s+(\d+)\s*$`)
	lanDHT  = regexp.MustCompile(`(?m)^C \(other LAN, DHT from A's multiaddr\)\s+(\d+)\s*$`)
	lanRdv  = regexp.MustCompile(`(?m)^D \(other LAN, DHT from C's multiaddr\)\s+(\d+)\s*$`)
)

// parseLAN reads e2e/lan.sh's summary.
func parseLAN(out string) (lanTimes, error) {
	var t lanTimes
	for _, f := range []struct {
		re  *regexp.Regexp
		dst *float64
	}{{lanMDNS, &t.MDNS}, {lanDHT, &t.DHT}, {lanRdv, &t.DHTRendezvous}} {
		m := f.re.FindStringSubmatch(out)
		if m == nil {
			return t, fmt.Errorf("no %q line in lan.sh's output", f.re.String())
		}
		*f.dst, _ = strconv.ParseFloat(m[1], 64)
	}
	return t, nil
}

// natDirect matches e2e/nat.sh's line for us: B's time from its start to
// a direct connection to A, both behind NATs, made by hole punching.
var natDirect = regexp.MustCompile(`(?m)^e2e/nat\.sh: start to direct connection \(B, cold\): (\d+) ms\s*$`)

// parseNAT reads e2e/nat.sh's time from start to a direct connection, in
// ms.
func parseNAT(out string) (float64, error) {
	m := natDirect.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no %q line in nat.sh's output", natDirect.String())
	}
	return strconv.ParseFloat(m[1], 64)
}

// liveFigures are the figures read from e2e/live.sh's summary table, by
// its row labels.
type liveFigures map[string]float64

// liveRow matches a row of live.sh's summary table: a label and one number
// at the end.
var liveRow = regexp.MustCompile(`(?m)^(.+?)\s+(-?\d+(?:\.\d+)?)\s*$`)

// Rows of live.sh's summary we use.
const (
	liveMesh   = "mDNS full mesh after start (ms)"
	liveP50    = "1: propagation p50 (ms)"
	liveP95    = "1: propagation p95 (ms)"
	liveTimedN = "1: propagation to all nodes, final-chain blocks (n)"
)

// Log lines of live.sh carrying the same figures as its summary: read
// when the script fails after printing them, so that a failure in a later
// phase does not lose the propagation figures.
var (
	liveLogProp = regexp.MustCompile(`(?m)1: propagation .*\bn=(\d+) p50=(\d+) ms p95=(\d+) ms`)
	liveLogMesh = regexp.MustCompile(`(?m)1: full mesh after (\d+) ms`)
)

// parseLive reads e2e/live.sh's summary table, or failing that the log
// lines of its first phase.
func parseLive(out string) (liveFigures, error) {
	i := strings.Index(out, "e2e/live.sh: ")
	if i < 0 {
		return parseLiveLog(out)
	}
	f := liveFigures{}
	for _, m := range liveRow.FindAllStringSubmatch(out[i:], -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err == nil {
			f[strings.TrimSpace(m[1])] = v
		}
	}
	if _, ok := f[liveP95]; !ok {
		return f, fmt.Errorf("no %q row in live.sh's summary", liveP95)
	}
	return f, nil
}

// parseLiveLog reads the propagation and mesh figures from live.sh's log
// lines.
func parseLiveLog(out string) (liveFigures, error) {
	m := liveLogProp.FindStringSubmatch(out)
	if m == nil {
		return nil, errors.New("no summary table and no propagation line in live.sh's output")
	}
	f := liveFigures{}
	for i, k := range []string{liveTimedN, liveP50, liveP95} {
		f[k], _ = strconv.ParseFloat(m[i+1], 64)
	}
	if m := liveLogMesh.FindStringSubmatch(out); m != nil {
		f[liveMesh], _ = strconv.ParseFloat(m[1], 64)
	}
	return f, nil
}
