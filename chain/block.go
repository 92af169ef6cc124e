package chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// HashSize is the size of a block hash in bytes.
const HashSize = sha256.Size

// Hash is a block hash: the SHA-256 of the block's header string. Its text
// form is 64 lowercase hex digits; the zero Hash stands for the empty
// prev_hash of a genesis block and has the empty string as its text form.
type Hash [HashSize]byte

// IsZero reports whether h is the zero hash.
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns h as lowercase hex, or "" for the zero hash.
func (h Hash) String() string {
	if h.IsZero() {
		return ""
	}
	return hex.EncodeToString(h[:])
}

// Short returns the first 12 hex digits of h, for logs.
func (h Hash) Short() string {
	s := h.String()
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; see ParseHash.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash parses 64 lowercase hex digits, or "" for the zero hash. The
// all-zero hex string is refused: its hash text would differ from the empty
// one the zero Hash hashes as.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if s == "" {
		return h, nil
	}
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("hash %q: want %d hex digits, have %d", truncate(s), 2*HashSize, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return h, fmt.Errorf("hash %q: not lowercase hex", truncate(s))
		}
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", truncate(s), err)
	}
	if h.IsZero() {
		return h, fmt.Errorf("hash %q: the all-zero hash is reserved", truncate(s))
	}
	return h, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Block is a jbc block, field for field the block of the Python
// JackBlockChain. The zero PrevHash is the genesis block's empty prev_hash.
type Block struct {
	Index     uint64
	Timestamp int64 // Unix seconds
	Data      string
	PrevHash  Hash
	Nonce     uint64
	Hash      Hash
}

// AppendHeader appends the block's header string, the text its hash is taken
// over: decimal(index) + prev_hash + data + decimal(timestamp) + decimal(nonce).
func (b *Block) AppendHeader(dst []byte) []byte {
	dst = b.appendPrefix(dst)
	return strconv.AppendUint(dst, b.Nonce, 10)
}

// appendPrefix appends the header string without the nonce: the part of the
// header the miner hashes once per template.
func (b *Block) appendPrefix(dst []byte) []byte {
	dst = strconv.AppendUint(dst, b.Index, 10)
	if !b.PrevHash.IsZero() {
		dst = hex.AppendEncode(dst, b.PrevHash[:])
	}
	dst = append(dst, b.Data...)
	return strconv.AppendInt(dst, b.Timestamp, 10)
}

// HeaderLen returns the length of the block's header string.
func (b *Block) HeaderLen() int {
	n := decLen(b.Index) + len(b.Data) + decLen(b.Nonce) + len(strconv.AppendInt(make([]byte, 0, 20), b.Timestamp, 10))
	if !b.PrevHash.IsZero() {
		n += 2 * HashSize
	}
	return n
}

func decLen(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// ComputeHash returns the SHA-256 of the block's header string. It does not
// allocate for blocks whose header fits in 256 bytes.
func (b *Block) ComputeHash() Hash {
	var buf [256]byte
	return sha256.Sum256(b.AppendHeader(buf[:0]))
}

// blockJSON is the JSON form of a block; integer fields are decoded by
// jsonUint and jsonInt, which take strings or numbers.
type blockJSON struct {
	Index     *json.RawMessage `json:"index"`
	Timestamp *json.RawMessage `json:"timestamp"`
	Data      *string          `json:"data"`
	PrevHash  *string          `json:"prev_hash"`
	Hash      *string          `json:"hash"`
	Nonce     *json.RawMessage `json:"nonce"`
}

// jbcJSON is the block as jbc writes it: integers as JSON numbers.
type jbcJSON struct {
	Index     uint64 `json:"index"`
	Timestamp int64  `json:"timestamp"`
	Data      string `json:"data"`
	PrevHash  string `json:"prev_hash"`
	Hash      string `json:"hash"`
	Nonce     uint64 `json:"nonce"`
}

// pyJSON is the block as the Python original writes it: every value a string.
type pyJSON struct {
	Index     string `json:"index"`
	Timestamp string `json:"timestamp"`
	Data      string `json:"data"`
	PrevHash  string `json:"prev_hash"`
	Hash      string `json:"hash"`
	Nonce     string `json:"nonce"`
}

// MarshalJSON writes the block in jbc's JSON form, integers as numbers.
func (b Block) MarshalJSON() ([]byte, error) {
	return json.Marshal(jbcJSON{
		Index: b.Index, Timestamp: b.Timestamp, Data: b.Data,
		PrevHash: b.PrevHash.String(), Hash: b.Hash.String(), Nonce: b.Nonce,
	})
}

// MarshalPython writes the block as the Python original does: every value a
// JSON string.
func (b *Block) MarshalPython() ([]byte, error) {
	return json.Marshal(pyJSON{
		Index: strconv.FormatUint(b.Index, 10), Timestamp: strconv.FormatInt(b.Timestamp, 10),
		Data: b.Data, PrevHash: b.PrevHash.String(), Hash: b.Hash.String(),
		Nonce: strconv.FormatUint(b.Nonce, 10),
	})
}

// UnmarshalJSON reads a block in either JSON form: integer fields as strings
// or numbers. Every field is required; unknown keys are ignored. It checks
// the form of each field, not the block's validity.
func (b *Block) UnmarshalJSON(data []byte) error {
	var j blockJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	var (
		nb  Block
		err error
	)
	if j.Index == nil {
		return errors.New("missing field index")
	}
	if nb.Index, err = jsonUint(*j.Index); err != nil {
		return fmt.Errorf("field index: %w", err)
	}
	if j.Timestamp == nil {
		return errors.New("missing field timestamp")
	}
	if nb.Timestamp, err = jsonInt(*j.Timestamp); err != nil {
		return fmt.Errorf("field timestamp: %w", err)
	}
	if j.Data == nil {
		return errors.New("missing field data")
	}
	nb.Data = *j.Data
	if j.PrevHash == nil {
		return errors.New("missing field prev_hash")
	}
	if nb.PrevHash, err = ParseHash(*j.PrevHash); err != nil {
		return fmt.Errorf("field prev_hash: %w", err)
	}
	if j.Hash == nil {
		return errors.New("missing field hash")
	}
	if nb.Hash, err = ParseHash(*j.Hash); err != nil {
		return fmt.Errorf("field hash: %w", err)
	}
	if nb.Hash.IsZero() {
		return errors.New("field hash: empty")
	}
	if j.Nonce == nil {
		return errors.New("missing field nonce")
	}
	if nb.Nonce, err = jsonUint(*j.Nonce); err != nil {
		return fmt.Errorf("field nonce: %w", err)
	}
	*b = nb
	return nil
}

// jsonDigits returns the digits of a JSON string or number holding an
// integer.
func jsonDigits(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	if bytes.ContainsAny(raw, ".eE") {
		return "", fmt.Errorf("%s is not an integer", truncate(string(raw)))
	}
	return string(raw), nil
}

func jsonUint(raw json.RawMessage) (uint64, error) {
	s, err := jsonDigits(raw)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal integer in range", truncate(s))
	}
	return v, nil
}

func jsonInt(raw json.RawMessage) (int64, error) {
	s, err := jsonDigits(raw)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal integer in range", truncate(s))
	}
	return v, nil
}
