#!/usr/bin/env bash
# e2e/live.sh: five mining nodes on a private LAN of network namespaces
# (../shared/netlab; no packet leaves this machine), three live scenarios:
#
#   1. convergence: five nodes that find each other by mDNS mine an easy
#      private network (one thread each) while entries are submitted at
#      several nodes; mining stops and every node must reach the same tip
#      within CONVERGE_MAX_MS. It prints block propagation (p50, p95) and
#      checks every entry is mined on the final chain or still pending;
#   2. partition: the LAN is split 3|2 at its bridge (each half keeps its
#      own segment, unicast and mDNS) and both halves mine and take entries
#      until every connection across the split has timed out; after the
#      heal every node must end on the pre-heal tip of the half with more
#      work, the losing half must hold its entries again (pending, or mined
#      on the winning chain), the winning half must learn them (the losing
#      half announces them again) within REGOSSIP_TIMEOUT, and once mining
#      resumes every entry of the whole test must be mined on every node;
#   3. crash: one node is killed with SIGKILL while all mine; its store
#      must verify, and restarted on the same data directory it must catch
#      up with the others; every entry must still be mined, on every node.
#
# It prints a table of the figures measured and exits non-zero on any
# failure (keeping the nodes' logs). Misjudgements that do not break those
# checks (an honest peer penalised or banned, an entry in two blocks) are
# printed as warnings, and fail the run with STRICT=1. Takes about three
# minutes; needs root (network namespaces), jq, curl and awk. Usage:
#   e2e/live.sh           # builds ./cmd/jbc
#   JBC=/path/to/jbc BITS=21 MINE_S=20 e2e/live.sh
#   KEEP=1 e2e/live.sh    # keep the logs and data directories on success too
#   STRICT=1 e2e/live.sh  # warnings fail the run
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
netlab=${NETLAB:-$repo/../shared/netlab}
lab=${LAB:-jbclive}
work=$(mktemp -d /tmp/jbc-live.XXXXXX)

# The network: fixed difficulty BITS. At 21 bits (2M hashes a block) the
# five single-thread miners of a 2-CPU machine make about 4 blocks a
# second: enough blocks for propagation figures and a few forks, few enough
# that a block spreads long before the next one is found. SPACING=1s (or
# more) makes a retargeting network instead.
bits=${BITS:-21}
spacing=${SPACING:-0}
mine_s=${MINE_S:-20}             # phase 1 mining time, after the mesh forms
min_blocks=${MIN_BLOCKS:-30}     # phase 1: and until this many blocks more,
mine_max_s=${MINE_MAX:-60}       # unless this much time has passed
part_s=${PART_S:-20}             # phase 2 mining time while split, at least
part_max_s=${PART_MAX:-90}       # phase 2: longest wait for connections to drop
mesh_timeout_s=${MESH_TIMEOUT:-30}
converge_max_ms=${CONVERGE_MAX_MS:-5000}
heal_timeout_s=${HEAL_TIMEOUT:-120}
# Two re-announcement intervals (node.DefaultReannounceInterval, 30 s),
# the most a pending entry can take to reach a node that missed it.
regossip_timeout_s=${REGOSSIP_TIMEOUT:-60}
drain_timeout_s=${DRAIN_TIMEOUT:-60}
kill_pause_s=${KILL_PAUSE:-4}
catchup_timeout_s=${CATCHUP_TIMEOUT:-30}
victim=${VICTIM:-3}
nodes=(1 2 3 4 5)
side_a=(1 2 3)                   # the three hosts left on br0 by the split
side_b=(4 5)                     # the two moved to br1

# Node logs carry UTC times, as the log analysis below reads them.
export TZ=UTC

