#!/usr/bin/env bash
# e2e/miner.sh: an easy private network never bans its honest miner (issue
# 11, item 1), with real jbc processes on a LAN of network namespaces
# (../shared/netlab), no packet leaving this machine. For each difficulty
# of BITS (default "12 4"): a new network (jbc init --difficulty), three
# nodes A, B, C on three hosts, each dialling the others (--peer); A mines
# on every core for MINE_SECS (default 60) seconds, then stops (POST
# /mining?on=false). Checked: no node gave any peer a penalty
# (jbc_misbehaviour_total) or banned one (jbc_banned_peers), B and C are
# still connected to A, and all three hold the same tip within
# CONVERGE_MS (1000) of the miner stopping. It prints the blocks mined, the
# rate and the convergence time, and exits non-zero on any failure. About
# MINE_SECS + 10 seconds per difficulty. Needs root.
#
#   e2e/miner.sh                          # builds ./cmd/jbc; 60 s at 12 and at 4 bits
#   LAB=mi1 JBC=/path/to/jbc MINE_SECS=10 e2e/miner.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
netlab=${NETLAB:-$repo/../shared/netlab}
lab=${LAB:-jbcmine}
work=$(mktemp -d /tmp/jbc-miner.XXXXXX)
bits_list=${BITS:-12 4}
mine_s=${MINE_SECS:-60}
converge_ms=${CONVERGE_MS:-1000}

log() { printf '[miner.sh] %s\n' "$*" >&2; }
failed=0
fail() { log "FAIL: $*"; exit 1; }
# check_fail: with KEEP_GOING=1 (to measure, e.g. on old code) the run
# goes on and fails at the end.
check_fail() { if [ "${KEEP_GOING:-0}" = 1 ]; then log "FAIL: $*"; failed=1; else fail "$@"; fi; }

pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$netlab" down "$lab" >/dev/null 2>&1 || true
  if [ $rc -ne 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { log "--- $f"; grep -v 'mined block' "$f" | tail -n 15 >&2; }; done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || fail "needs root for network namespaces"
[ -f "$netlab" ] || fail "netlab not found at $netlab"
if [ -z "${JBC:-}" ]; then
  log "building jbc"
  (cd "$repo" && go build -o "$work/jbc" ./cmd/jbc)
  JBC=$work/jbc
fi

"$netlab" down "$lab" >/dev/null 2>&1 || true
bash "$netlab" up "$lab" 1 3 >/dev/null
run() { local host=$1; shift; ip netns exec "$lab-$host" "$@"; }
now_ms() { date +%s%3N; }
api() { local h=$1 path=$2; shift 2; run "$h" curl -s "$@" "127.0.0.1:8080$path"; }
metric() { # metric HOST NAME: the sum of a metric's samples (0 if none)
  api "$1" /metrics | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}
hosts=(1-1 1-2 1-3)
names=(A B C)

for bits in $bits_list; do
  dir=$work/b$bits
  mkdir -p "$dir"
  run 1-1 "$JBC" --datadir "$dir/a" init --difficulty "$bits" --name "fast$bits" >/dev/null
  for n in b c; do run 1-1 "$JBC" --datadir "$dir/$n" init --genesis "$dir/a/genesis.json" >/dev/null; done
  ids=()
  for n in a b c; do ids+=("$(run 1-1 "$JBC" --datadir "$dir/$n" id --json | jq -r .peer_id)"); done
  node_pids=()
  for i in 0 1 2; do
    args=()
    for j in 0 1 2; do
      [ "$j" -lt "$i" ] && args+=(--peer "/ip4/10.77.1.$((j + 1))/tcp/4747/p2p/${ids[$j]}")
    done
    d=$dir/$(echo "${names[$i]}" | tr A-Z a-z)
    # ip netns exec execs jbc in place: $! is the node's own pid.
    ip netns exec "$lab-${hosts[$i]}" "$JBC" --datadir "$d" node --no-mdns "${args[@]}" >"$work/${names[$i]}-$bits.log" 2>&1 &
    node_pids+=($!); pids+=($!)
  done
  deadline=$(( $(now_ms) + 20000 ))
  for h in "${hosts[@]}"; do
    until [ "$(api "$h" /status | jq -r '.peers // 0' 2>/dev/null)" -ge 2 ] 2>/dev/null; do
      [ "$(now_ms)" -lt "$deadline" ] || fail "$bits bits: node on $h did not connect to both others"
      sleep 0.1
    done
  done
  sleep 2 # the gossip mesh forms at a heartbeat

  log "$bits bits: A mines on every core for ${mine_s}s"
  api 1-1 '/mining?on=true' -X POST >/dev/null
  sleep "$mine_s"
  api 1-1 '/mining?on=false' -X POST >/dev/null
  t0=$(now_ms)
  mined=$(api 1-1 /status | jq -r .height)
  ms=-1
  deadline=$(( t0 + 30000 ))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    ta=$(api 1-1 /status | jq -r .tip); tb=$(api 1-2 /status | jq -r .tip); tc=$(api 1-3 /status | jq -r .tip)
    if [ -n "$ta" ] && [ "$ta" = "$tb" ] && [ "$ta" = "$tc" ] && [ "$ta" = "$(api 1-1 /status | jq -r .tip)" ]; then
      ms=$(( $(now_ms) - t0 )); break
    fi
    sleep 0.02
  done
  height=$(api 1-1 /status | jq -r .height)
  pen=() ban=() conn=()
  for i in 0 1 2; do
    pen+=("$(metric "${hosts[$i]}" jbc_misbehaviour_total)")
    ban+=("$(metric "${hosts[$i]}" jbc_banned_peers)")
    conn+=("$(api "${hosts[$i]}" /status | jq -r .peers)")
  done
  log "$bits bits: mined $mined blocks in ${mine_s}s ($(( mined / mine_s ))/s); all at height $height ${ms} ms after the miner stopped (bound ${converge_ms}); penalties A/B/C ${pen[*]}; banned ${ban[*]}; peers ${conn[*]}"
  if [ "$ms" -lt 0 ]; then
    check_fail "$bits bits: the nodes did not agree on a tip within 30 s of the miner stopping"
  elif [ "$ms" -gt "$converge_ms" ]; then
    check_fail "$bits bits: agreed ${ms} ms after the miner stopped, over ${converge_ms}"
  fi
  for i in 0 1 2; do
    [ "${pen[$i]}" = 0 ] || check_fail "$bits bits: node ${names[$i]} penalised peers ${pen[$i]} times"
    [ "${ban[$i]}" = 0 ] || check_fail "$bits bits: node ${names[$i]} banned ${ban[$i]} peers"
    [ "${conn[$i]}" -ge 2 ] || check_fail "$bits bits: node ${names[$i]} has ${conn[$i]} peers, want 2"
  done
  [ "$mined" -ge $(( 10 * mine_s )) ] || check_fail "$bits bits: only $mined blocks mined: not a fast miner"
  kill "${node_pids[@]}" 2>/dev/null || true
  wait "${node_pids[@]}" 2>/dev/null || true
done

[ "$failed" = 0 ] || fail "see above"
log "PASS"
