package chain

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Params are the consensus rules of one jbc network. A network is named by
// the hash of its genesis block (ID); two nodes are on the same network when
// their genesis hashes are equal.
type Params struct {
	// Name is a label for people; it is not part of consensus.
	Name string
	// Genesis is the network's first block. It is taken as given: its hash
	// must recompute, but it need not meet any difficulty.
	Genesis Block
	// Bits is the difficulty, in leading zero bits of the hash, required of
	// the blocks after genesis until the first retarget (and forever when
	// Spacing is zero). A Python chain with NUM_ZEROS = z has Bits = 4z.
	Bits uint8
	// Spacing is the target time between blocks. Zero fixes the difficulty
	// at Bits.
	Spacing time.Duration
	// RetargetInterval is the number of blocks between retargets; see
	// NextBits.
	RetargetInterval uint64
	// MaxRetargetStep bounds how many bits one retarget may move.
	MaxRetargetStep uint8
	// MinBits and MaxBits bound the difficulty retargeting may reach.
	MinBits, MaxBits uint8
	// MaxDataSize is the largest data field, in bytes, a block may carry.
	MaxDataSize int
	// MedianTimeBlocks is how many previous blocks the timestamp median
	// is taken over.
	MedianTimeBlocks int
	// MedianTimeInclusive lets a timestamp equal the median instead of
	// exceeding it. The Python original stamped blocks with a clock in
	// whole seconds and mined several blocks a second, so its chains have
	// runs of equal timestamps; networks imported from it set this.
	MedianTimeInclusive bool
	// MaxFutureDrift is how far ahead of the local clock a timestamp may be.
	MaxFutureDrift time.Duration
}

// Defaults shared by the built-in networks and by new networks made with
// jbc init or import.
const (
	// DefaultMedianTimeBlocks follows Bitcoin: 11 blocks is enough that a
	// few miners with bad clocks cannot drag the median.
	DefaultMedianTimeBlocks = 11
	// DefaultMaxFutureDrift is 2 h, as in Bitcoin: wide enough for poorly
	// synchronised clocks, narrow enough that time cannot be run ahead.
	DefaultMaxFutureDrift = 2 * time.Hour
	// DefaultMaxDataSize is 64 KiB: room for many submitted entries while
	// keeping a protocol page of blocks small.
	DefaultMaxDataSize = 64 << 10
	// DefaultRetargetInterval: 20 blocks average out clock noise of a few
	// seconds while reacting to a new miner within minutes.
	DefaultRetargetInterval = 20
	// DefaultMaxRetargetStep: two bits (a factor of 4) per retarget.
	DefaultMaxRetargetStep = 2
	// MaxBitsLimit is the highest meaningful difficulty: a SHA-256 hash has
	// 256 bits but Work must stay representable; 255 is already absurd.
	MaxBitsLimit = 255
)

// maxRetargetInterval bounds RetargetInterval, and with it TimeWindow: the
// timestamps every Validator keeps and a store reads per block. Without a
// bound a genesis file could make NewValidator allocate without limit.
// 10 000 is far above any sensible interval (Bitcoin's is 2016).
const maxRetargetInterval = 10000

// ID returns the network's identifier: its genesis hash.
func (p *Params) ID() Hash { return p.Genesis.Hash }

// Validate checks that the parameters are usable: the genesis block's hash
// recomputes and the limits are consistent.
func (p *Params) Validate() error {
	g := &p.Genesis
	if g.Index != 0 {
		return fmt.Errorf("params: genesis index is %d, want 0", g.Index)
	}
	if !g.PrevHash.IsZero() {
		return errors.New("params: genesis prev_hash must be empty")
	}
	if g.ComputeHash() != g.Hash {
		return fmt.Errorf("params: genesis hash %s does not match its header (%s)", g.Hash, g.ComputeHash())
	}
	if p.MinBits > p.MaxBits {
		return fmt.Errorf("params: min_bits %d above max_bits %d", p.MinBits, p.MaxBits)
	}
	if p.Bits < p.MinBits || p.Bits > p.MaxBits {
		return fmt.Errorf("params: bits %d outside [%d, %d]", p.Bits, p.MinBits, p.MaxBits)
	}
	if p.Spacing < 0 || (p.Spacing > 0 && p.Spacing < time.Second) {
		return fmt.Errorf("params: spacing %s: want 0 or at least 1s", p.Spacing)
	}
	if p.Spacing > 0 && (p.RetargetInterval < 2 || p.RetargetInterval > maxRetargetInterval) {
		return fmt.Errorf("params: retarget interval %d: want 2 to %d", p.RetargetInterval, maxRetargetInterval)
	}
	if p.MaxDataSize < 0 {
		return errors.New("params: negative max_data_size")
	}
	if p.MedianTimeBlocks < 1 || p.MedianTimeBlocks > 1000 {
		return fmt.Errorf("params: median_time_blocks %d outside [1, 1000]", p.MedianTimeBlocks)
	}
	if p.MaxFutureDrift <= 0 {
		return errors.New("params: max_future_drift must be positive")
	}
	return nil
}

// TimeWindow is how many recent timestamps (the parent's and its
// ancestors') validating a block needs: enough for the median and for a
// retarget.
func (p *Params) TimeWindow() int {
	n := p.MedianTimeBlocks
	if p.Spacing > 0 && int(p.RetargetInterval) > n {
		n = int(p.RetargetInterval)
	}
	return n
}

