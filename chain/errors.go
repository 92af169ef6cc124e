package chain

import "fmt"

// ErrorCode names the consensus rule a block broke.
type ErrorCode int

// The consensus rules. Each RuleError carries one of these, so that callers
// can tell which rule failed, and so that only a broken rule (never a local
// or disk error) counts against the peer that sent the block.
const (
	// ErrBadHash: the hash field is not the SHA-256 of the header string.
	ErrBadHash ErrorCode = iota + 1
	// ErrDifficulty: the hash has fewer leading zero bits than required.
	ErrDifficulty
	// ErrBadIndex: the index is not the parent's index plus one.
	ErrBadIndex
	// ErrBadLink: prev_hash is not the parent's hash.
	ErrBadLink
	// ErrTimeTooOld: the timestamp is not later than the median of the
	// previous MedianTimeBlocks blocks.
	ErrTimeTooOld
	// ErrTimeTooNew: the timestamp is more than MaxFutureDrift ahead of the
	// local clock.
	ErrTimeTooNew
	// ErrDataTooLarge: the data field is over the network's MaxDataSize.
	ErrDataTooLarge
	// ErrBadData: the data field is not valid UTF-8.
	ErrBadData
	// ErrBadGenesis: a block at index 0 is not the network's genesis block.
	ErrBadGenesis
	// ErrTimeWarp: on a network with TimeRulesAnchored, a retarget
	// window's first block is more than MaxFutureDrift earlier than its
	// parent, or a window's last block is earlier than the window's first.
	ErrTimeWarp
)

var codeNames = map[ErrorCode]string{
	ErrBadHash:      "bad-hash",
	ErrDifficulty:   "difficulty",
	ErrBadIndex:     "bad-index",
	ErrBadLink:      "bad-link",
	ErrTimeTooOld:   "time-too-old",
	ErrTimeTooNew:   "time-too-new",
	ErrDataTooLarge: "data-too-large",
	ErrBadData:      "bad-data",
	ErrBadGenesis:   "bad-genesis",
	ErrTimeWarp:     "time-warp",
}

// String returns the rule's short name, such as "bad-link".
func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("ErrorCode(%d)", int(c))
}

// RuleError reports a block that breaks a consensus rule. Check for it with
// errors.As; Code says which rule.
type RuleError struct {
	Code   ErrorCode
	Reason string
}

func (e *RuleError) Error() string { return e.Code.String() + ": " + e.Reason }

func ruleError(c ErrorCode, format string, args ...any) error {
	return &RuleError{Code: c, Reason: fmt.Sprintf(format, args...)}
}
