#!/usr/bin/env bash
# e2e/lan.sh: the Python JackBlockChain's own demonstration, automated, on
# private LANs of network namespaces (../shared/netlab): no packet leaves
# this machine.
#
#   1. node A (LAN 1, host 1) mines 6 blocks and runs a node;
#   2. node B (LAN 1, host 2) starts with an empty data directory and no peer
#      given, finds A by mDNS, syncs and persists; restarted, it still has
#      the chain;
#   3. node C (LAN 2, host 1, behind a router that multicast cannot cross)
#      is given only A's multiaddr as --bootstrap and finds and syncs from A
#      through the DHT; node D (LAN 2, host 2), given only C, and A find
#      each other by the DHT rendezvous (D's lookup finds A, or A's
#      advertisement reaches D and A dials it);
#   4. node E (LAN 1, host 3) starts while its link is down, so with no
#      interface mDNS can use; it runs, and once the link comes up it starts
#      mDNS, finds A and syncs.
#
# It prints the time from process start to synced for B and C, and exits
# non-zero on any failure. Needs root (network namespaces). Usage:
#   e2e/lan.sh            # builds ./cmd/jbc
#   JBC=/path/to/jbc e2e/lan.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
netlab=${NETLAB:-$repo/../shared/netlab}
lab=${LAB:-jbce2e}
work=$(mktemp -d /tmp/jbc-lan.XXXXXX)
blocks=6
timeout_s=${SYNC_TIMEOUT:-30}

