package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jbc-project/jbc/chain"
)

// The Python JackBlockChain's nodes serve their chain at GET /blockchain.json
// as json.dumps of a list of blocks, each the dict of its file (every value
// a string), genesis first. This file reads that form from a stream; it
// does no networking (package node fetches it).

// Errors of ReadPythonList besides *ListError.
var (
	// ErrListTooLarge: a /blockchain.json stream is longer than the limit
	// it was read with.
	ErrListTooLarge = errors.New("the chain is larger than the limit")
	// ErrNoBlocks: the list is empty. A whole chain has at least its
	// genesis; a range past the tip of jbc's /blockchain.json?from=H is
	// empty.
	ErrNoBlocks = errors.New("the list holds no blocks")
)

// ListError reports a problem with one block of a /blockchain.json list:
// Src names the list (its URL), Index the block's place in it. Err says
// what; when the block breaks a consensus rule it wraps the
// *chain.RuleError (errors.As).
type ListError struct {
	Src   string
	Index uint64
	Err   error
}

func (e *ListError) Error() string { return fmt.Sprintf("%s: block %d: %v", e.Src, e.Index, e.Err) }
func (e *ListError) Unwrap() error { return e.Err }

// ReadPythonList reads a chain in the form the original serves at GET
// /blockchain.json from r, one block at a time, calling fn with each in
// order; memory does not grow with the list beyond what fn keeps. Values
// may be strings or numbers; unknown keys are ignored. The blocks must have
// consecutive indices, the first being first (0 for a whole chain; jbc's
// own /blockchain.json?from=H starts at H). At most limit bytes are read:
// a longer stream fails with ErrListTooLarge. It checks the form, not the
// chain's validity. Errors name the block (*ListError) with src; an error
// from fn is returned as it is.
func ReadPythonList(r io.Reader, src string, first uint64, limit int64, fn func(chain.Block) error) error {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	dec := json.NewDecoder(lr)
	tooLarge := func(err error) error {
		if lr.N <= 0 {
			return fmt.Errorf("%s: %w (%d bytes)", src, ErrListTooLarge, limit)
		}
		return err
	}
	tok, err := dec.Token()
	if err != nil {
		return tooLarge(fmt.Errorf("%s: not a JSON list of blocks: %w", src, err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("%s: not a JSON list of blocks (starts with %v)", src, tok)
	}
	next := first
	for dec.More() {
		var b chain.Block
		if err := dec.Decode(&b); err != nil {
			return tooLarge(&ListError{src, next, fmt.Errorf("bad block JSON: %w", err)})
		}
		if b.Index != next {
			return &ListError{src, next, fmt.Errorf("holds block index %d, but block %d comes here", b.Index, next)}
		}
		if err := fn(b); err != nil {
			return err
		}
		next++
	}
	if _, err := dec.Token(); err != nil {
		return tooLarge(fmt.Errorf("%s: the list of blocks does not end: %w", src, err))
	}
	// Nothing but white space may follow the list.
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("more JSON")
		}
		return tooLarge(fmt.Errorf("%s: data after the list of blocks: %w", src, err))
	}
	if lr.N <= 0 {
		return fmt.Errorf("%s: %w (%d bytes)", src, ErrListTooLarge, limit)
	}
	if next == first {
		return fmt.Errorf("%s: %w", src, ErrNoBlocks)
	}
	return nil
}

// ImportPythonList imports a chain read by ReadPythonList from src (a URL,
// for messages), blocks[0] its genesis, into dataDir exactly as
// ImportPython imports a chaindata directory: validated whole before
// anything is written, an error naming the block and the rule (a
// *FileError whose Path is "SRC: block N", wrapping the *chain.RuleError)
// and leaving dataDir as it was.
func ImportPythonList(dataDir, src string, blocks []chain.Block, cfg PythonImport) (ImportResult, error) {
	return importBlocks(dataDir, func(i uint64) string { return fmt.Sprintf("%s: block %d", src, i) }, blocks, cfg)
}
