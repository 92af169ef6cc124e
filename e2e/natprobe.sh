#!/usr/bin/env bash
# e2e/natprobe.sh: nodes behind NAT (issue 17) in network namespaces
# (../shared/netlab NAT mode), no packet leaving this machine:
# `NAT=1,2 netlab up LAB 3 2` puts LANs 1 and 2 each behind a NAT and
# firewall of its own (hosts dial out, nobody dials in) and leaves LAN 3
# public; every host is also on IPv6, the "internet" segment being
# 2001:2::/64, where NAT gateway L is 2001:2::L.
#
# It runs e2e/natprobe (bare go-libp2p hosts, not jbc; e2e/nat.sh runs jbc
# nodes) to prove
# that the lab and go-libp2p's pieces work here:
#
#   R (LAN 3, host 1): public; DHT server, circuit relay v2 service;
#   A (LAN 1, host 1): behind NAT 1; R is its only bootstrap; it reserves
#      a slot on R and advertises its relay address;
#   B (LAN 2, host 1): behind NAT 2; finds A's addresses through R's DHT,
#      connects through the relay, and must then hold a direct connection
#      to A from A's NAT address 2001:2::1 (nobody can dial A there
#      unsolicited: only a hole punch opens it), which A's hole-punch
#      tracer saw succeed.
#
# B is run RUNS times (3; a fresh identity each), each printing the time
# from its start to the relayed and to the direct connection. B1 starts
# with A (COLD=1, the default: A's reservation counts in its time); with
# COLD=0 B1 waits for A's relay address like the later runs. About 10 s. Needs root, iproute2, iptables and jq. Usage:
#
#   e2e/natprobe.sh                                  # builds ./e2e/natprobe
#   LAB=nt1 PROBE=/path/to/natprobe RUNS=5 e2e/natprobe.sh
#
# For experiments: R_OPTS, A_OPTS, B_OPTS replace each role's probe
# options below, R_ARGS, A_ARGS, B_ARGS are appended (natprobe -h lists
# them); R_TRANSPORT=quic or tcp4 gives A and B R's QUIC or IPv4 address;
# KEEP_GOING=1 runs every B even after one failed; KEEP_LOGS=DIR keeps
# every host's JSON event log.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
netlab=${NETLAB:-$repo/../shared/netlab}
lab=${LAB:-jbcnat}
runs=${RUNS:-3}
# A's reservation on R, from A's start: AutoNAT, identify and the
# reservation round trips, on a loaded machine.
reserve_timeout_s=${RESERVE_TIMEOUT:-20}
# B's whole run, from its start: the target is a direct connection within
# 15 s (issue 17).
direct_timeout_s=${DIRECT_TIMEOUT:-15}
work=$(mktemp -d /tmp/jbc-nat.XXXXXX)

# The option set that works (docs/nat-design.md): every host runs AutoNAT
# v2 with the swarm's IPv6/UDP black-hole detection off (an AutoNAT v2
# server refuses to dial back a kind of address until its own swarm made
# 100 dials of that kind); R runs the relay service from the start, since
# an interface of it has a public address, and keeps it while AutoNAT v2
# does not find every public address of it unreachable (AutoNAT v1 never
# says "public" here: it asks only peers with a public address, and A and
# B have none); A and B start AutoRelay at once (reachability "unknown"
# until AutoNAT decides) with a peer source that hands it R the moment R
# speaks the hop protocol, and advertise their relay addresses while
# AutoNAT v2 has confirmed none of theirs; B redials a relayed connection
# on which no hole punch could start (the DCUtR trap).
common="-autonat-v2 -no-black-hole"
r_args="${R_OPTS:-$common -relay-svc iface} ${R_ARGS:-}"
a_args="${A_OPTS:-$common -kick-unknown -relay-source watch} ${A_ARGS:-}"
b_args="${B_OPTS:-$common -kick-unknown -relay-source watch -retry redial} ${B_ARGS:-}"

log() { printf '[natprobe.sh] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
# run_fail: one of B's runs failed; with KEEP_GOING=1 (to measure every
# run, e.g. of an option set that fails) the others go on and the script
# fails at the end.
failed=0
run_fail() {
  if [ "${KEEP_GOING:-0}" = 1 ]; then log "FAIL: $*"; failed=1; rows+=("B$i: FAIL: $*"); return 0; fi
  fail "$@"
}

# shellcheck source=e2e/natlab.sh
. "$repo/e2e/natlab.sh"
trap nat_cleanup EXIT INT TERM
nat_checks

if [ -z "${PROBE:-}" ]; then
  log "building natprobe"
  (cd "$repo" && go build -o "$work/natprobe" ./e2e/natprobe)
  PROBE=$work/natprobe
fi

nat_lab_up

now_ms() { date +%s%3N; }

# start HOST LOGNAME ARGS...: runs the probe in HOST's namespace.
start() {
  local host=$1 name=$2; shift 2
  ip netns exec "$lab-$host" "$PROBE" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
}

# wait_event LOG EV SECS: waits until LOG has an event EV; prints its ms.
wait_event() {
  local f=$1 ev=$2 deadline=$(( $(now_ms) + $3 * 1000 ))
  while :; do
    if ms=$(jq -r --arg ev "$ev" 'select(.ev == $ev) | .ms' "$f" 2>/dev/null | head -1) && [ -n "$ms" ]; then
      echo "$ms"; return 0
    fi
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

r_id=$("$PROBE" -seed r -peer-id)
a_id=$("$PROBE" -seed a -peer-id)
# R_TRANSPORT=quic gives R's QUIC address instead (with A_ARGS and B_ARGS
# "-transports quic", a hole punch over QUIC); tcp4 its IPv4 address,
# which libp2p counts as private: A and B then have no public address to
# punch from, and must stay relayed.
case ${R_TRANSPORT:-tcp} in
  tcp) r_addr="/ip6/$r_ip/tcp/4001/p2p/$r_id" ;;
  quic) r_addr="/ip6/$r_ip/udp/4001/quic-v1/p2p/$r_id" ;;
  tcp4) r_addr="/ip4/$(bash "$netlab" addr "$lab" 3-1)/tcp/4001/p2p/$r_id" ;; # private to libp2p: no hole punch
  *) fail "R_TRANSPORT must be tcp, quic or tcp4" ;;
