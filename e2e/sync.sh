#!/usr/bin/env bash
# e2e/sync.sh: a node syncs a chain from several seeders over shaped links in
# private network namespaces (../shared/netlab); no packet leaves this
# machine.
#
# Host 1-1 syncs; hosts 1-2 .. 1-(SEEDERS+1) each hold the same chain of
# BLOCKS blocks (made by e2e/mkchain) and run `jbc node`. Each seeder is
# reached over a link of its own made with `netlab wan` (one-way DELAY,
# RATE bits/s, LOSS each way), or, with SHAPE set, over the LAN with the
# seeder's egress capped at SHAPE (`netlab shape`, e.g. 10mbit). The syncing
# node is given every seeder as --peer. The script waits until it holds the
# chain, checks it (jbc verify), prints the sync's figures from its GET
# /peers (the adopting sync's duration, bytes and blocks per seeder) and a
# last line "SYNC_RESULT {json}" for jbcbench, and fails if the blocks came
# from fewer than MIN_SOURCES seeders. FAULT=stall stops seeder 1 (SIGSTOP:
# its connection stays up, nothing more is answered) once the syncing node
# holds a tenth of the chain, and resumes it after the sync: a seeder that
# stalls mid-range.
#
#   e2e/sync.sh                                   # 20,000 blocks, 3 seeders, 50 ms RTT
#   BLOCKS=100000 SEEDERS=1 RATE=20000000 e2e/sync.sh
#   SEEDERS=1 DELAY=50ms LOSS=0.01 TRANSPORT=quic e2e/sync.sh
#   SEEDERS=4 SHAPE=10mbit DELAY= e2e/sync.sh
#
# Needs root (network namespaces), jq and curl. JBC=/path/to/jbc skips the
# build; LAB names the lab (default jbcsy).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
netlab=${NETLAB:-$repo/../shared/netlab}
lab=${LAB:-jbcsy}
blocks=${BLOCKS:-20000}
seeders=${SEEDERS:-3}
delay=${DELAY-25ms}
rate=${RATE:-}
loss=${LOSS:-}
shape=${SHAPE:-}
transport=${TRANSPORT:-tcp}
min_sources=${MIN_SOURCES:-$(( seeders > 1 ? 2 : 1 ))}
timeout_s=${SYNC_TIMEOUT:-300}
fault=${FAULT:-}
work=$(mktemp -d /tmp/jbc-sync.XXXXXX)

log() { printf '[sync.sh] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$?
  "$netlab" down "$lab" >/dev/null 2>&1 || true
  if [ $rc -ne 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { log "--- $f"; tail -n 20 "$f" >&2; }; done
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || fail "needs root for network namespaces"
[ -f "$netlab" ] || fail "netlab not found at $netlab"
for t in jq curl; do command -v $t >/dev/null || fail "needs $t"; done
case $transport in tcp|quic) ;; *) fail "TRANSPORT=$transport: want tcp or quic" ;; esac
case $fault in ''|stall) ;; *) fail "FAULT=$fault: want stall or nothing" ;; esac

if [ -z "${JBC:-}" ]; then
  log "building jbc"
  (cd "$repo" && go build -o "$work/jbc" ./cmd/jbc)
  JBC=$work/jbc
fi
mkchain=${MKCHAIN:-}
if [ -z "$mkchain" ]; then
  (cd "$repo" && go build -o "$work/mkchain" ./e2e/mkchain)
  mkchain=$work/mkchain
fi

"$netlab" down "$lab" >/dev/null 2>&1 || true
bash "$netlab" up "$lab" 1 $(( seeders + 1 )) >/dev/null
ns() { local host=$1; shift; ip netns exec "$lab-$host" "$@"; }
api() { ns "$1" curl -s --max-time 5 "http://127.0.0.1:8080$2"; }

log "making a chain of $blocks blocks"
"$mkchain" -dir "$work/seed" -blocks "$blocks" >"$work/mkchain.out"
tip=$(awk '{print $2}' "$work/mkchain.out")

# listen_addr IP: the multiaddr a node listens on at IP for TRANSPORT.
listen_addr() {
  if [ "$transport" = quic ]; then echo "/ip4/$1/udp/4747/quic-v1"; else echo "/ip4/$1/tcp/4747"; fi
}

