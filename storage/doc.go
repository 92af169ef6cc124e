// Package storage keeps a jbc chain on disk in one bbolt file: every block
// accepted (best chain and side branches), an index entry per block (height,
// parent, time, difficulty, cumulative work), the best chain by height, the
// tip, and the network's parameters.
//
// What it guarantees: nothing is stored that package chain has not
// validated, and every change of the best chain (an append or a whole
// reorganisation) is one bbolt transaction, so a crash leaves either the old
// best chain or the new one, never a mix or a half-written block. Every tree
// in the file is appended to, by height, so syncing a long chain writes and
// reads few pages per block. Memory grows with the chain only by a compact
// map from hash tag to height (about 9 bytes a block), which finds
// blocks by hash; the blocks and their index entries stay in the file. Open
// re-validates the blocks below the tip; Verify re-validates everything.
//
// What it does not do: networking, mining or deciding whom to trust; it
// validates what it is given.
//
// Error contract: a block that breaks a consensus rule yields a wrapped
// *chain.RuleError (errors.As); a missing parent yields ErrOrphan; anything
// else (ErrCorrupt, I/O errors) is local and says nothing about the block's
// sender.
//
// The file also carries Python-layout import and export (python.go): the
// one-file-per-block chaindata directory of the original JackBlockChain,
// its keys in the order Python 2 (the original's) or Python 3 writes them;
// and pythonlist.go reads the list a Python node serves at
// /blockchain.json from a stream and imports it (the fetching is package
// node's).
package storage
