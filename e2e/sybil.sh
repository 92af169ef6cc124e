#!/usr/bin/env bash
# e2e/sybil.sh: Sybil lockout (issue 11, item 2) in network namespaces
# (../shared/netlab), no packet leaving this machine. Three LANs joined by
# gateways (netlab NAT mode: LANs 1 and 2 also on public IPv6, LAN 3
# behind a NAT). Node T (LAN 1, host 1) holds a chain and dials its two
# outbound peers O1 and O2 (--peer); then, each time from fresh attackers
# (e2e/sybil: libp2p identities that hold connections to T and replace
# every one dropped with a fresh identity at once):
#
#   A. 10 identities from each of 20 hosts (LAN 2), speaking the chain
#      protocol as honest new nodes do, over IPv4 (private addresses: no
#      subnet cap, admission's eviction order alone);
#   B. 200 identities from one host (LAN 2, host 1), half of them speaking,
#      half silent;
#   C. as A, but over public IPv6: all 20 hosts are in one /48, which
#      admission caps at 8 inbound connections.
#
# In each, an honest new node on another host (empty data directory,
# --peer T) must be synced with T within SYNC_BOUND_MS (5000) of its
# start, and T's outbound peers must never be dropped (T's /peers polled
# every 200 ms; a dropped --peer is redialled only after 5 s). It prints
# each figure, and exits non-zero on any failure (KEEP_GOING=1: after
# running every scenario). About 40 s. Needs root and iptables.
#
#   e2e/sybil.sh                       # builds ./cmd/jbc and ./e2e/sybil
#   LAB=sy1 JBC=/path/to/jbc e2e/sybil.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
netlab=${NETLAB:-$repo/../shared/netlab}
lab=${LAB:-jbcsyb}
work=$(mktemp -d /tmp/jbc-sybil.XXXXXX)
blocks=${BLOCKS:-300}
bound_ms=${SYNC_BOUND_MS:-5000}
timeout_s=${SYNC_TIMEOUT:-20}   # how long to wait for the honest node at most (to measure past the bound)
fill_s=${FILL_S:-6}             # attack time before the honest node starts
cap=8                           # node.subnetInboundCap

