package chain

// LocatorDense is how many of the newest heights a block locator lists one
// apart before its steps start doubling: Bitcoin's choice, which makes the
// common case (a peer a few blocks behind or on a short fork) resolve at the
// first try, while a long chain still needs only logarithmically many
// hashes.
const LocatorDense = 10

// LocatorHeights returns the heights of the best-chain blocks a block
// locator lists for a chain whose tip is at height tip: the LocatorDense
// newest one apart (tip, tip-1, ..., tip-9), then steps doubling (tip-11,
// tip-15, tip-23, ...), then the genesis (0) last. It returns at most max
// heights (max >= 1), newest first, each once; the genesis is always
// included.
func LocatorHeights(tip uint64, max int) []uint64 {
	hs := make([]uint64, 0, 24)
	h, step := tip, uint64(1)
	for h > 0 && len(hs) < max-1 {
		hs = append(hs, h)
		if len(hs) >= LocatorDense {
			step *= 2
		}
		if h <= step {
			break
		}
		h -= step
	}
	return append(hs, 0)
}
