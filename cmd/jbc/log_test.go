package main

import (
	"bytes"
	"encoding/json"
	"log"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestLibraryLogsThroughSlog: what libraries write with the standard log
// package (the mDNS and QUIC ones do) comes out of jbc's own handler, in
// its format, at debug level: shown with --log-level debug, hidden at info.
func TestLibraryLogsThroughSlog(t *testing.T) {
	defer log.SetFlags(log.Flags())
	defer log.SetOutput(log.Writer())
	defer slog.SetDefault(slog.Default())
	for _, c := range []struct {
		level string
		shown bool
	}{{"debug", true}, {"info", false}} {
		var errb bytes.Buffer
		a := &app{stderr: &errb, logLevel: c.level, logFormat: "json", dataDir: t.TempDir()}
		if err := a.setup(&cobra.Command{}); err != nil {
			t.Fatal(err)
		}
		log.Printf("[zeroconf] no suitable IPv4 interface")
		if !c.shown {
			if errb.Len() != 0 {
				t.Errorf("--log-level %s: a library's log line was shown: %q", c.level, errb.String())
			}
			continue
		}
		var line struct {
			Level, Msg string
		}
		if err := json.Unmarshal(bytes.TrimSpace(errb.Bytes()), &line); err != nil {
			t.Fatalf("--log-level %s: library log line %q is not one JSON record: %v", c.level, errb.String(), err)
		}
		if line.Level != "DEBUG" || !strings.Contains(line.Msg, "no suitable IPv4 interface") {
			t.Errorf("--log-level %s: library log line as %+v, want level DEBUG and its text", c.level, line)
		}
	}
}