log() { printf '[lan.sh] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$?
  "$netlab" down "$lab" >/dev/null 2>&1 || true
  if [ $rc -ne 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { log "--- $f"; tail -n 30 "$f" >&2; }; done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || fail "needs root for network namespaces"
[ -x "$netlab" ] || [ -f "$netlab" ] || fail "netlab not found at $netlab"

if [ -z "${JBC:-}" ]; then
  log "building jbc"
  (cd "$repo" && go build -o "$work/jbc" ./cmd/jbc)
  JBC=$work/jbc
fi

"$netlab" down "$lab" >/dev/null 2>&1 || true
bash "$netlab" up "$lab" 2 3 >/dev/null
run() { local host=$1; shift; bash "$netlab" exec "$lab" "$host" "$@"; }

# now_ms prints the wall clock in milliseconds.
now_ms() { date +%s%3N; }

# height HOST: the node's best height from its HTTP API (loopback inside
# the host's own namespace), or -1.
height() {
  run "$1" "$JBC" status --json 2>/dev/null | jq -r '.height // -1' 2>/dev/null || echo -1
}

# wait_height HOST H: wait until HOST's node reaches height H; prints the ms.
wait_height() {
  local host=$1 want=$2 start=$3 deadline=$(( $(now_ms) + timeout_s * 1000 ))
  while :; do
    h=$(height "$host")
    if [ "$h" != "" ] && [ "$h" -ge "$want" ] 2>/dev/null; then
      echo $(( $(now_ms) - start ))
      return 0
    fi
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

# start_node HOST DATADIR LOG ARGS...: starts a node in HOST's namespace and
# sets $pid to its process id (ip netns exec execs jbc in place).
pid=
start_node() {
  local host=$1 dir=$2 logf=$3; shift 3
  ip netns exec "$lab-$host" "$JBC" --datadir "$dir" node --log-level debug "$@" >"$logf" 2>&1 &
  pid=$!
}

# --- node A mines and serves -------------------------------------------
log "A: mining $blocks blocks on the built-in network"
run 1-1 "$JBC" --datadir "$work/a" mine --blocks "$blocks" >"$work/a-mine.log" 2>&1 || fail "A: mine"
a_id=$(run 1-1 "$JBC" --datadir "$work/a" id --json | jq -r .peer_id)
a_tip=$(run 1-1 "$JBC" --datadir "$work/a" chain --json | jq -r .tip)
start_node 1-1 "$work/a" "$work/a.log"
wait_height 1-1 "$blocks" "$(now_ms)" >/dev/null || fail "A: node did not come up"
a_addr="/ip4/$(bash "$netlab" addr "$lab" 1-1)/tcp/4747/p2p/$a_id"
log "A: $a_addr at height $blocks, tip $a_tip"

# --- node B finds A by mDNS --------------------------------------------
log "B: empty, no peer given, mDNS on"
t0=$(now_ms)
start_node 1-2 "$work/b" "$work/b.log"
b_pid=$pid
b_ms=$(wait_height 1-2 "$blocks" "$t0") || fail "B did not sync from A by mDNS within ${timeout_s}s"
b_tip=$(run 1-2 "$JBC" status --json | jq -r .tip)
[ "$b_tip" = "$a_tip" ] || fail "B's tip $b_tip is not A's $a_tip"
src=$(run 1-2 curl -s 127.0.0.1:8080/peers | jq -r --arg id "$a_id" '.[] | select(.id == $id) | .source')
[ "$src" = mdns ] || fail "B found A by '$src', want mdns"
kill "$b_pid"; wait "$b_pid" 2>/dev/null || true
run 1-2 "$JBC" status >/dev/null 2>&1 && fail "B still answers after kill"
b_after=$(run 1-2 "$JBC" --datadir "$work/b" chain --json | jq -r .tip)
[ "$b_after" = "$a_tip" ] || fail "B restarted has tip $b_after, want $a_tip"
log "B: synced by mDNS in ${b_ms} ms; restarted with the chain persisted"

# --- node C finds A through the DHT from one bootstrap multiaddr ---------
log "C: other LAN, --bootstrap $a_addr"
t0=$(now_ms)
start_node 2-1 "$work/c" "$work/c.log" --bootstrap "$a_addr"
c_ms=$(wait_height 2-1 "$blocks" "$t0") || fail "C did not sync from A via the DHT within ${timeout_s}s"
c_tip=$(run 2-1 "$JBC" status --json | jq -r .tip)
[ "$c_tip" = "$a_tip" ] || fail "C's tip $c_tip is not A's $a_tip"
if grep -q '"source": *"mdns"' <(run 2-1 curl -s 127.0.0.1:8080/peers); then
  fail "C found a peer by mDNS across the router"
fi
log "C: synced through the DHT in ${c_ms} ms"

# --- node D, LAN 2, bootstraps from C and finds A by the DHT rendezvous --
log "D: other LAN, --bootstrap C only; must find A by DHT rendezvous"
c_id=$(run 2-1 "$JBC" --datadir "$work/c" id --json | jq -r .peer_id)
c_addr="/ip4/$(bash "$netlab" addr "$lab" 2-1)/tcp/4747/p2p/$c_id"
t0=$(now_ms)
start_node 2-2 "$work/d" "$work/d.log" --bootstrap "$c_addr" --no-mdns
d_ms=$(wait_height 2-2 "$blocks" "$t0") || fail "D did not sync within ${timeout_s}s"
d_id=$(run 2-2 "$JBC" --datadir "$work/d" id --json | jq -r .peer_id)
# found_by HOST ID: HOST's GET /peers lists ID as found through the DHT.
found_by() { run "$1" curl -s 127.0.0.1:8080/peers | jq -e --arg id "$2" '.[] | select(.id == $id and .source == "dht")' >/dev/null; }
# The rendezvous works both ways: D's lookup finds A, or A's (its
# advertisement reaches the nodes nearest the key, D among them) finds D
# and A dials it, after which D knows A as inbound. Either way the two
# found each other through the DHT, with no address given.
deadline=$(( $(now_ms) + timeout_s * 1000 ))
until found_by 2-2 "$a_id" || found_by 1-1 "$d_id"; do
  [ "$(now_ms)" -lt "$deadline" ] || fail "D never found A through the DHT, nor A D"
  sleep 0.2
done
how="D found A"
found_by 2-2 "$a_id" || how="A found D"
log "D: synced in ${d_ms} ms; through the DHT rendezvous, $how"

# --- node E starts before its network is up --------------------------
log "E: LAN 1, started with its link down (no multicast interface)"
run 1-3 ip link set eth0 down
start_node 1-3 "$work/e" "$work/e.log"
e_pid=$pid
wait_height 1-3 0 "$(now_ms)" >/dev/null || fail "E did not come up without a network"
sleep 1
kill -0 "$e_pid" 2>/dev/null || fail "E exited without a network"
run 1-3 ip link set eth0 up
run 1-3 ip route replace 224.0.0.0/4 dev eth0
t0=$(now_ms)
e_ms=$(wait_height 1-3 "$blocks" "$t0") || fail "E did not sync by mDNS within ${timeout_s}s of its link coming up"
src=$(run 1-3 curl -s 127.0.0.1:8080/peers | jq -r --arg id "$a_id" '.[] | select(.id == $id) | .source')
[ "$src" = mdns ] || fail "E found A by '$src', want mdns"
grep -q "mdns restarted" "$work/e.log" || fail "E's log does not say mDNS restarted"
log "E: synced by mDNS ${e_ms} ms after its link came up"

printf '\n%-44s %8s\n' "e2e/lan.sh: time from start to synced" "ms"
printf '%-44s %8s\n' "B (same LAN, mDNS)" "$b_ms"
printf '%-44s %8s\n' "C (other LAN, DHT from A's multiaddr)" "$c_ms"
printf '%-44s %8s\n' "D (other LAN, DHT from C's multiaddr)" "$d_ms"
printf '%-44s %8s\n' "E (same LAN, mDNS, from its link up)" "$e_ms"
echo "e2e/lan.sh: PASS"
