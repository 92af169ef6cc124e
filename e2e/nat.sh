#!/usr/bin/env bash
# e2e/nat.sh: jbc nodes behind NAT (issue 17) in network namespaces
# (../shared/netlab NAT mode), no packet leaving this machine:
# `NAT=1,2 netlab up LAB 3 2` puts LANs 1 and 2 each behind a NAT and
# firewall of its own (hosts dial out, nobody dials in) and leaves LAN 3
# public; every host is also on IPv6, the "internet" segment being
# 2001:2::/64, where NAT gateway L is 2001:2::L. Every node runs with
# --no-mdns.
#
#   R (LAN 3, host 1): public, empty chain; the only bootstrap of the
#      others, given as its IPv6 multiaddr. It relays (on by default on a
#      public node).
#   A (LAN 1, host 1): behind NAT 1, with a chain of BLOCKS blocks.
#   B (LAN 2, host 1): behind NAT 2, empty. Within DIRECT_TIMEOUT (15 s) of
#      its start it must have A's chain and hold a direct connection to A
#      from A's NAT address 2001:2::1, made by hole punching, as B's
#      GET /peers says. Nobody can dial A there unasked: only a punch
#      opens it. (R syncs too and could hand B the chain; the direct
#      connection is the proof, not B's height.)
#   C (LAN 3, host 2): public, empty: syncs A's chain, then mines one
#      block, which A (behind NAT) must get: both ways; each must hold a
#      direct connection to the other.
#   Then C and R stop: A's doctor must say it is behind NAT with no relay
#      reservation, relay R unreachable.
#
# It prints the time from B's start to the direct connection, and a line
# for cmd/jbcbench. About 10 s (35 s on a loaded machine). Needs root, iproute2, iptables, curl and
# jq. Usage:
#   e2e/nat.sh                    # builds ./cmd/jbc
#   JBC=/path/to/jbc LAB=nt1 e2e/nat.sh
# KEEP_LOGS=DIR keeps every node's log. e2e/natprobe.sh runs the same lab
# with bare go-libp2p hosts (the figures behind docs/nat-design.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
netlab=${NETLAB:-$repo/../shared/netlab}
lab=${LAB:-jbcnat}
blocks=${BLOCKS:-6}
# B's target, from its start (issue 17).
direct_timeout_s=${DIRECT_TIMEOUT:-15}
# Everything else: syncs over a direct connection, on loaded machines.
timeout_s=${SYNC_TIMEOUT:-30}
work=$(mktemp -d /tmp/jbc-nat.XXXXXX)
port=4747

