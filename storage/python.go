package storage

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jbc-project/jbc/chain"
)

// The Python JackBlockChain keeps its chain in a "chaindata" directory, one
// JSON file per block named by the block's index zero-padded to six digits
// (000000.json, 000001.json, ...), every value a JSON string. This file
// reads and writes that layout and imports it into a Store.

// Limits and names of the Python layout.
const (
	// pythonIndexDigits is the zero-padding of a block file's name: the
	// original's str(index).zfill(6). Indices of a million and more simply
	// have more digits.
	pythonIndexDigits = 6
	// pythonExt is the extension of a block file.
	pythonExt = ".json"

	// PythonMaxDataSize is the MaxDataSize of a network made by import:
	// the original put no limit on a block's data, and 1 MiB holds any
	// chain it could realistically have made while keeping a bound.
	PythonMaxDataSize = 1 << 20
	// MaxPythonFileSize bounds one block file: the data field at its limit
	// with every byte escaped as \u00XX (6 bytes), plus the other fields.
	// A larger file cannot hold a valid block and is refused unread.
	MaxPythonFileSize = 6*PythonMaxDataSize + 4096

	// ImportBatch is how many blocks ImportPython stores per transaction:
	// large enough that the per-commit fsync is amortised, small enough
	// that a crash loses little work and memory per commit stays small.
	ImportBatch = 1000

	// InferZeros, as PythonImport.Zeros, makes ImportPython infer a new
	// network's difficulty from the chain; see PythonParams.
	InferZeros = -1
	// MaxZeros is the highest difficulty in hex zeros a network can have:
	// 4*63 = 252 bits, under chain.MaxBitsLimit.
	MaxZeros = chain.MaxBitsLimit / 4

	// ImportedName is the name given to a network made by import.
	ImportedName = "imported"
)

// FileError reports a problem with one file of a Python chaindata
// directory. Err says what; when the file's block breaks a consensus rule
// it wraps the *chain.RuleError (errors.As).
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// PythonFileName returns the name of block index's file in the Python
// layout: the index zero-padded to six digits, then ".json".
func PythonFileName(index uint64) string {
	return fmt.Sprintf("%0*d%s", pythonIndexDigits, index, pythonExt)
}

// ParsePythonFileName reports whether name is a block file of the Python
// layout and, if so, its index. Names not ending in ".json", and hidden
// names (a leading dot, as export's temporary files have), are not block
// files: ok is false and err nil. Any other ".json" name must be exactly
// PythonFileName of its index, else err says why; the original treated
// every ".json" file as a block, so such a name is an error, not noise.
func ParsePythonFileName(name string) (index uint64, ok bool, err error) {
	if !strings.HasSuffix(name, pythonExt) || strings.HasPrefix(name, ".") {
		return 0, false, nil
	}
	stem := strings.TrimSuffix(name, pythonExt)
	for i := 0; i < len(stem); i++ {
		if stem[i] < '0' || stem[i] > '9' {
			return 0, false, fmt.Errorf("%q is not a block file name (want %s, %s, ...)", name, PythonFileName(0), PythonFileName(1))
		}
	}
	index, perr := strconv.ParseUint(stem, 10, 64)
	if perr != nil {
		return 0, false, fmt.Errorf("%q is not a block file name: index out of range", name)
	}
	if want := PythonFileName(index); name != want {
		return 0, false, fmt.Errorf("%q is not a block file name: block %d's file is %s", name, index, want)
	}
	return index, true, nil
}

// KeyOrder is the order of the keys in a block file. The original wrote
// json.dump(block.to_dict()), so the order is whatever the interpreter's
// dict iterates in: Python 2 (which the original ran under, and in which
// its own files are written) orders these keys by their hashes, Python 3
// by insertion.
type KeyOrder uint8

const (
	// Python2Keys is the order of the original's own files, written by
	// Python 2: nonce, index, hash, timestamp, prev_hash, data. It is the
	// default.
	Python2Keys KeyOrder = iota
	// Python3Keys is the order the original writes under Python 3, that
	// of to_dict: index, timestamp, prev_hash, hash, data, nonce.
	Python3Keys
)

// String returns the order's name as ParseKeyOrder takes it.
func (k KeyOrder) String() string {
	if k == Python3Keys {
		return "python3"
	}
	return "python2"
}

