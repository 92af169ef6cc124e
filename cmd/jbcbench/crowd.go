package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// labCrowd is the netlab lab of e2e/crowd.sh runs.
const labCrowd = "jbcbc"

// crowdLayout is one run of e2e/crowd.sh: LANs of Hosts nodes each.
type crowdLayout struct{ LANs, Hosts int }

func (l crowdLayout) String() string { return fmt.Sprintf("%dx%d", l.LANs, l.Hosts) }

// label names a layout in the table's figures.
func (l crowdLayout) label() string {
	if l.LANs == 1 {
		return fmt.Sprintf("LAN of %d nodes", l.Hosts)
	}
	return fmt.Sprintf("%d LANs x %d nodes (DHT from one bootstrap)", l.LANs, l.Hosts)
}

// parseLayouts reads -crowd: "off", or layouts LANSxHOSTS, comma-separated
// (netlab allows 1-8 LANs of 1-60 hosts).
func parseLayouts(s string) ([]crowdLayout, error) {
	if s == "off" || s == "" {
		return nil, nil
	}
	var out []crowdLayout
	for _, f := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(f), "x")
		lans, err1 := strconv.Atoi(a)
		hosts, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || lans < 1 || lans > 8 || hosts < 2 || hosts > 60 {
			return nil, fmt.Errorf("-crowd: %q is not LANSxHOSTS (1-8 LANs of 2-60 hosts), e.g. 1x60", f)
		}
		out = append(out, crowdLayout{lans, hosts})
	}
	return out, nil
}

// crowdResult is the part of e2e/crowd's CROWD_RESULT line that the table
// shows (e2e/crowd/main.go, type result).
type crowdResult struct {
	Nodes             int   `json:"nodes"`
	MinPeers          int   `json:"min_peers"`
	ConnectMS         int64 `json:"connect_ms"`
	ConnectByAnswerMS int64 `json:"connect_by_answer_ms"`
	ConnectTimeoutMS  int64 `json:"connect_timeout_ms"`
	AtTarget          struct {
		PeersMin    int `json:"peers_min"`
		PeersMedian int `json:"peers_median"`
		PeersMax    int `json:"peers_max"`
		Enough      int `json:"enough"`
		Synced      int `json:"synced"`
		Isolated    int `json:"isolated"`
		Components  int `json:"components"`
	} `json:"at_target"`
	Prop crowdProp `json:"propagation"`
	Idle struct {
		Seconds     float64 `json:"seconds"`
		Opened      float64 `json:"conns_opened"`
		Closed      float64 `json:"conns_closed"`
		PeerChanges int     `json:"peer_changes"`
		WarnError   int     `json:"lines_warn_error"`
		Info        int     `json:"lines_info_up"`
		CPUMax      float64 `json:"cpu_pct_max"`
		CPUMedian   float64 `json:"cpu_pct_median"`
		RSSMaxMB    float64 `json:"rss_mb_max"`
		RSSMedianMB float64 `json:"rss_mb_median"`
		PeersMedian float64 `json:"peers_median"`
		ConnsMedian float64 `json:"conns_median"`
	} `json:"idle"`
	Addrs struct {
		SelfDials      int `json:"self_dials"`
		LoopbackStatus int `json:"loopback_status_nodes"`
		MDNSRecords    int `json:"mdns_records"`
		MDNSLoopback   int `json:"mdns_loopback_records"`
	} `json:"addresses"`
	Disturb *struct {
		Kill            crowdProp `json:"kill"`
		JoinMS          int64     `json:"join_ms"`
		Join            crowdProp `json:"join"`
		OthersWarnError int       `json:"others_warn_error"`
	} `json:"disturbance"`
}