log() { printf '[sybil.sh] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
# check_fail: a scenario's assertion failed; with KEEP_GOING=1 (to measure
# every scenario, e.g. on old code) the run goes on and fails at the end.
failed=0
check_fail() { if [ "${KEEP_GOING:-0}" = 1 ]; then log "FAIL: $*"; failed=1; else fail "$@"; fi; }

pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$netlab" down "$lab" >/dev/null 2>&1 || true
  if [ $rc -ne 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { log "--- $f"; grep -v 'level=DEBUG' "$f" | tail -n 20 >&2; }; done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || fail "needs root for network namespaces"
[ -f "$netlab" ] || fail "netlab not found at $netlab"
command -v iptables >/dev/null && command -v ip6tables >/dev/null || fail "netlab's NAT mode needs iptables (apt-get install -y iptables)"

if [ -z "${JBC:-}" ]; then
  log "building jbc"
  (cd "$repo" && go build -o "$work/jbc" ./cmd/jbc)
  JBC=$work/jbc
fi
SYBIL=${SYBIL:-}
if [ -z "$SYBIL" ]; then
  log "building e2e/sybil"
  (cd "$repo" && go build -o "$work/sybil" ./e2e/sybil)
  SYBIL=$work/sybil
fi

"$netlab" down "$lab" >/dev/null 2>&1 || true
NAT=3 bash "$netlab" up "$lab" 3 20 >/dev/null
run() { local host=$1; shift; ip netns exec "$lab-$host" "$@"; }
now_ms() { date +%s%3N; }

# start_node HOST DIR ARGS...: runs a node in HOST; its pid goes to $pid.
pid=
start_node() {
  local host=$1 dir=$2; shift 2
  # ip netns exec execs jbc in place: $! is the node's own pid.
  ip netns exec "$lab-$host" "$JBC" --datadir "$dir" node --no-mdns "$@" >>"$dir.log" 2>&1 &
  pid=$!
  pids+=("$pid")
}
height() { run "$1" "$JBC" status --json 2>/dev/null | jq -r '.height // -1' 2>/dev/null || echo -1; }
wait_up() {
  local deadline=$(( $(now_ms) + 15000 ))
  until [ "$(height "$1")" -ge 0 ] 2>/dev/null; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "node on $1 did not come up"
    sleep 0.1
  done
}
peer_id() { run 1-1 "$JBC" --datadir "$1" id --json | jq -r .peer_id; }

# --- the network and node T ---------------------------------------------
run 1-1 "$JBC" --datadir "$work/t" init --difficulty 8 --name sybil >/dev/null
run 1-1 "$JBC" --datadir "$work/t" mine --blocks "$blocks" >/dev/null
genesis=$work/t/genesis.json
for o in o1 o2; do run 1-1 "$JBC" --datadir "$work/$o" init --genesis "$genesis" >/dev/null; done
o1_id=$(peer_id "$work/o1"); o2_id=$(peer_id "$work/o2")
start_node 1-2 "$work/o1"
start_node 1-3 "$work/o2"
wait_up 1-2; wait_up 1-3
t_id=$(peer_id "$work/t")
start_node 1-1 "$work/t" --log-level debug \
  --peer "/ip4/10.77.1.2/tcp/4747/p2p/$o1_id" --peer "/ip4/10.77.1.3/tcp/4747/p2p/$o2_id"
wait_up 1-1
t4="/ip4/10.77.1.1/tcp/4747/p2p/$t_id"
t6="/ip6/$(bash "$netlab" addr6 "$lab" 1-1)/tcp/4747/p2p/$t_id"
connected() { run 1-1 curl -s 127.0.0.1:8080/peers | jq -r --arg id "$1" '.[] | select(.id == $id) | .connected'; }
deadline=$(( $(now_ms) + 15000 ))
until [ "$(connected "$o1_id")" = true ] && [ "$(connected "$o2_id")" = true ]; do
  [ "$(now_ms)" -lt "$deadline" ] || fail "T did not connect to its outbound peers"
  sleep 0.1
done
log "T: $t4 at height $blocks, connected to its outbound peers O1 and O2"

# watch_outbound: polls T's /peers every 200 ms until killed, printing a
# line for each poll that finds O1 or O2 disconnected.
watch_outbound() {
  while :; do
    for o in "$o1_id" "$o2_id"; do
      [ "$(connected "$o")" = true ] || echo "$(now_ms) $o disconnected"
    done
    sleep 0.2
  done
}

# scenario NAME HONEST_HOST: the attackers are running; waits fill_s, starts
# an honest new node on HONEST_HOST with --peer T (IPv4) and checks it syncs
# within the bound while T's outbound peers stay.
n_honest=0
scenario() {
  local name=$1 host=$2 dir
  n_honest=$((n_honest + 1)); dir=$work/h$n_honest
  watch_outbound >"$work/watch-$name" & local wpid=$!
  pids+=("$wpid")
  sleep "$fill_s"
  run "$host" "$JBC" --datadir "$dir" init --genesis "$genesis" >/dev/null
  local t0; t0=$(now_ms)
  start_node "$host" "$dir" --peer "$t4"
  local hpid=$pid ms=-1 deadline=$(( t0 + timeout_s * 1000 ))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    if [ "$(height "$host")" -ge "$blocks" ] 2>/dev/null; then ms=$(( $(now_ms) - t0 )); break; fi
    sleep 0.05
  done
  sleep 1 # T's outbound peers watched a little past the sync
  kill "$wpid" "$hpid" 2>/dev/null || true
  wait "$wpid" "$hpid" 2>/dev/null || true
  local adm; adm=$(run 1-1 curl -s 127.0.0.1:8080/metrics | awk '/^jbc_admission_total/ {sub(/.*outcome="/, ""); sub(/"}/, ""); printf "%s ", $0}')
  local drops; drops=$(wc -l <"$work/watch-$name")
  log "$name: honest node synced in ${ms} ms (bound ${bound_ms}); T's outbound peers seen disconnected in $drops polls; T admission totals: ${adm:-none}"
  if [ "$ms" -lt 0 ]; then
    check_fail "$name: the honest node did not sync within ${timeout_s}s"
  elif [ "$ms" -gt "$bound_ms" ]; then
    check_fail "$name: the honest node synced in ${ms} ms, over ${bound_ms}"
  fi
  [ "$drops" -eq 0 ] || check_fail "$name: T's outbound peers were dropped: $(head -3 "$work/watch-$name")"
}

# attack NAME FROM_HOSTS N ARGS...: starts an attacker on each host with N
# identities; their pids go to $attackers.
attackers=()
attack() {
  local name=$1 hosts=$2 n=$3; shift 3
  local h
  for h in $hosts; do
    ip netns exec "$lab-$h" "$SYBIL" -n "$n" "$@" >"$work/att-$name-$h.out" 2>&1 &
    attackers+=($!); pids+=($!)
  done
}
stop_attack() {
  kill "${attackers[@]}" 2>/dev/null || true
  wait "${attackers[@]}" 2>/dev/null || true
  attackers=()
}
# attackers_connected NAME: identities the attackers of NAME held at their
# last report before they were stopped.
attackers_connected() {
  local f s=0 c
  for f in "$work"/att-"$1"-*.out; do
    c=$(grep '^connected=' "$f" | tail -1 | sed 's/^connected=\([0-9]*\).*/\1/')
    s=$((s + ${c:-0}))
  done
  echo "$s"
}

lan2=$(seq -f '2-%g' 1 20 | tr '\n' ' ')

# --- A: 10 identities from each of 20 hosts, over private IPv4 ----------
log "A: 10 speaking identities from each of 20 hosts (LAN 2), over IPv4"
attack A "$lan2" 10 -target "$t4" -speak -genesis "$genesis"
scenario A 3-1
stop_attack
log "A: attackers held $(attackers_connected A) connections at the end"

# --- B: 200 identities from one host ------------------------------------
log "B: 200 identities from one host (LAN 2, host 1): 100 speaking, 100 silent"
attack B 2-1 100 -target "$t4" -speak -genesis "$genesis"
attack B2 2-1 100 -target "$t4"
scenario B 1-4
stop_attack
log "B: attackers held $(( $(attackers_connected B) + $(attackers_connected B2) )) connections at the end"

# --- C: 10 identities from each of 20 hosts, over public IPv6 -----------
log "C: 10 speaking identities from each of 20 hosts (LAN 2), over public IPv6 ($t6)"
attack C "$lan2" 10 -target "$t6" -speak -genesis "$genesis"
scenario C 3-2
stop_attack
held=$(attackers_connected C)
log "C: attackers held $held connections at the end (cap $cap for their /48)"
[ "$held" -le "$cap" ] || check_fail "C: attackers from one /48 held $held connections, over the cap $cap"
grep -q 'outcome="refused-subnet"' <(run 1-1 curl -s 127.0.0.1:8080/metrics) || check_fail "C: T refused nothing for the subnet cap"

[ "$failed" = 0 ] || fail "see above"
log "PASS"
