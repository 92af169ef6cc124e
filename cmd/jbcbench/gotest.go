package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// benchResult is one benchmark's result line: its metrics by unit
// ("ns/op", "blocks/s", ...).
type benchResult struct {
	Name    string
	N       int
	Metrics map[string]float64
}

// testEvent is the part of a `go test -json` event we read.
type testEvent struct {
	Action string
	Output string
}

// benchLine matches a benchmark result line: the name (with the -GOMAXPROCS
// suffix), the iteration count, then value-unit pairs.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// runGoTest runs `go test -json` with args in dir and returns the
// benchmark results by name. Output lines are echoed to log as they come:
// all of them when verbose, else only result lines and benchmark logs.
func runGoTest(ctx context.Context, dir string, args []string, log io.Writer, verbose bool) (map[string]benchResult, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"test", "-json"}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "$ go test %s\n", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	results := map[string]benchResult{}
	var text strings.Builder // output not yet split into lines
	var failed []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev testEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if ev.Action == "fail" {
			failed = append(failed, strings.TrimSpace(text.String()))
		}
		if ev.Action != "output" {
			continue
		}
		text.WriteString(ev.Output)
		s := text.String()
		i := strings.LastIndexByte(s, '\n')
		if i < 0 {
			continue
		}
		text.Reset()
		text.WriteString(s[i+1:])
		for _, line := range strings.Split(s[:i], "\n") {
			if r, ok := parseBenchLine(line); ok {
				results[r.Name] = r
				fmt.Fprintln(log, line)
				continue
			}
			if verbose || strings.HasPrefix(strings.TrimSpace(line), "bench_test.go") || strings.Contains(line, "FAIL") {
				fmt.Fprintln(log, line)
			}
		}
	}
	werr := cmd.Wait()
	if werr != nil {
		return results, fmt.Errorf("go test %s: %v\n%s", strings.Join(args, " "), werr, strings.TrimSpace(stderr.String()))
	}
	return results, nil
}

// parseBenchLine parses a benchmark result line.
func parseBenchLine(line string) (benchResult, bool) {
	m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return benchResult{}, false
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return benchResult{}, false
	}
	f := strings.Fields(m[3])
	if len(f) < 2 || len(f)%2 != 0 {
		return benchResult{}, false
	}
	r := benchResult{Name: m[1], N: n, Metrics: map[string]float64{}}
	for i := 0; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return benchResult{}, false
		}
		r.Metrics[f[i+1]] = v
	}
	return r, true
}
