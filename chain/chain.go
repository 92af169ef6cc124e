package chain

import (
	"encoding/json"
	"fmt"
	"math/big"
	"time"
)

// Chain is a whole chain held in memory: what the Python original's Chain
// class was, with validation that reports the rule broken. The store keeps
// chains on disk; Chain is for imports, exports, tests and small tools. A
// Chain is not safe for concurrent mutation.
type Chain struct {
	Params *Params
	Blocks []Block
	// entries[i] is the index entry of Blocks[i], filled by Validate.
	entries []Entry
	byHash  map[Hash]int
}

// NewChain returns the chain holding only p's genesis block.
func NewChain(p *Params) *Chain {
	return &Chain{
		Params:  p,
		Blocks:  []Block{p.Genesis},
		entries: []Entry{p.GenesisEntry()},
		byHash:  map[Hash]int{p.Genesis.Hash: 0},
	}
}

// IndexError locates a validation failure in a chain: which block broke
// which rule. Err is usually a *RuleError.
type IndexError struct {
	Index int
	Err   error
}

func (e *IndexError) Error() string { return fmt.Sprintf("block %d: %v", e.Index, e.Err) }
func (e *IndexError) Unwrap() error { return e.Err }

// Validate checks every block: the first is the network's genesis, each
// other is a valid child of the one before. now is the local time for the
// future-timestamp rule; nil means time.Now. On success the chain's index
// (work, lookups by hash) is rebuilt. The first failure is returned as an
// *IndexError wrapping a *RuleError.
func (c *Chain) Validate(now func() time.Time) error {
	if now == nil {
		now = time.Now
	}
	if len(c.Blocks) == 0 {
		return &IndexError{0, ruleError(ErrBadGenesis, "chain is empty")}
	}
	if err := c.Params.CheckGenesis(&c.Blocks[0]); err != nil {
		return &IndexError{0, err}
	}
	g := c.Params.GenesisEntry()
	v, err := NewValidator(c.Params, g, []int64{g.Time})
	if err != nil {
		return err
	}
	entries := make([]Entry, 1, len(c.Blocks))
	entries[0] = g
	t := now().Unix()
	for i := 1; i < len(c.Blocks); i++ {
		e, err := v.Next(&c.Blocks[i], t)
		if err != nil {
			return &IndexError{i, err}
		}
		entries = append(entries, e)
	}
	c.entries = entries
	c.byHash = make(map[Hash]int, len(c.Blocks))
	for i := range c.Blocks {
		c.byHash[c.Blocks[i].Hash] = i
	}
	return nil
}

// Height returns the index of the last block; the genesis alone is height 0.
func (c *Chain) Height() uint64 { return uint64(len(c.Blocks) - 1) }

// Tip returns the last block.
func (c *Chain) Tip() *Block { return &c.Blocks[len(c.Blocks)-1] }

// TipEntry returns the last block's index entry. The chain must be validated.
func (c *Chain) TipEntry() Entry { return c.entries[len(c.entries)-1] }

// Work returns the chain's cumulative work. The chain must be validated.
func (c *Chain) Work() *big.Int { return c.TipEntry().Work }

// BlockAt returns the block at index i, or nil.
func (c *Chain) BlockAt(i uint64) *Block {
	if i >= uint64(len(c.Blocks)) {
		return nil
	}
	return &c.Blocks[i]
}

// BlockByHash returns the block with hash h, or nil.
func (c *Chain) BlockByHash(h Hash) *Block {
	if i, ok := c.byHash[h]; ok {
		return &c.Blocks[i]
	}
	return nil
}

// Equal reports whether c and o hold the same blocks.
func (c *Chain) Equal(o *Chain) bool {
	if len(c.Blocks) != len(o.Blocks) {
		return false
	}
	for i := range c.Blocks {
		if c.Blocks[i] != o.Blocks[i] {
			return false
		}
	}
	return true
}

// CompareWork returns -1, 0 or +1 as c has less, equal or more work than o.
// Both must be validated.
func (c *Chain) CompareWork(o *Chain) int { return c.Work().Cmp(o.Work()) }

// Append validates b as the child of the tip and appends it.
func (c *Chain) Append(b Block, now time.Time) error {
	tip := c.TipEntry()
	n := min(len(c.Blocks), c.Params.TimeWindow())
	recent := make([]int64, n)
	for i := range recent {
		recent[i] = c.Blocks[len(c.Blocks)-1-i].Timestamp
	}
	e, err := c.Params.CheckBlock(&b, &tip, recent, now.Unix())
	if err != nil {
		return err
	}
	c.Blocks = append(c.Blocks, b)
	c.entries = append(c.entries, e)
	c.byHash[b.Hash] = len(c.Blocks) - 1
	return nil
}

// MarshalJSON writes the chain as a jbc JSON list of blocks.
func (c *Chain) MarshalJSON() ([]byte, error) { return json.Marshal(c.Blocks) }