esac

log "R ($r_addr): $r_args"
# shellcheck disable=SC2086
start 3-1 r -role relay -seed r $r_args
# R listens before A and B dial it: a refused dial puts R in the
# dialler's swarm backoff for seconds.
wait_event "$work/r.log" start 10 >/dev/null || fail "R did not start"
log "A: -relay R $a_args"
# shellcheck disable=SC2086
start 1-1 a -role peer -seed a -relay "$r_addr" $a_args
if [ "${COLD:-1}" = 1 ]; then
  # B1 starts with A: A's start, AutoNAT and reservation count in its
  # time.
  a_relay_ms=cold
else
  a_relay_ms=$(wait_event "$work/a.log" relay-addr "$reserve_timeout_s") ||
    fail "A advertised no relay address within ${reserve_timeout_s}s"
  a_reach=$(jq -r 'select(.ev == "reachability") | "\(.v)@\(.ms)ms"' "$work/a.log" | paste -sd, -)
  log "A: relay address after ${a_relay_ms} ms (reachability: ${a_reach:-none yet})"
fi

rows=()
for i in $(seq 1 "$runs"); do
  log "B$i: -relay R -find A $b_args"
  # shellcheck disable=SC2086
  ip netns exec "$lab-2-1" timeout $((direct_timeout_s + 10)) "$PROBE" -role peer -seed "b$i" -relay "$r_addr" -find "$a_id" \
    -expect-ip "$a_nat" -timeout "${direct_timeout_s}s" $b_args >"$work/b$i.log" 2>&1 || true
  res=$(jq -c 'select(.ev == "result")' "$work/b$i.log" | tail -1)
  [ -n "$res" ] || { run_fail "printed no result"; continue; }
  echo "$res" | jq -e '.ok' >/dev/null || { run_fail "no direct connection to A from $a_nat within ${direct_timeout_s}s: $res"; continue; }
  addr=$(echo "$res" | jq -r .direct_addr)
  case $addr in "/ip6/$a_nat/"*) ;; *) run_fail "the direct connection is from $addr, want $a_nat"; continue;; esac
  echo "$res" | jq -e '.relayed_ms' >/dev/null || { run_fail "never held a relayed connection to A: $res"; continue; }
  b_id=$("$PROBE" -seed "b$i" -peer-id)
  punched=$(jq -r --arg b "$b_id" 'select(.ev == "holepunch" and .remote == $b and .type == "EndHolePunch" and .evt.Success == true) | .ms' "$work/a.log" | head -1)
  [ -n "$punched" ] || { run_fail "A logged no successful hole punch with B$i"; continue; }
  redials=$(jq -r 'select(.ev == "redial") | .ms' "$work/b$i.log" | wc -l)
  rows+=("$(printf '%-4s %10s %10s %16s %8s  %s' "B$i" "$(echo "$res" | jq -r .relayed_ms)" "$(echo "$res" | jq -r .direct_ms)" \
    "$(echo "$res" | jq -r .relayed_to_direct_ms)" "$redials" "$addr")")
done

r_reach=$(jq -r 'select(.ev == "reachability" or .ev == "relay-service") | "\(.ev)=\(.v // .on)@\(.ms)ms"' "$work/r.log" | paste -sd, -)
a_reach=$(jq -r 'select(.ev == "reachability") | "\(.v)@\(.ms)ms"' "$work/a.log" | paste -sd, -)
printf '\ne2e/natprobe.sh (natprobe): ms from B start\n'
printf '%-4s %10s %10s %16s %8s  %s\n' run relayed direct relayed-direct redials "direct address"
printf '%s\n' "${rows[@]}"
a_relay_ms=$(jq -r 'select(.ev == "relay-addr") | .ms' "$work/a.log" | head -1)
printf 'A: relay address %s ms after start; AutoNAT: %s\n' "${a_relay_ms:-never}" "${a_reach:-none}"
printf 'R: %s\n' "${r_reach:-none}"
[ $failed = 0 ] || fail "some runs failed"
# One line for cmd/jbcbench: B1's time from start to the direct connection.
printf 'e2e/natprobe.sh: start to direct connection (B1%s): %s ms\n' "$([ "${COLD:-1}" = 1 ] && echo ", cold")" \
  "$(jq -r 'select(.ev == "result") | .direct_ms' "$work/b1.log")"
echo "e2e/natprobe.sh: PASS"