peers=() seed_pids=()
for ((i = 1; i <= seeders; i++)); do
  host=1-$(( i + 1 ))
  if [ -n "$shape" ]; then
    bash "$netlab" shape "$lab" "$host" "$shape"
    addr=$(bash "$netlab" addr "$lab" "$host")
  else
    args=()
    [ -n "$delay" ] && args+=(-delay "$delay")
    [ -n "$rate" ] && args+=(-rate "$rate")
    [ -n "$loss" ] && args+=(-loss "$loss")
    read -r _ addr < <(bash "$netlab" wan "$lab" 1-1 "$host" "${args[@]}")
  fi
  mkdir -p "$work/s$i"
  cp "$work/seed/chain.db" "$work/seed/genesis.json" "$work/s$i/"
  id=$(ns "$host" "$JBC" --datadir "$work/s$i" --json id | jq -r .peer_id)
  peers+=(--peer "$(listen_addr "$addr")/p2p/$id")
  # ip netns exec execs jbc: $! is the node's pid (a shell function in
  # the background would be a subshell's).
  ip netns exec "$lab-$host" "$JBC" --datadir "$work/s$i" node --listen "$(listen_addr "$addr")" --no-mdns --no-dht \
    >"$work/s$i.log" 2>&1 &
  seed_pids+=($!)
done
ns 1-1 "$JBC" --datadir "$work/sync" init --genesis "$work/seed/genesis.json" >/dev/null
for ((i = 1; i <= seeders; i++)); do
  for _ in $(seq 100); do api 1-$(( i + 1 )) /status >/dev/null 2>&1 && break; sleep 0.1; done
done

if [ -n "$shape" ]; then
  link="LAN, each seeder's egress at $shape"
else
  link="wan links, one-way delay ${delay:-0}"
  [ -n "$rate" ] && link+=", rate $rate bit/s"
  [ -n "$loss" ] && link+=", loss $loss"
fi
log "syncing $blocks blocks from $seeders seeder(s) over $link, $transport"
ip netns exec "$lab-1-1" "$JBC" --datadir "$work/sync" node --listen "$(listen_addr 10.77.1.1)" --no-mdns --no-dht "${peers[@]}" \
  >"$work/sync.log" 2>&1 &
sync_pid=$!
deadline=$(( $(date +%s) + timeout_s ))
stalled=
while :; do
  h=$(api 1-1 /status 2>/dev/null | jq -r '.height // 0' 2>/dev/null || echo 0)
  [ "${h:-0}" -ge "$blocks" ] && break
  if [ "$fault" = stall ] && [ -z "$stalled" ] && [ "${h:-0}" -ge $(( blocks / 10 )) ]; then
    kill -STOP "${seed_pids[0]}"
    stalled=1
    log "seeder 1 stopped at height $h"
  fi
  [ "$(date +%s)" -lt "$deadline" ] || fail "not synced after ${timeout_s}s (height $h of $blocks)"
  if [ "$fault" = stall ]; then sleep 0.02; else sleep 0.2; fi
done
# The record of the adopting sync is written just after its last commit.
for _ in $(seq 50); do
  rec=$(api 1-1 /peers | jq -c '[.[] | select(.last_sync.result == "adopted") | .last_sync] | max_by(.at)')
  [ "$rec" != null ] && break
  sleep 0.2
done
[ "$rec" != null ] || fail "no adopting sync record in GET /peers"
[ -n "$stalled" ] && kill -CONT "${seed_pids[0]}"
[ "$fault" != stall ] || [ -n "$stalled" ] || fail "the sync ended before seeder 1 could be stopped"
got=$(api 1-1 /status | jq -r .tip)
[ "$got" = "$tip" ] || fail "synced to tip $got, want $tip"
kill -INT "$sync_pid" 2>/dev/null || true

secs=$(jq -r '.duration_ns / 1e9' <<<"$rec")
bytes=$(jq -r '.bytes' <<<"$rec")
sources=$(jq -c '.sources // {}' <<<"$rec")
nsrc=$(jq -r 'length' <<<"$sources")
shares=$(jq -c --argjson n "$blocks" '[.[] | . / $n * 1000 | round / 1000] | sort | reverse' <<<"$sources")
log "synced $blocks blocks in ${secs}s: $(jq -n "$blocks / $secs | round") blocks/s, $bytes bytes; blocks from $nsrc seeder(s), shares $shares"
echo "SYNC_RESULT $(jq -nc --argjson blocks "$blocks" --argjson secs "$secs" --argjson bytes "$bytes" \
  --argjson sources "$sources" --argjson seeders "$seeders" --arg transport "$transport" --arg link "$link" --arg fault "$fault" \
  '{blocks: $blocks, seconds: $secs, bytes: $bytes, blocks_per_s: ($blocks / $secs), seeders: $seeders, transport: $transport, link: $link, fault: $fault, sources: $sources}')"
[ "$nsrc" -ge "$min_sources" ] || fail "blocks came from $nsrc seeder(s), want at least $min_sources"