type crowdProp struct {
	Timed int     `json:"timed"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	Max   float64 `json:"max_ms"`
}

// crowdResultPrefix starts e2e/crowd's last line.
const crowdResultPrefix = "CROWD_RESULT "

// parseCrowd reads the CROWD_RESULT line of e2e/crowd.sh's output.
func parseCrowd(out string) (crowdResult, error) {
	r := crowdResult{ConnectByAnswerMS: -1} // never, unless the line says
	i := strings.LastIndex(out, crowdResultPrefix)
	if i < 0 {
		return r, errors.New("no CROWD_RESULT line in crowd.sh's output")
	}
	line, _, _ := strings.Cut(out[i+len(crowdResultPrefix):], "\n")
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return r, fmt.Errorf("crowd.sh's CROWD_RESULT line: %w", err)
	}
	return r, nil
}

// crowdRows turns a crowd run's result into rows of the table.
func crowdRows(l crowdLayout, r crowdResult, cmd string) []row {
	name := l.label()
	others := r.Nodes - 1
	var rows []row
	add := func(x row) {
		x.Figure = name + ": " + x.Figure
		x.Cmd = cmd
		rows = append(rows, x)
	}
	at := r.AtTarget
	connect := row{Figure: fmt.Sprintf("every node >= %d peers and synced, by its own answers, after the last start", r.MinPeers),
		Value: float64(r.ConnectByAnswerMS), Unit: "ms", Target: 15000, Lower: true,
		Note: fmt.Sprintf("by the end of the poll that saw all of them, in one connected graph: %d ms; at 15 s: peers min/median/max %d/%d/%d, %d with enough, %d synced, %d isolated, %d component(s)",
			r.ConnectMS, at.PeersMin, at.PeersMedian, at.PeersMax, at.Enough, at.Synced, at.Isolated, at.Components)}
	if r.ConnectByAnswerMS < 0 {
		connect.Value = float64(r.ConnectTimeoutMS)
		connect.Note = fmt.Sprintf("not within %d s (the value is that wait); %s", r.ConnectTimeoutMS/1000, connect.Note)
	}
	add(connect)
	add(row{Figure: fmt.Sprintf("mined block to all %d others, p95", others), Value: r.Prop.P95, Unit: "ms", Target: 250, Lower: true,
		Note: fmt.Sprintf("p50 %.0f ms, max %.0f ms over %d blocks mined one at a time", r.Prop.P50, r.Prop.Max, r.Prop.Timed)})
	id := r.Idle
	add(row{Figure: fmt.Sprintf("idle %.0f s: connections opened and closed, all nodes", id.Seconds), Value: id.Opened + id.Closed, Unit: "conns", Zero: true,
		Note: fmt.Sprintf("opened %.0f, closed %.0f; peers joining or leaving a node's set %d; per node: peers %.0f, connections %.0f (medians)",
			id.Opened, id.Closed, id.PeerChanges, id.PeersMedian, id.ConnsMedian)})
	add(row{Figure: fmt.Sprintf("idle %.0f s: WARN and ERROR lines, all nodes", id.Seconds), Value: float64(id.WarnError), Unit: "lines", Zero: true,
		Note: fmt.Sprintf("INFO and above: %d", id.Info)})
	add(row{Figure: "idle: CPU per node, max", Value: id.CPUMax, Unit: "% of a core", Target: 1, Lower: true,
		Note: fmt.Sprintf("median %.2f %%; RSS per node median %.0f MB, max %.0f MB", id.CPUMedian, id.RSSMedianMB, id.RSSMaxMB)})
	a := r.Addrs
	add(row{Figure: "\"dial to self attempted\" in the nodes' logs, whole run", Value: float64(a.SelfDials), Unit: "times", Zero: true})
	add(row{Figure: "loopback announced: nodes with it in /status, mDNS records with it", Value: float64(a.LoopbackStatus + a.MDNSLoopback), Unit: "", Zero: true,
		Note: fmt.Sprintf("%d nodes; %d of %d mDNS records", a.LoopbackStatus, a.MDNSLoopback, a.MDNSRecords)})
	if d := r.Disturb; d != nil {
		add(row{Figure: "one node killed (SIGKILL): mined block to the others, p95", Value: d.Kill.P95, Unit: "ms", Target: 250, Lower: true,
			Note: fmt.Sprintf("p50 %.0f ms over %d blocks", d.Kill.P50, d.Kill.Timed)})
		join := row{Figure: "a new node: connected and synced after its start", Value: float64(d.JoinMS), Unit: "ms", Target: 15000, Lower: true}
		if d.JoinMS < 0 {
			join.Value, join.Note = float64(r.ConnectTimeoutMS), "never within the wait (the value)"
		}
		add(join)
		add(row{Figure: "with the new node: mined block to all others, p95", Value: d.Join.P95, Unit: "ms", Target: 250, Lower: true,
			Note: fmt.Sprintf("p50 %.0f ms over %d blocks", d.Join.P50, d.Join.Timed)})
		add(row{Figure: "kill and join: WARN and ERROR lines of the other nodes", Value: float64(d.OthersWarnError), Unit: "lines", Zero: true})
	}
	return rows
}

// crowdFigures are the figures a skipped crowd run would have given.
func crowdFigures(l crowdLayout) []string {
	return []string{l.label() + ": every node connected and synced, p95 propagation, idle churn, CPU and logs, addresses, SIGKILL and join"}
}
