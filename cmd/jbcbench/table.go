package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// row is one figure of the table.
type row struct {
	Figure string
	Value  float64
	Unit   string // "x" for a ratio
	// Target is the target; zero means none (a figure reported for
	// information). Lower says whether lower values are better.
	Target float64
	Lower  bool
	// Zero says the target is none at all: the value must be 0 (Target
	// and Lower are then unused).
	Zero bool
	// Skipped, when set, says why there is no value.
	Skipped string
	Note    string
	Cmd     string
}

func (s *suite) add(r row) { s.rows = append(s.rows, r) }

func (s *suite) skip(figure, why, cmd string) {
	s.rows = append(s.rows, row{Figure: figure, Skipped: why, Cmd: cmd})
}

// ratio is how far the value is on the good side of the target: at least
// 1 when the target is met.
func (r row) ratio() float64 {
	if r.Zero {
		if r.Value == 0 {
			return math.Inf(1)
		}
		return 0
	}
	if r.Target == 0 {
		return 0
	}
	if r.Lower {
		if r.Value <= 0 {
			return math.Inf(1) // nothing at all, against an upper bound
		}
		return r.Target / r.Value
	}
	return r.Value / r.Target
}

func (r row) status() string {
	switch {
	case r.Skipped != "":
		return "skipped: " + r.Skipped
	case r.Target == 0 && !r.Zero:
		return "-"
	case r.ratio() >= 1:
		return "ok"
	}
	return "**missed**"
}

func (r row) target() string {
	if r.Zero {
		return "0"
	}
	if r.Target == 0 {
		return "-"
	}
	op := ">="
	if r.Lower {
		op = "<="
	}
	return op + " " + format(r.Target, r.Unit)
}

// table renders the rows as Markdown, then the commands.
func (s *suite) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n", s.header)
	b.WriteString("| figure | value | target | value / target | status | note |\n")
	b.WriteString("| --- | --: | --: | --: | --- | --- |\n")
	cmds := []string{}
	seen := map[string]int{}
	for _, r := range s.rows {
		if _, ok := seen[r.Cmd]; !ok && r.Cmd != "" {
			cmds = append(cmds, r.Cmd)
			seen[r.Cmd] = len(cmds)
		}
		val, ratio := "-", "-"
		if r.Skipped == "" {
			val = format(r.Value, r.Unit)
			if q := r.ratio(); math.IsInf(q, 1) {
				ratio = "inf"
			} else if q > 0 {
				ratio = strconv.FormatFloat(q, 'f', 2, 64)
			}
		}
		note := r.Note
		if n := seen[r.Cmd]; n > 0 {
			note = strings.TrimSpace(fmt.Sprintf("%s [%d]", note, n))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.Figure, val, r.target(), ratio, r.status(), note)
	}
	b.WriteString("\nReproduce a row (from the module root):\n\n")
	for i, c := range cmds {
		fmt.Fprintf(&b, "%d. `%s`\n", i+1, c)
	}
	return b.String()
}

// format renders a value with its unit.
func format(v float64, unit string) string {
	switch unit {
	case "x":
		return strconv.FormatFloat(v, 'f', 2, 64) + "x"
	case "blocks/s":
		return thousands(v) + " blocks/s"
	case "ms":
		return thousands(v) + " ms"
	case "MB":
		return strconv.FormatFloat(v, 'f', 1, 64) + " MB"
	case "%":
		return strconv.FormatFloat(v, 'f', 0, 64) + " %"
	case "% of a core":
		return strconv.FormatFloat(v, 'f', 2, 64) + " % of a core"
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " " + unit
}

// thousands renders v rounded to an integer with comma separators.
func thousands(v float64) string {
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// si renders v with an SI prefix: 4.2 MH/s.
func si(v float64, unit string) string {
	for _, p := range []struct {
		f float64
		s string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if math.Abs(v) >= p.f {
			return strconv.FormatFloat(v/p.f, 'f', 2, 64) + " " + p.s + unit
		}
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " " + unit
}
