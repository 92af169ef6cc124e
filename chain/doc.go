// Package chain holds jbc's consensus rules: the block format inherited from
// the Python JackBlockChain, proof of work counted in leading zero bits of
// the hash, difficulty retargeting, timestamp rules, fork choice by
// cumulative work, the network parameters (a built-in main network and an
// easy test network), and a multi-core miner.
//
// The rules that read timestamps come in versions (TimeRules), named by
// each network's genesis file and kept for good: the original ones, which
// the built-in networks and networks made before keep, and the anchored
// ones of networks NewParams makes, which close the time warp
// (docs/protocol.md, section 13). A miner stamps blocks by its clock and
// waits for it rather than run the chain's time ahead (StampDelay).
//
// The package is pure: it does no I/O and keeps no global state. Storing
// blocks is package storage's job; it uses Params.CheckBlock and Validator to
// decide what may be stored and MoreWork to decide which branch is best.
//
// Error contract: a block that breaks a consensus rule is reported as a
// *RuleError whose Code names the rule (check with errors.As). Only such
// errors say anything about the block's sender. Chain.Validate wraps them in
// an *IndexError giving the block's position. Other errors are misuse of the
// API (for example too few recent timestamps given to NewValidator).
package chain
