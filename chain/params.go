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
	// runs of equal timestamps; networks imported from it set this, and
	// so do networks made by NewParams, so that a chain may make any
	// number of blocks a second with its time kept to the clock.
	MedianTimeInclusive bool
	// MaxFutureDrift is how far ahead of the local clock a timestamp may be.
	// Under TimeRulesAnchored it also bounds how far a retargeting
	// network's window may open before the previous window's end.
	MaxFutureDrift time.Duration
	// TimeRules is the version of the timestamp and retarget rules; see
	// TimeRules. Old genesis files, which do not name one, mean
	// TimeRulesOriginal.
	TimeRules TimeRules
}

// TimeRules names a version of the rules that read block timestamps: the
// retarget's measure of time and the bounds on a window's first and last
// block. A network keeps the version its genesis file names for good:
// changing it would fork the network.
type TimeRules uint8

const (
	// TimeRulesOriginal are the rules jbc's first networks were made with,
	// kept for them (the built-in jbc-main and jbc-test, networks made by
	// jbc init before TimeRulesAnchored, imported Python chains): a
	// retarget measures its window from the window's own first block, and
	// timestamps are bounded only by the median of the past and the clock.
	// On a retargeting network they allow a time warp (docs/protocol.md).
	TimeRulesOriginal TimeRules = 0
	// TimeRulesAnchored anchors each retarget window to the end of the one
	// before: the retarget measures from the previous window's last block,
	// a window's first block may be at most MaxFutureDrift earlier than its
	// parent, and a window's last block may not be earlier than its first.
	// Networks made by NewParams (jbc init) use it.
	TimeRulesAnchored TimeRules = 1
)

// String returns the version's name as docs and jbc's output use it.
func (r TimeRules) String() string {
	switch r {
	case TimeRulesOriginal:
		return "original"
	case TimeRulesAnchored:
		return "anchored"
	}
	return fmt.Sprintf("TimeRules(%d)", uint8(r))
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
	if p.TimeRules > TimeRulesAnchored {
		return fmt.Errorf("params: time_rules %d is unknown to this jbc (it knows %d and %d): upgrade jbc to join this network", p.TimeRules, TimeRulesOriginal, TimeRulesAnchored)
	}
	return nil
}

// retargets reports whether the difficulty follows block times.
func (p *Params) retargets() bool { return p.Spacing > 0 && p.RetargetInterval >= 2 }

// anchored reports whether the anchored window rules apply: only on
// retargeting networks, as with a fixed difficulty timestamps decide
// nothing but their own order.
func (p *Params) anchored() bool { return p.TimeRules == TimeRulesAnchored && p.retargets() }

// TimeWindow is how many recent timestamps (the parent's and its
// ancestors') validating a block needs: enough for the median and for a
// retarget, which under TimeRulesAnchored reaches one block further back,
// to the previous window's last block.
func (p *Params) TimeWindow() int {
	n := p.MedianTimeBlocks
	if p.Spacing > 0 {
		w := int(p.RetargetInterval)
		if p.TimeRules == TimeRulesAnchored {
			w++
		}
		n = max(n, w)
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
	// Omitted when TimeRulesOriginal, which is what a genesis file
	// written before the field existed means.
	TimeRules TimeRules `json:"time_rules,omitempty"`
}

// MarshalJSON writes the parameters as a genesis file.
func (p Params) MarshalJSON() ([]byte, error) {
	return json.Marshal(paramsJSON{
		Name: p.Name, Genesis: p.Genesis, Bits: p.Bits, Spacing: p.Spacing.String(),
		RetargetInterval: p.RetargetInterval, MaxRetargetStep: p.MaxRetargetStep,
		MinBits: p.MinBits, MaxBits: p.MaxBits, MaxDataSize: p.MaxDataSize,
		MedianTimeBlocks: p.MedianTimeBlocks, MaxFutureDrift: p.MaxFutureDrift.String(),
		MedianTimeInclusive: p.MedianTimeInclusive, TimeRules: p.TimeRules,
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
		MedianTimeInclusive: j.MedianTimeInclusive, TimeRules: j.TimeRules,
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
//
// New networks follow TimeRulesAnchored and let a timestamp equal the
// median of the past (MedianTimeInclusive), so that a chain may make any
// number of blocks a second without its time running ahead of the clock.
// A retargeting network's MaxFutureDrift is one window's target time
// (AnchoredMaxFutureDrift): time stamped ahead of the clock is time an
// attacker can spend to lower the difficulty, and one window's worth is
// worth less than a bit (docs/protocol.md, section 13).
func NewParams(name, genesisData string, genesisTime int64, bits uint8, spacing time.Duration) (*Params, error) {
	p := &Params{
		Name:                name,
		Genesis:             NewGenesis(genesisData, genesisTime),
		Bits:                bits,
		Spacing:             spacing,
		MinBits:             bits,
		MaxBits:             bits,
		MaxDataSize:         DefaultMaxDataSize,
		MedianTimeBlocks:    DefaultMedianTimeBlocks,
		MedianTimeInclusive: true,
		MaxFutureDrift:      DefaultMaxFutureDrift,
		TimeRules:           TimeRulesAnchored,
	}
	if spacing > 0 {
		p.RetargetInterval = DefaultRetargetInterval
		p.MaxRetargetStep = DefaultMaxRetargetStep
		p.MinBits = 1
		p.MaxBits = MaxBitsLimit
		if bits < 1 {
			p.MinBits = 0
		}
		p.MaxFutureDrift = AnchoredMaxFutureDrift(spacing, p.RetargetInterval)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// AnchoredMaxFutureDrift is the MaxFutureDrift NewParams gives a
// retargeting network: one window's target time, interval × spacing, and
// at most DefaultMaxFutureDrift. Clocks of honest nodes must agree within
// it (a block further ahead is refused until the clock catches up); an
// attacker can bank no more than it by stamping blocks ahead.
func AnchoredMaxFutureDrift(spacing time.Duration, interval uint64) time.Duration {
	if spacing <= 0 || interval == 0 || spacing > DefaultMaxFutureDrift/time.Duration(interval) {
		return DefaultMaxFutureDrift
	}
	return spacing * time.Duration(interval)
}

// MainNet returns the built-in default network that a node joins when its
// data directory holds no chain: difficulty retargeting toward one block
// every 30 s, starting at 22 bits (a few seconds of one modern core). It
// keeps TimeRulesOriginal: changing its rules would fork it from every node
// already running it, so its retargeting stays open to a time warp until
// its operators agree on a flag day (docs/protocol.md, section 13.5).
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
// It keeps TimeRulesOriginal and the strict median rule, as the stores and
// chains generated on it were made under them.
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