// ParseKeyOrder returns the KeyOrder named "python2" or "python3".
func ParseKeyOrder(s string) (KeyOrder, error) {
	switch s {
	case "python2":
		return Python2Keys, nil
	case "python3":
		return Python3Keys, nil
	}
	return 0, fmt.Errorf("key order %q: want python2 (the original's own files) or python3", s)
}

// EncodePythonFile returns block b's file as the Python original writes it
// under Python 2, byte for byte: EncodePythonFileKeys with Python2Keys.
func EncodePythonFile(b *chain.Block) ([]byte, error) {
	return EncodePythonFileKeys(b, Python2Keys)
}

// EncodePythonFileKeys returns block b's file as the Python original writes
// it, byte for byte, with its keys in the given order: json.dump of its
// to_dict(), every value a string, ", " and ": " separators, non-ASCII
// escaped as \uXXXX, no trailing newline. The result is JSON-equal to
// b.MarshalPython. Data that is not valid UTF-8 cannot be written (Python
// could not have made it) and is an error.
func EncodePythonFileKeys(b *chain.Block, keys KeyOrder) ([]byte, error) {
	if !utf8.ValidString(b.Data) {
		return nil, fmt.Errorf("block %d: data is not valid UTF-8", b.Index)
	}
	out := make([]byte, 0, 200+len(b.Data))
	field := func(first bool, key, val string) {
		if !first {
			out = append(out, ", "...)
		}
		out = appendPyString(out, key)
		out = append(out, ": "...)
		out = appendPyString(out, val)
	}
	out = append(out, '{')
	if keys == Python3Keys {
		field(true, "index", strconv.FormatUint(b.Index, 10))
		field(false, "timestamp", strconv.FormatInt(b.Timestamp, 10))
		field(false, "prev_hash", b.PrevHash.String())
		field(false, "hash", b.Hash.String())
		field(false, "data", b.Data)
		field(false, "nonce", strconv.FormatUint(b.Nonce, 10))
	} else {
		field(true, "nonce", strconv.FormatUint(b.Nonce, 10))
		field(false, "index", strconv.FormatUint(b.Index, 10))
		field(false, "hash", b.Hash.String())
		field(false, "timestamp", strconv.FormatInt(b.Timestamp, 10))
		field(false, "prev_hash", b.PrevHash.String())
		field(false, "data", b.Data)
	}
	return append(out, '}'), nil
}

// appendPyString appends s as Python's json module writes a string with
// ensure_ascii (its default): printable ASCII as is, the usual short
// escapes, everything else as \u escapes in lowercase hex, characters
// beyond the BMP as surrogate pairs. s must be valid UTF-8.
func appendPyString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	u := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	}
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"':
			dst = append(dst, '\\', '"')
		case r == '\\':
			dst = append(dst, '\\', '\\')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '\b':
			dst = append(dst, '\\', 'b')
		case r == '\f':
			dst = append(dst, '\\', 'f')
		case r >= ' ' && r <= '~':
			dst = append(dst, byte(r))
		case r > 0xffff:
			r -= 0x10000
			dst = u(dst, 0xd800+(r>>10))
			dst = u(dst, 0xdc00+(r&0x3ff))
		default:
			dst = u(dst, r)
		}
	}
	return append(dst, '"')
}

// DecodePythonFile decodes the block file called name (a base name, as
// from ParsePythonFileName) holding data. Values may be JSON strings, as
// the original writes them, or numbers; every field is required and
// unknown keys are ignored. The block's index must be the one its name
// says. It checks the file's form, not the block's validity. Errors are
// *FileError values naming the file.
func DecodePythonFile(name string, data []byte) (chain.Block, error) {
	index, ok, err := ParsePythonFileName(name)
	if err == nil && !ok {
		err = fmt.Errorf("%q is not a block file name", name)
	}
	if err != nil {
		return chain.Block{}, &FileError{name, err}
	}
	var b chain.Block
	if err := b.UnmarshalJSON(data); err != nil {
		return chain.Block{}, &FileError{name, fmt.Errorf("bad block JSON: %w", err)}
	}
	if b.Index != index {
		return chain.Block{}, &FileError{name, fmt.Errorf("holds block index %d, but the file name says %d", b.Index, index)}
	}
	return b, nil
}