log() { printf '[nat.sh] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

# shellcheck source=e2e/natlab.sh
. "$repo/e2e/natlab.sh"
trap nat_cleanup EXIT INT TERM
nat_checks
command -v curl >/dev/null || fail "needs curl"

if [ -z "${JBC:-}" ]; then
  log "building jbc"
  (cd "$repo" && go build -o "$work/jbc" ./cmd/jbc)
  JBC=$work/jbc
fi

nat_lab_up

run() { local host=$1; shift; ip netns exec "$lab-$host" "$@"; }
now_ms() { date +%s%3N; }
# api HOST PATH [CURL ARGS...]: the node's HTTP API, loopback inside HOST.
api() { local host=$1 path=$2; shift 2; run "$host" curl -s --max-time 5 "$@" "127.0.0.1:8080$path"; }
height() { api "$1" /status 2>/dev/null | jq -r '.height // -1' 2>/dev/null || echo -1; }

# start_node HOST NAME ARGS...: starts a node in HOST's namespace; sets $pid.
pid=
start_node() {
  local host=$1 name=$2; shift 2
  # Not through run: a backgrounded function is a subshell, whose pid is
  # not jbc's. ip netns exec execs jbc in place.
  ip netns exec "$lab-$host" "$JBC" --datadir "$work/$name" node --no-mdns --log-level debug "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
}

# wait_for SECS CMD...: runs CMD every 50 ms until it succeeds.
wait_for() {
  local deadline=$(( $(now_ms) + $1 * 1000 )); shift
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
at_height() { local h; h=$(height "$1"); [ "$h" -ge "$2" ] 2>/dev/null; }

log "A: mining $blocks blocks"
run 1-1 "$JBC" --datadir "$work/a" mine --blocks "$blocks" >"$work/a-mine.log" 2>&1 || fail "A: mine"
a_tip=$(run 1-1 "$JBC" --datadir "$work/a" chain --json | jq -r .tip)
r_id=$(run 3-1 "$JBC" --datadir "$work/r" id --json | jq -r .peer_id)
a_id=$(run 1-1 "$JBC" --datadir "$work/a" id --json | jq -r .peer_id)
r_addr="/ip6/$r_ip/tcp/$port/p2p/$r_id"

log "R: public, empty: $r_addr"
start_node 3-1 r
r_pid=$pid
# R listens before the others dial it: a refused dial puts R in the
# dialler's backoff for seconds.
wait_for 10 at_height 3-1 0 || fail "R did not come up"

t_a=$(now_ms)
log "A: behind NAT 1, $blocks blocks, --bootstrap R"
start_node 1-1 a --bootstrap "$r_addr"
log "B: behind NAT 2, empty, --bootstrap R (started with A)"
t_b=$(now_ms)
start_node 2-1 b --bootstrap "$r_addr"

# direct_punched: B holds a direct connection to A from A's NAT address,
# made by hole punching, per B's GET /peers; prints it.
direct_punched() {
  api 2-1 /peers | jq -e -c --arg id "$a_id" --arg nat "/ip6/$a_nat/" \
    '[.[] | select(.id == $id) | .connections[]? | select(.link == "direct" and .made == "hole-punch" and (.remote | startswith($nat)))] | first // empty' 2>/dev/null
}
b_direct_ms=
deadline=$(( t_b + direct_timeout_s * 1000 ))
while :; do
  if conn=$(direct_punched) && [ -n "$conn" ]; then b_direct_ms=$(( $(now_ms) - t_b )); break; fi
  [ "$(now_ms)" -lt "$deadline" ] || { api 2-1 /peers | jq -c '.[] | {id, connections, hole_punch}' >&2 || true; fail "B holds no direct connection to A from $a_nat made by hole punching within ${direct_timeout_s}s of its start"; }
  sleep 0.05
done
log "B: direct connection to A made by hole punching after ${b_direct_ms} ms: $conn"
wait_for $(( (deadline - $(now_ms)) / 1000 + 1 )) at_height 2-1 "$blocks" || fail "B does not have A's chain within ${direct_timeout_s}s of its start"
b_synced_ms=$(( $(now_ms) - t_b ))
b_tip=$(api 2-1 /status | jq -r .tip)
[ "$b_tip" = "$a_tip" ] || fail "B's tip $b_tip is not A's $a_tip"
log "B: A's chain (height $blocks) after ${b_synced_ms} ms"
a_status=$(api 1-1 /status)
a_reach=$(echo "$a_status" | jq -r '"\(.reachability) (\(.reachability_source)), relays \(.relays | join(",")), relay service \(.relay_service)"')
r_reach=$(api 3-1 /status | jq -r '"\(.reachability) (\(.reachability_source)), relay service \(.relay_service)"')
log "A: $a_reach; R: $r_reach"
echo "$a_status" | jq -e --arg r "$r_id" '.reachability == "private" and (.relays | index($r)) and ([.addrs[] | select(contains("/p2p-circuit"))] | length > 0)' >/dev/null ||
  fail "A is not private with a reservation on R and a relay address: $(echo "$a_status" | jq -c '{reachability, relays, addrs}')"

# --- A behind NAT and C on the public LAN, both ways ---------------------
log "C: public LAN, empty, --bootstrap R"
t_c=$(now_ms)
start_node 3-2 c --bootstrap "$r_addr"
c_pid=$pid
wait_for "$timeout_s" at_height 3-2 "$blocks" || fail "C did not sync A's chain within ${timeout_s}s"
c_ms=$(( $(now_ms) - t_c ))
log "C: A's chain after ${c_ms} ms; mining one block"
api 3-2 "/mining?on=true" -X POST >/dev/null
wait_for "$timeout_s" at_height 3-2 $((blocks + 1)) || fail "C did not mine a block"
api 3-2 "/mining?on=false" -X POST >/dev/null
c_tip=$(api 3-2 /status | jq -r .tip)
c_height=$(height 3-2)
t_up=$(now_ms)
a_has_c_tip() { [ "$(api 1-1 /status | jq -r .tip)" = "$c_tip" ]; }
wait_for "$timeout_s" a_has_c_tip || fail "A (behind NAT) did not get C's block (height $c_height, tip $c_tip)"
log "A: C's block after $(( $(now_ms) - t_up )) ms"
c_id=$(run 3-2 "$JBC" --datadir "$work/c" id --json | jq -r .peer_id)
# They found each other (the DHT through R): each holds a direct
# connection to the other, not only R in between.
direct_to() { api "$1" /peers | jq -e --arg id "$2" '[.[] | select(.id == $id) | .connections[]? | select(.link == "direct")] | length > 0' >/dev/null; }
wait_for "$timeout_s" direct_to 1-1 "$c_id" || fail "A holds no direct connection to C"
wait_for "$timeout_s" direct_to 3-2 "$a_id" || fail "C holds no direct connection to A"
a_to_c=$(api 1-1 /peers | jq -c --arg id "$c_id" '[.[] | select(.id == $id) | .connections[]? | {link, made}]')
log "A's connections to C: $a_to_c"

# --- R down: A's doctor says so ------------------------------------------
# C is public and relays too (A may hold a reservation on it): it stops
# first, leaving R the only relay A knows.
log "C and R: stopping"
kill "$c_pid"; wait "$c_pid" 2>/dev/null || true
kill "$r_pid"; wait "$r_pid" 2>/dev/null || true
no_relay() { api 1-1 /status | jq -e '.relays | length == 0' >/dev/null; }
wait_for "$timeout_s" no_relay || fail "A still reports a relay reservation with R down"
doc=$(run 1-1 "$JBC" doctor --api 127.0.0.1:8080 2>&1) || true
echo "$doc" | grep -q "no relay reservation" || { echo "$doc" >&2; fail "A's doctor does not say it holds no relay reservation"; }
echo "$doc" | grep -q "relay $r_id unreachable" || { echo "$doc" >&2; fail "A's doctor does not say relay R is unreachable"; }
log "A's doctor: $(echo "$doc" | grep -o 'This node is behind NAT[^.]*' | head -1)"

printf '\n%-48s %8s\n' "e2e/nat.sh: ms from B's start" "ms"
printf '%-48s %8s\n' "B direct to A (hole punch)" "$b_direct_ms"
printf '%-48s %8s\n' "B has A's chain" "$b_synced_ms"
printf '%-48s %8s\n' "C (public) has A's chain, from C's start" "$c_ms"
# One line for cmd/jbcbench: B's time from start to the direct connection.
printf 'e2e/nat.sh: start to direct connection (B, cold): %s ms\n' "$b_direct_ms"
echo "e2e/nat.sh: PASS"
