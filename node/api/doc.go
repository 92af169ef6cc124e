// Package api is the node's HTTP API, for its operator: the node's status,
// peers and bans, blocks, the chain as the Python original served it
// (GET /blockchain.json) and a Python miner's blocks (POST /mined,
// mined.go), data entries submitted and looked up (submit.go), the miner
// switched on and off, the doctor's report, Prometheus metrics, and the
// dashboard, a page embedded in the binary (dashboard.go, web/) that
// carries the node's state and then polls the JSON endpoints. Its JSON
// bodies (StatusJSON, PeerJSON, ...; json.go) are what jbc status, jbc
// chain and the dashboard read.
//
// What it does not do: hold the node's state. It serves a Backend (the
// running node, connected by package node) and reads blocks from the
// store; the metrics it serves are gathered by package node, the doctor's
// report is package discovery's. It imports the concerns whose values it
// shows (peering, chainsync's progress, discovery's report, gossip's
// ErrPoolFull); none of them imports it.
//
// Error contract: every error reaches the client as a status code and a
// JSON body {"error": "..."}: 400 for a malformed request, 404 for what is
// not there, 408 for a body that took longer than ReadTimeout, 413 for one
// over its limit, 429 over a rate limit (SubmitRate, POST /mined's), 503
// when the data pool is full (the submitter can retry), 500 for a failure
// of the node's own store. POST /mined answers as the Python original does,
// {"received": false} with the reason. A stream of the whole chain that
// fails midway can only be cut short (its headers are gone); the failure
// is logged. Listen returns the listen error; a failure to serve later is
// logged.
package api