// ReadPython reads a Python chaindata directory into a chain, genesis
// first. The block files must be exactly 000000.json up to the last one,
// with no gap; other names (not ending in .json, or hidden) are ignored. It
// checks each file's form and name (DecodePythonFile), not the chain's
// validity: see ImportPython and chain.Chain.Validate for that. Errors name
// the file or the missing index; per-file errors are *FileError values.
func ReadPython(dir string) ([]chain.Block, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read chaindata: %w", err)
	}
	type file struct {
		index uint64
		name  string
	}
	var files []file
	for _, e := range ents {
		index, ok, err := ParsePythonFileName(e.Name())
		if err != nil {
			return nil, &FileError{filepath.Join(dir, e.Name()), err}
		}
		if !ok {
			continue
		}
		files = append(files, file{index, e.Name()})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("read chaindata: %s holds no block files (want %s, %s, ...)", dir, PythonFileName(0), PythonFileName(1))
	}
	// Names of more than six digits sort wrongly as text: sort by index.
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.index, b.index) })
	for i, f := range files {
		if f.index != uint64(i) {
			return nil, fmt.Errorf("read chaindata: %s: block %d is missing (no %s; next file is %s)", dir, i, PythonFileName(uint64(i)), f.name)
		}
	}
	blocks := make([]chain.Block, len(files))
	for i, f := range files {
		path := filepath.Join(dir, f.name)
		data, err := readLimited(path, MaxPythonFileSize)
		if err != nil {
			return nil, &FileError{path, err}
		}
		b, err := DecodePythonFile(f.name, data)
		if err != nil {
			return nil, &FileError{path, errors.Unwrap(err)}
		}
		blocks[i] = b
	}
	return blocks, nil
}

// readLimited reads a regular file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file is over %d bytes, too large for a block", limit)
	}
	return data, nil
}

// exportBatch is how many block files export writes before making them
// durable together and renaming them into place: one filesystem sync per
// batch instead of one fsync per file, which bounds export speed at a few
// hundred files a second on most disks.
const exportBatch = 1000

// ExportPython writes the best chain's blocks at heights from..to
// (inclusive, clipped to the tip) into dir in the Python layout, keys in
// the original's own order (Python2Keys), creating
// dir (0755) if needed, and returns how many it wrote. Each file is
// written atomically: blocks go to hidden temporary files, which are made
// durable (in batches of exportBatch) before being renamed over their
// final names, so a reader or a crash never sees half a block; an existing
// file of the same name is replaced. Files of other indices are left
// alone: to replace a longer chain, export into an empty directory. A
// Python node (or ReadPython) reads the result when from is 0.
func ExportPython(s *Store, dir string, from, to uint64) (int, error) {
	return ExportPythonProgress(s, dir, from, to, nil)
}

// ExportPythonProgress is ExportPython calling progress, if not nil, with
// the height of each block once its file is in place.
func ExportPythonProgress(s *Store, dir string, from, to uint64, progress func(height uint64)) (n int, err error) {
	if from > to {
		return 0, fmt.Errorf("export: from %d is above to %d", from, to)
	}
	each := func(fn func(*chain.Block) error) error { return s.ForEach(from, to, fn) }
	return ExportPythonBlocks(dir, each, PythonExport{Progress: progress})
}

// PythonExport says how ExportPythonBlocks writes. The zero value writes
// the original's own (Python 2) key order and reports no progress.
type PythonExport struct {
	// Keys is the key order of the files.
	Keys KeyOrder
	// Progress, if set, is called with the height of each block once its
	// file is in place.
	Progress func(height uint64)
}

