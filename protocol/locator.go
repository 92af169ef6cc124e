package protocol

import (
	"fmt"

	"github.com/jbc-project/jbc/chain"
)

// LocatorHeights returns the heights a locator of at most MaxLocatorLen
// hashes lists for a chain whose tip is at height tip (see
// chain.LocatorHeights): the 10 newest one apart, then steps doubling, then
// the genesis.
func LocatorHeights(tip uint64) []uint64 { return chain.LocatorHeights(tip, MaxLocatorLen) }

// BuildLocator returns the locator of a best chain whose tip is at height
// tip, looking each height of LocatorHeights up with hashAt.
func BuildLocator(tip uint64, hashAt func(height uint64) (chain.Hash, error)) ([]chain.Hash, error) {
	hs := LocatorHeights(tip)
	loc := make([]chain.Hash, len(hs))
	for i, h := range hs {
		var err error
		if loc[i], err = hashAt(h); err != nil {
			return nil, fmt.Errorf("protocol: locator hash at height %d: %w", h, err)
		}
	}
	return loc, nil
}
