package chainsync

import (
	"testing"
)

// TestLegacyPeerURLs: only http:// URLs are legacy peers.
func TestLegacyPeerURLs(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:5000":                 "http://127.0.0.1:5000/blockchain.json",
		"http://127.0.0.1:5000/":                "http://127.0.0.1:5000/blockchain.json",
		"http://127.0.0.1:5000/blockchain.json": "http://127.0.0.1:5000/blockchain.json",
		"http://127.0.0.1:5000/chain?x=1":       "http://127.0.0.1:5000/chain?x=1",
	} {
		if got, err := LegacyChainURL(in); err != nil || got != want {
			t.Errorf("LegacyChainURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"127.0.0.1:5000", "https://127.0.0.1:5000", "file:///etc/passwd", "http://u:p@127.0.0.1:5000", "http://", ""} {
		if got, err := LegacyChainURL(in); err == nil {
			t.Errorf("LegacyChainURL(%q) = %q, want an error", in, got)
		}
	}
}