// ExportPythonBlocks writes the blocks each yields (it calls its argument
// with every block, in order, and stops at its first error) into dir in the
// Python layout, as ExportPython does, and returns how many it wrote. It
// lets a chain read from elsewhere than an open Store (a running node's
// API) be exported the same way.
func ExportPythonBlocks(dir string, each func(func(*chain.Block) error) error, cfg PythonExport) (n int, err error) {
	progress := cfg.Progress
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	type pending struct {
		tmp, final string
		height     uint64
	}
	var batch []pending
	defer func() {
		for _, p := range batch { // left over after an error
			os.Remove(p.tmp)
		}
	}()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := syncFilesIn(dir, batch[0].tmp); err != nil {
			return err
		}
		for i, p := range batch {
			if err := os.Rename(p.tmp, p.final); err != nil {
				batch = batch[i:]
				return err
			}
			n++
			if progress != nil {
				progress(p.height)
			}
		}
		batch = batch[:0]
		return syncDir(dir)
	}
	err = each(func(b *chain.Block) error {
		data, err := EncodePythonFileKeys(b, cfg.Keys)
		if err != nil {
			return err
		}
		final := filepath.Join(dir, PythonFileName(b.Index))
		tmp, err := writeTemp(final, data, 0o644)
		if err != nil {
			return err
		}
		batch = append(batch, pending{tmp, final, b.Index})
		if len(batch) == exportBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	return n, nil
}

// writeTemp writes data to a new hidden temporary file beside path and
// returns its name; the data is not yet synced.
func writeTemp(path string, data []byte, perm fs.FileMode) (name string, err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return "", err
	}
	if err = f.Chmod(perm); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// syncDir fsyncs a directory so that renames and links in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// LeadingHexZeros returns how many leading hex digits of h are zero: the
// measure of work the Python original used (NUM_ZEROS).
func LeadingHexZeros(h *chain.Hash) int { return chain.LeadingZeroBits(h) / 4 }

// PythonParams returns the rules of a new network for a Python chain:
// genesis is blocks[0], taken as given; the difficulty is fixed at zeros
// leading hex zeros (bits = 4*zeros), or, when zeros is InferZeros, at the
// most the chain meets: the fewest leading hex zeros of any block after
// the genesis (0 for a chain of the genesis alone). The original's
// NUM_ZEROS is not written in its files; a chain it mined meets it, so
// inferring finds it (or more, by luck, on a very short chain). The
// network is named ImportedName, never retargets, and allows data up to
// PythonMaxDataSize. It does not validate the blocks after the genesis.
func PythonParams(blocks []chain.Block, zeros int) (*chain.Params, error) {
	if len(blocks) == 0 {
		return nil, errors.New("no blocks")
	}
	if zeros == InferZeros {
		zeros = MaxZeros
		for i := 1; i < len(blocks); i++ {
			zeros = min(zeros, LeadingHexZeros(&blocks[i].Hash))
		}
		if len(blocks) == 1 {
			zeros = 0
		}
	}
	if zeros < 0 || zeros > MaxZeros {
		return nil, fmt.Errorf("difficulty of %d hex zeros: want 0 to %d", zeros, MaxZeros)
	}
	bits := uint8(4 * zeros)
	p := &chain.Params{
		Name:             ImportedName,
		Genesis:          blocks[0],
		Bits:             bits,
		MinBits:          bits,
		MaxBits:          bits,
		MaxDataSize:      PythonMaxDataSize,
		MedianTimeBlocks: chain.DefaultMedianTimeBlocks,
		MaxFutureDrift:   chain.DefaultMaxFutureDrift,
		// The original's clock has whole seconds and it mines several
		// blocks a second: equal timestamps are normal in its chains.
		MedianTimeInclusive: true,
	}
	if err := p.Validate(); err != nil {
		return nil, &FileError{PythonFileName(0), &chain.RuleError{Code: chain.ErrBadGenesis, Reason: err.Error()}}
	}
	return p, nil
}

// importParams returns the network a chain imported into an empty data
// directory belongs to: the built-in network whose genesis it starts with
// (a jbc export of it), else a new one (PythonParams). A built-in network
// keeps its own rules: giving it a difficulty is an error, not a second
// network with the same ID and other rules.
func importParams(blocks []chain.Block, zeros int) (*chain.Params, error) {
	if len(blocks) > 0 {
		for _, p := range []*chain.Params{chain.MainNet(), chain.TestNet()} {
			if blocks[0] != p.Genesis {
				continue
			}
			if zeros != InferZeros {
				return nil, fmt.Errorf("the chain starts with the genesis of the built-in network %s (%s), which is imported with its own rules (%s): leave out the difficulty", p.Name, p.ID().Short(), describeDifficulty(p))
			}
			return p, nil
		}
	}
	return PythonParams(blocks, zeros)
}

// PythonImport says how ImportPython builds a new network and reports
// progress. The zero value is not useful: set Zeros (InferZeros to infer).
type PythonImport struct {
	// Zeros is the difficulty, in leading hex zeros, of the network made
	// when the data directory holds no chain; InferZeros infers it (see
	// PythonParams). For a data directory that holds a chain it must be
	// InferZeros or match that network's fixed difficulty.
	Zeros int
	// Progress, if set, is called after each batch of blocks is written.
	// For an existing chain each call follows a commit: the blocks up to
	// Result.Tip are durable. For a new network the chain appears only when
	// the whole import is done.
	Progress func(Result)
	// Validated, if set, is called once the whole chain has validated and
	// before anything is written, with the chain's length.
	Validated func(blocks int)
	// Options are passed to Open or Create.
	Options []Option
}

// ImportResult says what ImportPython did.
type ImportResult struct {
	// Params are the network's rules: new if Created.
	Params *chain.Params
	// Created is true when the data directory held no chain and one was
	// made: of a new network (named ImportedName), or of the built-in
	// network whose genesis the imported chain starts with.
	Created bool
	// Blocks is how many blocks the source held; Added how many were new.
	Blocks, Added int
	// Tip is the best chain's tip after the import. It is the imported
	// chain's tip unless the data directory's chain had more work.
	Tip chain.Entry
	// Best reports whether the imported chain's last block is on the best
	// chain: false when the data directory's chain had as much work or
	// more and the imported blocks were kept as a side branch.
	Best bool
	// Imported is the index entry of the imported chain's last block: its
	// Work against Tip.Work tells a side branch of equal work from one of
	// less.
	Imported chain.Entry
}

// ImportPython imports the Python chaindata directory src into the data
// directory dataDir. The whole chain is read and validated in memory
// before anything is written; if it is malformed or breaks a rule the
// error names the file (a *FileError wrapping the *chain.RuleError) and
// dataDir is left exactly as it was.
//
// If dataDir holds no chain, the chain's network is the built-in one whose
// genesis it starts with, else a new network is made whose genesis is the
// chain's first block (PythonParams), and the chain is written into a new
// store beside it, synced, then linked into place as chain.db in one step:
// a crash leaves either no chain or the whole one (and possibly a hidden
// ".import-*" directory, removed by the next import). If dataDir holds a
// chain, the blocks must be of its network (the first is its genesis) and
// meet its rules; they are added ImportBatch at a time, one transaction
// each, so a crash leaves a prefix, and importing again completes it. The
// imported chain becomes best only if it has more work.
func ImportPython(dataDir, src string, cfg PythonImport) (ImportResult, error) {
	blocks, err := ReadPython(src)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	return importBlocks(dataDir, func(i uint64) string { return filepath.Join(src, PythonFileName(i)) }, blocks, cfg)
}

// importBlocks imports blocks, read from a source whose block i name
// calls, into dataDir: the whole of ImportPython after reading.
func importBlocks(dataDir string, name func(index uint64) string, blocks []chain.Block, cfg PythonImport) (ImportResult, error) {
	if len(blocks) == 0 {
		return ImportResult{}, errors.New("import: no blocks")
	}
	if Exists(dataDir) {
		return importExisting(dataDir, name, blocks, cfg)
	}
	return importNew(dataDir, name, blocks, cfg)
}

// validatePython validates blocks as a whole chain of network p, naming
// the file of the first invalid block.
func validatePython(name func(uint64) string, p *chain.Params, blocks []chain.Block, now func() time.Time) error {
	c := chain.Chain{Params: p, Blocks: blocks}
	err := c.Validate(now)
	var ie *chain.IndexError
	if errors.As(err, &ie) {
		return &FileError{name(uint64(ie.Index)), ie.Err}
	}
	return err
}

// importOptions resolves the clock the caller's options set, for the
// in-memory validation to use the same time as the store.
func importOptions(opts []Option) (options, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

func importExisting(dataDir string, name func(uint64) string, blocks []chain.Block, cfg PythonImport) (ImportResult, error) {
	o, err := importOptions(cfg.Options)
	if err != nil {
		return ImportResult{}, err
	}
	s, err := Open(dataDir, nil, cfg.Options...)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	defer s.Close()
	p := s.Params()
	if cfg.Zeros != InferZeros && (p.Spacing != 0 || int(p.Bits) != 4*cfg.Zeros) {
		return ImportResult{}, fmt.Errorf("import: a difficulty of %d hex zeros was asked for, but %s holds network %s (%s) with %s; leave it out to import into that network",
			cfg.Zeros, dataDir, p.Name, p.ID().Short(), describeDifficulty(p))
	}
	if err := validatePython(name, p, blocks, o.now); err != nil {
		if blocks[0].Hash != p.Genesis.Hash {
			return ImportResult{}, fmt.Errorf("import: %w: %s already holds a chain of network %s (%s), and the imported chain starts with another genesis, so it is of another network. Import it into a data directory without a chain (another --datadir) to make a network of it", err, dataDir, p.Name, p.ID().Short())
		}
		return ImportResult{}, fmt.Errorf("import: %w (network %s, %s)", err, p.Name, describeDifficulty(p))
	}
	if cfg.Validated != nil {
		cfg.Validated(len(blocks))
	}
	res := ImportResult{Params: p, Blocks: len(blocks)}
	added, err := addBatches(s, blocks, cfg.Progress)
	res.Added, res.Tip = added, s.Tip()
	if err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	last := blocks[len(blocks)-1].Hash
	if res.Best, err = s.OnBest(last); err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	if res.Imported, err = s.Entry(last); err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	return res, nil
}

func describeDifficulty(p *chain.Params) string {
	if p.Spacing == 0 {
		return fmt.Sprintf("fixed difficulty %d bits", p.Bits)
	}
	return fmt.Sprintf("difficulty from %d bits retargeting toward %s", p.Bits, p.Spacing)
}

// addBatches adds blocks[1:] (blocks[0] is the genesis) ImportBatch at a
// time.
func addBatches(s *Store, blocks []chain.Block, progress func(Result)) (int, error) {
	added := 0
	for i := 1; i < len(blocks); i += ImportBatch {
		res, err := s.AddBlocks(blocks[i:min(i+ImportBatch, len(blocks))])
		added += res.Added
		if err != nil {
			return added, err
		}
		if progress != nil {
			progress(res)
		}
	}
	return added, nil
}

// importTempPrefix starts the name of the directory a new network's store
// is built in before it is linked into the data directory.
const importTempPrefix = ".import-"

func importNew(dataDir string, name func(uint64) string, blocks []chain.Block, cfg PythonImport) (res ImportResult, err error) {
	o, err := importOptions(cfg.Options)
	if err != nil {
		return ImportResult{}, err
	}
	p, err := importParams(blocks, cfg.Zeros)
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			fe.Path = name(0)
		}
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	if err := validatePython(name, p, blocks, o.now); err != nil {
		if p.Name != ImportedName {
			return ImportResult{}, fmt.Errorf("import: %w (built-in network %s, %s)", err, p.Name, describeDifficulty(p))
		}
		return ImportResult{}, fmt.Errorf("import: %w (new network, fixed difficulty %d bits = %d hex zeros)", err, p.Bits, p.Bits/4)
	}
	if cfg.Validated != nil {
		cfg.Validated(len(blocks))
	}

	// Everything is valid: now write, into a store of our own beside the
	// final one.
	_, statErr := os.Stat(dataDir)
	madeDir := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	defer func() {
		if err != nil && madeDir {
			os.Remove(dataDir) // only if still empty
		}
	}()
	removeStaleImports(dataDir)
	tmp, err := os.MkdirTemp(dataDir, importTempPrefix)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	defer os.RemoveAll(tmp)
	// The temporary store need not be durable commit by commit: it is
	// synced once, whole, before it is linked into place.
	s, err := Create(tmp, p, append(slices.Clip(cfg.Options), WithNoSync())...)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	added, err := addBatches(s, blocks, cfg.Progress)
	tip := s.Tip()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	built := filepath.Join(tmp, FileName)
	if err := syncFile(built); err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	if err := linkNew(built, filepath.Join(dataDir, FileName)); err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	if err := syncDir(dataDir); err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	return ImportResult{Params: p, Created: true, Blocks: len(blocks), Added: added, Tip: tip, Best: true, Imported: tip}, nil
}

// removeStaleImports removes the temporary directories of imports that
// did not finish. A concurrent import into the same empty data directory
// would lose its directory and fail cleanly at the link; the data directory
// is never left with a partial chain.
func removeStaleImports(dataDir string) {
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), importTempPrefix) {
			os.RemoveAll(filepath.Join(dataDir, e.Name()))
		}
	}
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// linkNew puts the file at from in place at to, failing if to exists: a
// hard link where the file system allows one (atomic, never replaces), or
// else a rename after checking that to does not exist.
func linkNew(from, to string) error {
	err := os.Link(from, to)
	if err == nil || errors.Is(err, fs.ErrExist) {
		if err != nil {
			return fmt.Errorf("%w: %s", ErrExists, filepath.Dir(to))
		}
		return nil
	}
	if _, serr := os.Lstat(to); serr == nil {
		return fmt.Errorf("%w: %s", ErrExists, filepath.Dir(to))
	}
	return os.Rename(from, to)
}
