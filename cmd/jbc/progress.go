package main

import (
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressLogEvery is the interval of progress log lines when stderr is not
// a terminal (a file, a pipe, docker logs): often enough to see a long job
// move, rarely enough not to fill the log.
const progressLogEvery = 5 * time.Second

// progress shows how far a long job (an import, an export, a sync) is: a
// bar on a terminal, plain log lines otherwise.
type progress struct {
	a     *app
	what  string
	total int64
	bar   *progressbar.ProgressBar
	start time.Time
	last  time.Time
	done  int64
}

// newProgress starts showing a job of total steps.
func (a *app) newProgress(what string, total int64) *progress {
	p := &progress{a: a, what: what, total: total, start: time.Now(), last: time.Now()}
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(f),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("blocks"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// set records that done steps of the job are finished.
func (p *progress) set(done int64) {
	p.done = done
	if p.bar != nil {
		p.bar.Set64(done)
		return
	}
	if time.Since(p.last) < progressLogEvery {
		return
	}
	p.last = time.Now()
	rate := float64(done) / time.Since(p.start).Seconds()
	var eta time.Duration
	if rate > 0 && p.total > done {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second))
	}
	p.a.log.Info(p.what, "done", done, "total", p.total, "per_second", int(rate), "eta", eta.Round(time.Second))
}

// finish ends the display.
func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