// paramsJSON is the genesis file: the network's rules and genesis block.
type paramsJSON struct {
	Name             string `json:"name"`
	Genesis          Block  `json:"genesis"`
	Bits             uint8  `json:"bits"`
	Spacing          string `json:"spacing"`
	RetargetInterval uint64 `json:"retarget_interval"`
	MaxRetargetStep  uint8  `json:"max_retarget_step"`
	MinBits          uint8  `json:"min_bits"`
	MaxBits          uint8  `json:"max_bits"`
	MaxDataSize      int    `json:"max_data_size"`
	MedianTimeBlocks int    `json:"median_time_blocks"`
	MaxFutureDrift   string `json:"max_future_drift"`
	// Omitted when false, so genesis files of networks without it are
	// unchanged.
	MedianTimeInclusive bool `json:"median_time_inclusive,omitempty"`
}

// MarshalJSON writes the parameters as a genesis file.
func (p Params) MarshalJSON() ([]byte, error) {
	return json.Marshal(paramsJSON{
		Name: p.Name, Genesis: p.Genesis, Bits: p.Bits, Spacing: p.Spacing.String(),
		RetargetInterval: p.RetargetInterval, MaxRetargetStep: p.MaxRetargetStep,
		MinBits: p.MinBits, MaxBits: p.MaxBits, MaxDataSize: p.MaxDataSize,
		MedianTimeBlocks: p.MedianTimeBlocks, MaxFutureDrift: p.MaxFutureDrift.String(),
		MedianTimeInclusive: p.MedianTimeInclusive,
	})
}

// UnmarshalJSON reads a genesis file and validates it.
func (p *Params) UnmarshalJSON(data []byte) error {
	var j paramsJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	spacing, err := time.ParseDuration(j.Spacing)
	if err != nil {
		return fmt.Errorf("params: spacing: %w", err)
	}
	drift, err := time.ParseDuration(j.MaxFutureDrift)
	if err != nil {
		return fmt.Errorf("params: max_future_drift: %w", err)
	}
	np := Params{
		Name: j.Name, Genesis: j.Genesis, Bits: j.Bits, Spacing: spacing,
		RetargetInterval: j.RetargetInterval, MaxRetargetStep: j.MaxRetargetStep,
		MinBits: j.MinBits, MaxBits: j.MaxBits, MaxDataSize: j.MaxDataSize,
		MedianTimeBlocks: j.MedianTimeBlocks, MaxFutureDrift: drift,
		MedianTimeInclusive: j.MedianTimeInclusive,
	}
	if err := np.Validate(); err != nil {
		return err
	}
	*p = np
	return nil
}

// NewGenesis returns a genesis block with the given data and timestamp. Its
// nonce is zero: a genesis block is taken as given and needs no work.
func NewGenesis(data string, timestamp int64) Block {
	g := Block{Index: 0, Timestamp: timestamp, Data: data}
	g.Hash = g.ComputeHash()
	return g
}

// NewParams returns the rules of a new private network: fixed difficulty
// when spacing is zero, else retargeting toward spacing. The returned Params
// are validated.
func NewParams(name, genesisData string, genesisTime int64, bits uint8, spacing time.Duration) (*Params, error) {
	p := &Params{
		Name:             name,
		Genesis:          NewGenesis(genesisData, genesisTime),
		Bits:             bits,
		Spacing:          spacing,
		MinBits:          bits,
		MaxBits:          bits,
		MaxDataSize:      DefaultMaxDataSize,
		MedianTimeBlocks: DefaultMedianTimeBlocks,
		MaxFutureDrift:   DefaultMaxFutureDrift,
	}
	if spacing > 0 {
		p.RetargetInterval = DefaultRetargetInterval
		p.MaxRetargetStep = DefaultMaxRetargetStep
		p.MinBits = 1
		p.MaxBits = MaxBitsLimit
		if bits < 1 {
			p.MinBits = 0
		}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// MainNet returns the built-in default network that a node joins when its
// data directory holds no chain: difficulty retargeting toward one block
// every 30 s, starting at 22 bits (a few seconds of one modern core).
func MainNet() *Params {
	return &Params{
		Name:             "jbc-main",
		Genesis:          NewGenesis("jbc genesis: the JackBlockChain carried on, 2026-11-23", 1795392000),
		Bits:             22,
		Spacing:          30 * time.Second,
		RetargetInterval: DefaultRetargetInterval,
		MaxRetargetStep:  DefaultMaxRetargetStep,
		MinBits:          16,
		MaxBits:          MaxBitsLimit,
		MaxDataSize:      DefaultMaxDataSize,
		MedianTimeBlocks: DefaultMedianTimeBlocks,
		MaxFutureDrift:   DefaultMaxFutureDrift,
	}
}

// TestNet returns the easy regression-test network: a fixed difficulty of
// one bit, so blocks mine in microseconds, and a genesis dated 2020 so that
// generated chains of a million blocks one second apart stay in the past.
func TestNet() *Params {
	return &Params{
		Name:             "jbc-test",
		Genesis:          NewGenesis("jbc test network", 1577836800),
		Bits:             1,
		MinBits:          1,
		MaxBits:          1,
		MaxDataSize:      DefaultMaxDataSize,
		MedianTimeBlocks: DefaultMedianTimeBlocks,
		MaxFutureDrift:   DefaultMaxFutureDrift,
	}
}

// Network returns a built-in network by name: "main" or "test".
func Network(name string) (*Params, error) {
	switch name {
	case "main", "jbc-main":
		return MainNet(), nil
	case "test", "jbc-test":
		return TestNet(), nil
	}
	return nil, fmt.Errorf("unknown network %q (want main or test)", name)
}