log() { printf '[live.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
# A command failing under set -e says where, instead of ending the run
# silently.
trap 'log "FAIL: line $LINENO: $BASH_COMMAND exited $?"' ERR

pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  "$netlab" down "$lab" >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { log "--- $f (last 25 lines)"; tail -n 25 "$f" >&2; }; done
    log "logs kept in $work"
  elif [ -n "${KEEP:-}" ]; then
    log "KEEP: logs kept in $work"
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || fail "needs root for network namespaces"
[ -f "$netlab" ] || fail "netlab not found at $netlab"
for c in jq curl awk ip; do command -v "$c" >/dev/null || fail "needs $c"; done

if [ -z "${JBC:-}" ]; then
  log "building jbc"
  (cd "$repo" && go build -o "$work/jbc" ./cmd/jbc)
  JBC=$work/jbc
fi

bash "$netlab" down "$lab" >/dev/null 2>&1 || true
bash "$netlab" up "$lab" 1 5 >/dev/null

# ns I CMD...: run CMD in node I's namespace (host 1-I).
ns() { local i=$1; shift; ip netns exec "$lab-1-$i" "$@"; }

# api I PATH [CURL ARGS]: node I's HTTP API (loopback in its namespace).
api() { local i=$1 path=$2; shift 2; ns "$i" curl -s --max-time 3 "$@" "http://127.0.0.1:8080$path"; }

now_ms() { date +%s%3N; }

# field I KEY: one field of node I's /status, or "" if it does not answer.
field() { api "$1" /status 2>/dev/null | jq -r ".$2 // empty" 2>/dev/null || true; }

# mining ON I...: turn the miners of nodes I... on or off, all at once.
mining() {
  local i; mining_on=$1; shift
  par mining_set "$@"
  for i in "$@"; do
    [ "$(cat "$work/out.$i")" = "$mining_on" ] || fail "node $i: POST /mining?on=$mining_on"
  done
}
mining_set() { api "$1" "/mining?on=$mining_on" -X POST | jq -r .mining; }

# start_node I: start node I (mining, one thread, debug logs appended to
# nI.log) and record its pid (ip netns exec execs jbc in place).
start_node() {
  local i=$1
  # Not through ns: a backgrounded function is a subshell, and $! its pid.
  ip netns exec "$lab-1-$i" "$JBC" --datadir "$work/n$i" node --log-level debug --mine --threads 1 >>"$work/n$i.log" 2>&1 &
  pids[$i]=$!
}

# par FUNC I...: runs "FUNC I" for the nodes I... at once, each writing to
# $work/out.I, and waits for them: one poll of five nodes costs one round
# trip, not five, on a machine whose CPUs the miners keep busy.
par() {
  local f=$1 i jobs_=(); shift
  for i in "$@"; do "$f" "$i" >"$work/out.$i" 2>/dev/null & jobs_+=($!); done
  wait "${jobs_[@]}" || true
}

# tip_of I: node I's tip. connected_to I: the peer IDs node I is
# connected to, one a line.
tip_of() { field "$1" tip; }
connected_to() { api "$1" /peers | jq -r '.[] | select(.connected) | .id'; }

# same_tip I...: prints the tip if nodes I... all answer with one tip.
same_tip() {
  local i t first=
  par tip_of "$@"
  for i in "$@"; do
    t=$(cat "$work/out.$i")
    [ -n "$t" ] || return 1
    if [ -z "$first" ]; then first=$t; elif [ "$t" != "$first" ]; then return 1; fi
  done
  echo "$first"
}

# same_work I...: whether nodes I... all answer with one total work.
work_of() { field "$1" total_work; }
same_work() {
  local i w first=
  par work_of "$@"
  for i in "$@"; do
    w=$(cat "$work/out.$i")
    [ -n "$w" ] || return 1
    if [ -z "$first" ]; then first=$w; elif [ "$w" != "$first" ]; then return 1; fi
  done
}

# converge TIMEOUT_S START_MS TIEBREAKER I...: waits for
# nodes I... (miners off) to share a tip, and sets agreed_ms, agreed_tip
# and agreed_start (START_MS, or when the last tie was broken). A tie is
# the nodes staying 2 s on different tips of equal work: the fork-choice
# rule keeps the tip each saw first, so nothing more would change. Node
# TIEBREAKER then mines one block more, and the wait starts again from
# when it stopped (at most three times); with TIEBREAKER "" the wait goes on
# to the timeout. Counts the ties in ties. agreed_ms is from START_MS to the
# end of the first poll that saw the tip, which then stayed put for a
# second: an upper bound, by a poll's length (tens of ms), of when they
# agreed.
ties=0
converge() {
  local timeout_s=$1 start=$2 tb=$3; shift 3
  local try deadline t seen tie_since h
  for try in 1 2 3 4; do
    deadline=$(( $(now_ms) + timeout_s * 1000 )) tie_since=
    while [ "$(now_ms)" -lt "$deadline" ]; do
      if t=$(same_tip "$@"); then
        seen=$(now_ms)
        sleep 1
        if [ "$(same_tip "$@" || true)" = "$t" ]; then
          agreed_ms=$(( seen - start )) agreed_tip=$t agreed_start=$start
          return 0
        fi
        tie_since=
      elif same_work "$@"; then
        [ -n "$tie_since" ] || tie_since=$(now_ms)
        [ $(( $(now_ms) - tie_since )) -lt 2000 ] || [ -z "$tb" ] || break
      else
        tie_since=
      fi
      sleep 0.05
    done
    [ -n "$tb" ] && [ -n "$tie_since" ] && [ "$try" -lt 4 ] || return 1
    ties=$(( ties + 1 ))
    h=$(field "$tb" height)
    log "tie: nodes $* on different tips of equal work at height $h; node $tb mines one block more"
    mining true "$tb"
    deadline=$(( $(now_ms) + 30000 ))
    until [ "$(field "$tb" height)" -gt "$h" ]; do [ "$(now_ms)" -lt "$deadline" ] || fail "tie break: node $tb mined nothing in 30s"; sleep 0.05; done
    mining false "$tb"
    start=$(now_ms)
  done
  return 1
}

# awk_ms is an awk function: ms(TS) is the RFC 3339 UTC time TS
# (2006-01-02T15:04:05.000Z, as the node logs) in ms since 1970.
awk_ms='
function ms(ts,   y, m, d, days) {
  y = substr(ts, 1, 4) + 0; m = substr(ts, 6, 2) + 0; d = substr(ts, 9, 2) + 0
  if (m <= 2) { y--; m += 12 }
  days = 365 * y + int(y / 4) - int(y / 100) + int(y / 400) + int((153 * (m - 3) + 2) / 5) + d - 719469
  return ((days * 24 + substr(ts, 12, 2)) * 60 + substr(ts, 15, 2)) * 60000 + substr(ts, 18, 2) * 1000 + substr(ts, 21, 3)
}'

# adopted_ms I HASH: when node I's log first names block HASH (a full or
# 12-digit hash: mined, from gossip or as its new tip), in ms since 1970;
# nothing if it never did.
adopted_ms() {
  awk -v h="hash=${2:0:12}" "$awk_ms"'
    $0 ~ h { printf "%.0f\n", ms(substr($1, 6)); exit }' "$work/n$1.log"
}

# last_adoption START_MS HASH I...: ms from START_MS until the last of nodes
# I... had block HASH by their logs ("-" if one never logged it; 0 if all
# had it before START_MS).
last_adoption() {
  local start=$1 h=$2 i t last=0; shift 2
  for i in "$@"; do
    t=$(adopted_ms "$i" "$h")
    [ -n "$t" ] || { echo -; return; }
    [ $(( t - start )) -le "$last" ] || last=$(( t - start ))
  done
  echo "$last"
}

# bigger A B: whether decimal A > decimal B (total work can outgrow 64 bits).
bigger() {
  local a=$1 b=$2
  [ ${#a} -ne ${#b} ] && { [ ${#a} -gt ${#b} ]; return; }
  [[ $a > $b ]]
}

# Entries submitted, in order: id, node it was given to, and the group it
# belongs to (p1, or p2a / p2b: the half of the partition).
e_id=() e_node=() e_group=() e_text=()
submit() {
  local i=$1 group=$2 text=$3 id
  id=$(ns "$i" "$JBC" submit --json "$text" | jq -r .id) || fail "node $i: submit"
  [ ${#id} = 64 ] || fail "node $i: submit gave id '$id'"
  e_id+=("$id"); e_node+=("$i"); e_group+=("$group"); e_text+=("$text")
}

# entries_of I: "ID STATUS BLOCK" of every entry submitted so far, as node
# I answers GET /data/ID (BLOCK "-" unless mined): one curl for them all.
entries_of() {
  local urls=() id
  for id in "${e_id[@]}"; do urls+=("http://127.0.0.1:8080/data/$id"); done
  ns "$1" curl -s --max-time 5 "${urls[@]}" | jq -r '"\(.id) \(.status) \(.block // "-")"'
}

# entry_status: after "par entries_of I...", entry_status I ID prints
# "STATUS BLOCK" of entry ID on node I ("noanswer -" if it did not say).
entry_status() {
  awk -v id="$2" '$1 == id { print $2, $3; found = 1; exit } END { if (!found) print "noanswer -" }' "$work/out.$1"
}

# entries_held GROUP NODES ALLOWED: whether every entry of GROUP has a
# status matching ALLOWED on each node of NODES, as check_entries checks,
# but answering instead of failing: for waiting until it holds.
entries_held() {
  local group=$1 nodes_=$2 allowed=$3 k i s b
  # shellcheck disable=SC2086 # NODES is a list
  par entries_of $nodes_
  for k in "${!e_id[@]}"; do
    [[ ${e_group[$k]} =~ ^($group)$ ]] || continue
    for i in $nodes_; do
      read -r s b < <(entry_status "$i" "${e_id[$k]}")
      [[ $s =~ ^($allowed)$ ]] || return 1
    done
  done
}

# check_entries GROUP NODES ALLOWED: every entry of GROUP (a regex) must
# have a status matching ALLOWED (a regex) on each node of NODES, and where
# several of them say mined, the same block. Prints how many (entry, node)
# pairs had each status.
check_entries() {
  local group=$1 nodes_=$2 allowed=$3 k i s b blk counts=""
  # shellcheck disable=SC2086 # NODES is a list
  par entries_of $nodes_
  for k in "${!e_id[@]}"; do
    [[ ${e_group[$k]} =~ ^($group)$ ]] || continue
    blk=
    for i in $nodes_; do
      read -r s b < <(entry_status "$i" "${e_id[$k]}")
      counts+="$s"$'\n'
      [[ $s =~ ^($allowed)$ ]] || fail "entry ${e_id[$k]:0:12} (${e_group[$k]}, given to node ${e_node[$k]}) is '$s' on node $i, want $allowed"
      if [ "$s" = mined ]; then
        [ -z "$blk" ] || [ "$blk" = "$b" ] || fail "entry ${e_id[$k]:0:12} mined in block ${blk:0:12} on one node, ${b:0:12} on node $i"
        blk=$b
      fi
    done
  done
  printf '%s' "$counts" | sort | uniq -c | awk '{printf "%s%s=%s", (NR>1?" ":""), $2, $1}'
}

# propagation FROM_MS TO_MS FINAL: for each block mined between FROM_MS and
# TO_MS (by the miner's "mined block" line) whose hash prefix is in file
# FINAL (the final best chain), the ms until the last of the other nodes
# logged it ("block from gossip" or "new tip"); one delay per line. A block
# some node never logged (it came inside a synced page, or as an orphan
# connected later) is printed as "untimed".
propagation() {
  awk -v from="$1" -v to="$2" -v final="$3" "$awk_ms"'
    BEGIN {
      while ((getline h < final) > 0) onchain[h] = 1
    }
    FNR == 1 { files[++nf] = FILENAME }
    {
      t = ms(substr($1, 6)); hash = ""
      for (i = 2; i <= NF; i++) if ($i ~ /^hash=/) hash = substr($i, 6)
    }
    /msg="mined block"/ { minedAt[hash] = t; minedBy[hash] = FILENAME }
    /msg="block from gossip"/ || /msg="new tip"/ { if (!((hash, FILENAME) in seen)) seen[hash, FILENAME] = t }
    END {
      for (h in minedAt) {
        if (minedAt[h] < from || minedAt[h] > to || !(h in onchain)) continue
        last = -1
        for (j = 1; j <= nf; j++) {
          if (files[j] == minedBy[h]) continue
          if (!((h, files[j]) in seen)) { last = -1; break }
          if (seen[h, files[j]] - minedAt[h] > last) last = seen[h, files[j]] - minedAt[h]
        }
        if (last < 0) print "untimed"; else printf "%.0f\n", last
      }
    }' "${@:4}"
}

# found_since MS: how the nodes found the peers they dialled since MS (ms
# since 1970), by their "peer found" log lines: "dht=2 mdns=1", or "none"
# (connections the DHT opens for its own queries are not logged).
found_since() {
  awk -v from="$1" "$awk_ms"'
    /msg="peer found"/ && ms(substr($1, 6)) >= from {
      for (i = 2; i <= NF; i++) if ($i ~ /^source=/) n[substr($i, 8)]++
    }
    END { for (k in n) out = out (out == "" ? "" : " ") k "=" n[k]; print (out == "" ? "none" : out) }' "$work"/n*.log
}

# pct P: the P-th percentile (nearest rank) of the numbers on stdin.
pct() { sort -n | awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } r = int((p * NR + 99) / 100); if (r < 1) r = 1; print v[r] }'; }

# reachable I J: whether node I can open a TCP connection to node J's
# libp2p port.
reachable() {
  ns "$1" timeout 1 bash -c "exec 3<>/dev/tcp/$(bash "$netlab" addr "$lab" "1-$2")/4747" 2>/dev/null
}

# split / join: move hosts 4 and 5 to a bridge of their own in the LAN's
# namespace, and back. Each half keeps its own L2 segment (unicast and
# mDNS within it); nothing crosses between them. No link goes down, so
# connections across the split are not reset: they just stop carrying
# packets until the join, as behind a failed switch.
split() {
  local b=$lab-lan1 p
  ip netns exec "$b" ip link add br1 type bridge
  ip netns exec "$b" ip link set br1 type bridge mcast_snooping 0
  ip netns exec "$b" ip link set br1 up
  for p in "${side_b[@]}"; do ip netns exec "$b" ip link set "p$p" master br1; done
}
join() {
  local b=$lab-lan1 p
  for p in "${side_b[@]}"; do ip netns exec "$b" ip link set "p$p" master br0; done
  ip netns exec "$b" ip link del br1
}

# ===== setup ==================================================================
init_args=(--difficulty "$bits" --data "live test")
[ "$spacing" = 0 ] || init_args+=(--spacing "$spacing")
ns 1 "$JBC" --datadir "$work/n1" init "${init_args[@]}" >"$work/init.out"
for i in "${nodes[@]:1}"; do
  ns "$i" "$JBC" --datadir "$work/n$i" init --genesis "$work/n1/genesis.json" >>"$work/init.out"
done
network=$(ns 1 "$JBC" --datadir "$work/n1" --json chain | jq -r .network)
log "network ${network:0:12}: $bits bits, spacing $spacing; 5 nodes on one LAN, --mine --threads 1"

# ===== 1. convergence =========================================================
t_start=$(now_ms)
for i in "${nodes[@]}"; do start_node "$i"; done
deadline=$(( t_start + mesh_timeout_s * 1000 ))
while :; do
  full=1
  for i in "${nodes[@]}"; do
    [ "$(field "$i" peers)" = 4 ] 2>/dev/null || { full=0; break; }
  done
  [ $full = 1 ] && break
  if [ "$(now_ms)" -ge "$deadline" ]; then
    for i in "${nodes[@]}"; do log "node $i: peers=$(field "$i" peers)"; done
    fail "the five nodes did not all find each other by mDNS within ${mesh_timeout_s}s"
  fi
  sleep 0.1
done
t_mesh=$(now_ms)
mesh_ms=$(( t_mesh - t_start ))
h_mesh=$(field 1 height)
node_id=()
for i in "${nodes[@]}"; do node_id[$i]=$(field "$i" peer_id); done
for i in "${nodes[@]}"; do
  n_mdns=$(api "$i" /peers | jq '[.[] | select(.source == "mdns")] | length')
  log "node $i: 4 peers ($n_mdns found by mDNS)"
done
log "1: full mesh after ${mesh_ms} ms; mining at least ${mine_s}s and $min_blocks blocks, entries submitted at nodes 1..5"

# Entries at every node, spread over the mining time.
step=$(( mine_s / 6 )); [ $step -ge 1 ] || step=1
for k in 1 2 3 4 5 6; do
  sleep "$step"
  submit $(( (k - 1) % 5 + 1 )) p1 "live p1 entry $k $(now_ms)"
done
rest=$(( mine_s - 6 * step )); [ $rest -le 0 ] || sleep "$rest"
# Enough blocks for the figures, however busy the machine: mine on until
# the chain has grown by min_blocks since the mesh formed (or mine_max_s).
deadline=$(( t_mesh + mine_max_s * 1000 ))
until h=$(field 1 height); [ "${h:-0}" -ge $(( h_mesh + min_blocks )) ] || [ "$(now_ms)" -ge "$deadline" ]; do sleep 0.5; done

mining false "${nodes[@]}"
t_stop=$(now_ms)
converge 15 "$t_stop" 1 "${nodes[@]}" ||
  { for i in "${nodes[@]}"; do log "node $i: $(api "$i" /status | jq -c '{height, tip: .tip[0:12], total_work, peers}')"; done
    fail "nodes did not agree on a tip within 15s of mining stopped"; }
conv_ms=$agreed_ms tip1=$agreed_tip
h1=$(field 1 height)
conv_log_ms=$(last_adoption "$agreed_start" "$tip1" "${nodes[@]}")
log "1: all five at height $h1 tip ${tip1:0:12}: seen by polling ${conv_ms} ms after mining stopped, by the logs ${conv_log_ms} ms"
[ "$conv_ms" -le "$converge_max_ms" ] || fail "convergence took ${conv_ms} ms, more than ${converge_max_ms}"

api 1 /blockchain.json | jq -r '.[].hash[0:12]' >"$work/final1.txt"
[ "$(wc -l <"$work/final1.txt")" = $(( h1 + 1 )) ] || fail "node 1's /blockchain.json is not $((h1 + 1)) blocks"
propagation "$t_mesh" "$t_stop" "$work/final1.txt" "$work"/n{1,2,3,4,5}.log >"$work/prop.txt"
n_mined=$(cat "$work"/n{1,2,3,4,5}.log | grep -c 'msg="mined block"' || true)
n_timed=$(grep -vc untimed "$work/prop.txt" || true)
n_untimed=$(grep -c untimed "$work/prop.txt" || true)
p50=$(grep -v untimed "$work/prop.txt" | pct 50)
p95=$(grep -v untimed "$work/prop.txt" | pct 95)
pmax=$(grep -v untimed "$work/prop.txt" | pct 100)
n_stale=$(( n_mined - h1 ))
log "1: $n_mined blocks mined in all, $h1 on the final chain ($n_stale stale)"
log "1: propagation to all 4 other nodes, final-chain blocks mined after the mesh formed: n=$n_timed p50=${p50} ms p95=${p95} ms max=${pmax} ms ($n_untimed untimed)"
[ "$n_timed" -ge 10 ] || fail "only $n_timed final-chain blocks timed: too few to measure propagation"
counts=$(check_entries p1 "${nodes[*]}" 'mined|pending')
log "1: ${#e_id[@]} entries; status by (entry, node) pair on all five: $counts"

# ===== 2. partition ===========================================================
log "2: splitting the LAN: nodes ${side_a[*]} | ${side_b[*]}"
split
reachable 4 5 || fail "split: node 4 cannot reach node 5 on its own side"
reachable 1 3 || fail "split: node 1 cannot reach node 3 on its own side"
! reachable 4 1 || fail "split: node 4 still reaches node 1"
! reachable 2 5 || fail "split: node 2 still reaches node 5"
mining true "${nodes[@]}"
t_split=$(now_ms)
step=$(( part_s / 4 )); [ $step -ge 1 ] || step=1
for k in 1 2 3; do
  sleep "$step"
  submit "${side_a[$(( (k - 1) % 3 ))]}" p2a "live p2 side a entry $k $(now_ms)"
  submit "${side_b[$(( (k - 1) % 2 ))]}" p2b "live p2 side b entry $k $(now_ms)"
done
rest=$(( part_s - 3 * step )); [ $rest -le 0 ] || sleep "$rest"

# A partition is not over when the cable is back: it is over when the nodes
# noticed. Both sides mine on until every connection across the split has
# timed out (libp2p keep-alives: about half a minute), so that the heal
# needs the nodes to find each other again, as after a real outage. (A
# shorter split heals by retransmission on the connections still open.)
deadline=$(( t_split + part_max_s * 1000 ))
while :; do
  par connected_to "${nodes[@]}"
  cross=
  for i in "${side_a[@]}"; do for j in "${side_b[@]}"; do grep -qx "${node_id[$j]}" "$work/out.$i" && cross+=" $i-$j"; done; done
  for i in "${side_b[@]}"; do for j in "${side_a[@]}"; do grep -qx "${node_id[$j]}" "$work/out.$i" && cross+=" $i-$j"; done; done
  [ -z "$cross" ] && { drop_ms=$(( $(now_ms) - t_split )); break; }
  if [ "$(now_ms)" -ge "$deadline" ]; then
    drop_ms=-
    log "2: connections across the split still open after ${part_max_s}s:$cross"
    break
  fi
  sleep 0.5
done
[ "$drop_ms" = - ] || log "2: every connection across the split gone ${drop_ms} ms after it"
mining false "${nodes[@]}"

converge 15 "$(now_ms)" "${side_a[0]}" "${side_a[@]}" || fail "side a (${side_a[*]}) did not agree on a tip"
tip_a=$agreed_tip
converge 15 "$(now_ms)" "${side_b[0]}" "${side_b[@]}" || fail "side b (${side_b[*]}) did not agree on a tip"
tip_b=$agreed_tip
h_a=$(field 1 height) w_a=$(field 1 total_work) h_b=$(field 4 height) w_b=$(field 4 total_work)
log "2: side a at height $h_a work $w_a tip ${tip_a:0:12}; side b at height $h_b work $w_b tip ${tip_b:0:12}"
[ "$h_a" -gt "$h1" ] && [ "$h_b" -gt "$h1" ] || fail "a side did not mine while split (heights $h_a, $h_b from $h1)"
[ "$tip_a" != "$tip_b" ] || fail "both sides have the same tip: the split did not split"
if [ "$w_a" = "$w_b" ]; then
  # Equal work: each side would keep its own tip (first seen wins a tie).
  # One more block on side a breaks the tie.
  log "2: equal work on both sides; side a mines one more block"
  mining true 1
  deadline=$(( $(now_ms) + 30000 ))
  until [ "$(field 1 height)" -gt "$h_a" ]; do [ "$(now_ms)" -lt "$deadline" ] || fail "tie break: node 1 mined nothing"; sleep 0.05; done
  mining false 1
  converge 15 "$(now_ms)" 1 "${side_a[@]}" || fail "side a did not agree on a tip after the tie break"
  tip_a=$agreed_tip
  h_a=$(field 1 height) w_a=$(field 1 total_work)
fi
if bigger "$w_a" "$w_b"; then
  win=a lose=b win_tip=$tip_a win_nodes="${side_a[*]}" lose_nodes="${side_b[*]}"
else
  win=b lose=a win_tip=$tip_b win_nodes="${side_b[*]}" lose_nodes="${side_a[*]}"
fi
pre_a=$(check_entries p2a "${side_a[*]}" 'mined|pending')
pre_b=$(check_entries p2b "${side_b[*]}" 'mined|pending')
log "2: side $win has more work; before the heal, (entry, node) pairs: side a's entries on side a: $pre_a; side b's on side b: $pre_b"

join
t_heal=$(now_ms)
# No tie breaking here: the tip they must agree on is the winning side's.
converge "$heal_timeout_s" "$t_heal" "" "${nodes[@]}" ||
  { for i in "${nodes[@]}"; do log "node $i: $(api "$i" /status | jq -c '{height, tip: .tip[0:12], peers}')"; done
    fail "nodes did not agree on a tip within ${heal_timeout_s}s of the heal"; }
heal_ms=$agreed_ms tip2=$agreed_tip
[ "$tip2" = "$win_tip" ] || fail "after the heal all nodes are on ${tip2:0:12}, not side $win's pre-heal tip ${win_tip:0:12}"
# shellcheck disable=SC2086 # a list
heal_log_ms=$(last_adoption "$t_heal" "$win_tip" $lose_nodes)
heal_found=$(found_since "$t_heal")
log "2: healed; all five on side $win's tip ${win_tip:0:12}: seen by polling after ${heal_ms} ms, by the logs ${heal_log_ms} ms; peers dialled again since the heal, by discovery: $heal_found"

# Entries after the heal, before anyone mines again. Every node now holds
# the winning chain, so "mined" below means mined on it. The winning side
# had its own entries throughout (mined or pending). The losing side's
# entries were in blocks the reorg dropped, or still pending: its nodes
# must hold each one again, pending, unless the winning chain holds it.
# The winning side's nodes never saw them: the split stopped their gossip.
# But a node announces again the entries a reorg returned to its pool (a
# second after the reorg) and every entry still pending (every 30 s), so
# the winning side must learn each one, pending, within two intervals at
# most; usually it has by the time all agree on the tip.
counts_win=$(check_entries "p2$win" "$win_nodes" 'mined|pending')
counts_lose=$(check_entries "p2$lose" "$lose_nodes" 'mined|pending')
t_regossip=$(now_ms)
deadline=$(( t_regossip + regossip_timeout_s * 1000 ))
until entries_held "p2$lose" "$win_nodes" 'mined|pending'; do
  [ "$(now_ms)" -lt "$deadline" ] ||
    { log "2: side $lose's entries on side $win: $(check_entries "p2$lose" "$win_nodes" 'mined|pending|unknown')"
      fail "side $win's nodes did not learn side $lose's entries within ${regossip_timeout_s}s of agreeing on the tip"; }
  sleep 0.5
done
# An upper bound, by a poll's length, as for the tip.
regossip_ms=$(( $(now_ms) - t_heal ))
counts_lose_w=$(check_entries "p2$lose" "$win_nodes" 'mined|pending')
log "2: after the heal, (entry, node) pairs: side $win's entries on side $win: $counts_win"
log "2: side $lose's entries on side $lose: $counts_lose; on side $win: $counts_lose_w, all known ${regossip_ms} ms after the heal"
check_entries p1 "${nodes[*]}" 'mined|pending' >/dev/null

# Drain: with every miner on, every entry of the test must end up mined on
# every node.
mining true "${nodes[@]}"
t_drain=$(now_ms)
deadline=$(( t_drain + drain_timeout_s * 1000 ))
while :; do
  left=0
  par entries_of "${nodes[@]}"
  for k in "${!e_id[@]}"; do
    for i in "${nodes[@]}"; do
      read -r s _ < <(entry_status "$i" "${e_id[$k]}")
      [ "$s" = mined ] || { left=$(( left + 1 )); break; }
    done
  done
  [ $left = 0 ] && break
  [ "$(now_ms)" -lt "$deadline" ] || fail "$left entries still not mined on every node ${drain_timeout_s}s after mining resumed"
  sleep 0.5
done
drain_ms=$(( $(now_ms) - t_drain ))
log "2: all ${#e_id[@]} entries mined on every node ${drain_ms} ms after mining resumed"

# ===== 3. SIGKILL and restart =================================================
sleep 3
h_kill=$(field "$victim" height) w_kill=$(field "$victim" total_work)
kill -9 "${pids[$victim]}"
wait "${pids[$victim]}" 2>/dev/null || true
pids[$victim]=
api "$victim" /status >/dev/null 2>&1 && fail "node $victim still answers after SIGKILL"
log "3: node $victim killed (SIGKILL) at height $h_kill; the others mine on for ${kill_pause_s}s"
sleep "$kill_pause_s"
verify=$(ns "$victim" "$JBC" --datadir "$work/n$victim" --json verify 2>&1) ||
  fail "node $victim's store does not verify after SIGKILL: $verify"
h_disk=$(jq -r .height <<<"$verify") w_disk=$(jq -r .total_work <<<"$verify")
# What the node served before the kill was committed: it must all be there.
bigger "$w_kill" "$w_disk" && fail "node $victim served height $h_kill (work $w_kill) before SIGKILL but its store holds only height $h_disk (work $w_disk)"
log "3: node $victim's store verifies: height $h_disk ($(jq -r .blocks <<<"$verify") blocks)"
target=0
for i in "${nodes[@]}"; do
  [ "$i" = "$victim" ] && continue
  h=$(field "$i" height); [ "$h" -gt "$target" ] && target=$h
done
t_restart=$(now_ms)
echo "--- restart after SIGKILL" >>"$work/n$victim.log"
start_node "$victim"
deadline=$(( t_restart + catchup_timeout_s * 1000 ))
until h=$(field "$victim" height); [ -n "$h" ] && [ "$h" -ge "$target" ]; do
  [ "$(now_ms)" -lt "$deadline" ] || fail "node $victim restarted at height $h_disk did not reach $target within ${catchup_timeout_s}s"
  sleep 0.05
done
catchup_ms=$(( $(now_ms) - t_restart ))
h_open=$(sed -n '/^--- restart after SIGKILL/,$p' "$work/n$victim.log" | grep -m1 'msg="opened chain"' | grep -o 'height=[0-9]*' | cut -d= -f2 || true)
[ "$h_open" = "$h_disk" ] || fail "node $victim restarted with its store at height '$h_open', verify said $h_disk"
log "3: node $victim restarted; opened its store at height $h_open, reached the others' height $target after ${catchup_ms} ms"
mining false "${nodes[@]}"
t_stop3=$(now_ms)
converge 15 "$t_stop3" 1 "${nodes[@]}" ||
  { for i in "${nodes[@]}"; do log "node $i: $(api "$i" /status | jq -c '{height, tip: .tip[0:12], total_work, peers}')"; done
    fail "nodes did not agree on a tip after the restart"; }
final_ms=$agreed_ms tip3=$agreed_tip
h3=$(field 1 height)
final_log_ms=$(last_adoption "$agreed_start" "$tip3" "${nodes[@]}")
log "3: all five at height $h3 tip ${tip3:0:12}: seen by polling ${final_ms} ms after mining stopped, by the logs ${final_log_ms} ms"
counts=$(check_entries 'p1|p2a|p2b' "${nodes[*]}" mined)
log "3: all ${#e_id[@]} entries still mined on every node, in the same blocks: $counts"
# Each entry once: count the entries' texts in the final chain's blocks.
api 1 /blockchain.json | jq -r '.[].data | (fromjson? // null) | if type == "array" then .[] else empty end' >"$work/final_entries.txt"
dups=0
for k in "${!e_text[@]}"; do
  n=$(grep -cxF "${e_text[$k]}" "$work/final_entries.txt" || true)
  [ "$n" != 0 ] || fail "entry ${e_id[$k]:0:12} ('${e_text[$k]}') is in no block of the final chain"
  if [ "$n" != 1 ]; then
    dups=$(( dups + 1 ))
    log "WARNING: entry ${e_id[$k]:0:12} ('${e_text[$k]}', ${e_group[$k]}) is $n times on the final chain"
  fi
done
[ $dups = 0 ] || [ -z "${STRICT:-}" ] || fail "STRICT: $dups entries are more than once on the final chain"

# ===== summary ================================================================
panics=$(cat "$work"/n*.log | grep -c -e '^panic:' -e 'fatal error:' || true)
[ "$panics" = 0 ] || fail "$panics panics in the node logs"
warns=$(cat "$work"/n*.log | grep -c 'level=WARN' || true)
errors=$(cat "$work"/n*.log | grep -c 'level=ERROR' || true)
# Every node here is honest: a penalty or a ban is the node misjudging a
# peer. Reported; fatal with STRICT=1.
penalties=$(cat "$work"/n*.log | grep 'msg="peer misbehaved"' | grep -o 'what=[a-z-]*' | sort | uniq -c | awk '{printf "%s%s=%s", (NR>1?" ":""), substr($2, 6), $1}' || true)
bans=$(cat "$work"/n*.log | grep -c 'msg="banning peer"' || true)
if [ -n "$penalties" ] || [ "$bans" != 0 ]; then
  log "WARNING: honest peers penalised ($penalties) and banned ($bans times); see 'peer misbehaved' and 'banning peer' in the logs"
  [ -z "${STRICT:-}" ] || fail "STRICT: honest peers penalised or banned"
fi

printf '\n%-58s %10s\n' "e2e/live.sh: $bits-bit network, 5 nodes x 1 thread" "value"
printf '%-58s %10s\n' "mDNS full mesh after start (ms)" "$mesh_ms"
printf '%-58s %10s\n' "1: blocks mined / on final chain / stale" "$n_mined/$h1/$n_stale"
printf '%-58s %10s\n' "1: propagation to all nodes, final-chain blocks (n)" "$n_timed"
printf '%-58s %10s\n' "1: propagation p50 (ms)" "$p50"
printf '%-58s %10s\n' "1: propagation p95 (ms)" "$p95"
printf '%-58s %10s\n' "1: propagation max (ms)" "$pmax"
printf '%-58s %10s\n' "1: convergence after mining stopped, logs / poll (ms)" "$conv_log_ms/$conv_ms"
printf '%-58s %10s\n' "2: heights when healed: side a (3 nodes) / side b (2)" "$h_a/$h_b"
printf '%-58s %10s\n' "2: split to every connection across it gone (ms)" "$drop_ms"
printf '%-58s %10s\n' "2: heal to all on side $win's tip, logs / poll (ms)" "$heal_log_ms/$heal_ms"
printf '%-58s %10s\n' "2: peers dialled after the heal, by discovery" "$heal_found"
printf '%-58s %10s\n' "2: heal to side $lose's entries known on side $win (ms)" "$regossip_ms"
printf '%-58s %10s\n' "2: all entries mined everywhere after mining resumed (ms)" "$drain_ms"
printf '%-58s %10s\n' "3: restart after SIGKILL to the others' height (ms)" "$catchup_ms"
printf '%-58s %10s\n' "3: convergence after mining stopped, logs / poll (ms)" "$final_log_ms/$final_ms"
printf '%-58s %10s\n' "ties at equal work broken by one block more" "$ties"
printf '%-58s %10s\n' "node log lines at WARN / ERROR" "$warns/$errors"
printf '%-58s %10s\n' "penalties of honest peers (by kind) / bans" "${penalties:-none}/$bans"
printf '%-58s %10s\n' "entries more than once on the final chain" "$dups"
echo "e2e/live.sh: PASS"
