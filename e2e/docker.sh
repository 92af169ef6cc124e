#!/usr/bin/env bash
# e2e/docker.sh: the Dockerfile and the compose files, tested for real on the
# local Docker Engine, with no registry and no module proxy:
#
#   1. makes its base images locally (docker import: a Go builder from this
#      machine's Go and a minimal runtime base) and builds the image with
#      modules vendored into a temporary copy of the repo, offline
#      (docker build --network none);
#   2. runs one container alone with its HTTP API published on 127.0.0.1
#      and checks the API answers there, the healthcheck passes and the node
#      runs as a non-root user;
#   3. docker-compose.yml: three nodes on a bridge network find each other
#      by mDNS and reach the same best chain (node1 mines);
#   4. kills node2, reads its chain from its volume while it is down,
#      starts it again: same peer ID, catches up;
#   5. disconnects node3 from the network while node1 mines on, checks it
#      stood still, reconnects it: it converges, and restarts mDNS on its
#      new interface, so that a node started then (node4) finds it by mDNS;
#   6. docker-compose.dht.yml: mDNS off, two nodes given only the bootstrap
#      node's multiaddr reach its chain and find each other through the DHT.
#
# It prints timings, exits 0 on pass and non-zero on failure, and removes
# everything it made (containers, networks, volumes, images, temp dirs) on
# any exit. With no Docker Engine answering it prints a SKIP line and exits
# 0. The only published port is on 127.0.0.1; no node is given an address
# outside the networks made here. The DHT network is internal (no route out
# of the machine); the mDNS one cannot be, because Docker's isolation rules
# for internal networks drop multicast.
#
# Knobs (environment):
#   JBC_E2E_GOCACHE   Go build cache seeded into the local builder image, so
#                     that the image build compiles only what changed; kept
#                     between runs (default ~/.cache/jbc-e2e-docker/gocache,
#                     about 360 MB; "off" or "" builds from cold: about 75 s
#                     more on 2 idle CPUs, minutes more on busy ones).
#   JBC_E2E_VENDOR=0  build with "go mod download" in the builder instead of
#                     vendor/ (needs the module proxy, reached from a
#                     network made for the build).
#   SYNC_TIMEOUT      seconds allowed for each convergence (default 90).
#   PARTITION_SECONDS how long node3 stays disconnected (default 35: longer
#                     than libp2p's idle timeouts, so that its connections
#                     die and the nodes must find each other again).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
timeout_s=${SYNC_TIMEOUT:-90}
partition_s=${PARTITION_SECONDS:-35}
vendor=${JBC_E2E_VENDOR:-1}
gocache=${JBC_E2E_GOCACHE-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/jbc-e2e-docker/gocache}
# min_height is the height node1 must have mined before "same best chain"
# is checked, so that the check is about a chain, not a shared genesis.
min_height=5

log() { printf '[docker.sh] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
now_ms() { date +%s%3N; }

# --- is there a Docker Engine and a compose? ------------------------------
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "SKIP: e2e/docker.sh: no Docker Engine answers (docker info failed)"
  exit 0
fi
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
else
  echo "SKIP: e2e/docker.sh: neither 'docker compose' nor 'docker-compose' is installed"
  exit 0
fi
for tool in go jq curl tar; do
  command -v "$tool" >/dev/null 2>&1 || fail "needs $tool"
done

# Everything this run makes is named after run_id, so that cleanup removes
# exactly that and two runs do not collide.
run_id=jbce2e$$
work=$(mktemp -d /tmp/jbc-docker.XXXXXX)
# label marks every image this run makes, for cleanup.
label=jbc.e2e.run=$run_id
img=$run_id:local
img_build=$run_id-build:local
img_go=$run_id-go:local
img_base=$run_id-base:local
proj_lan=${run_id}lan
proj_dht=${run_id}dht
pub=$run_id-pub
node4=$run_id-node4
ctx=$work/ctx
compose_lan=("${compose_cmd[@]}" -p "$proj_lan" -f "$ctx/docker-compose.yml")
compose_dht=("${compose_cmd[@]}" -p "$proj_dht" -f "$ctx/docker-compose.dht.yml" -f "$work/dht.override.yml")
export JBC_IMAGE=$img JBC_BOOT_ID=
# The DHT network is made internal: its containers talk to each other and to
# nothing else. (The mDNS one stays a plain bridge: see the top.)
mkdir -p "$ctx"
printf 'networks:\n  wan:\n    internal: true\n' >"$work/dht.override.yml"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ $rc -ne 0 ]; then
    "${compose_lan[@]}" logs --no-color --tail 25 >&2 2>/dev/null
    "${compose_dht[@]}" logs --no-color --tail 25 >&2 2>/dev/null
    docker logs --tail 25 "$pub" >&2 2>/dev/null
    [ -f "$work/build.log" ] && tail -n 30 "$work/build.log" >&2
  fi
  log "cleaning up"
  # node4 first: it is attached to the compose network, which down removes.
  docker rm -fv "$pub" "$node4" >/dev/null 2>&1
  "${compose_lan[@]}" down -v --remove-orphans -t 2 >/dev/null 2>&1
  "${compose_dht[@]}" down -v --remove-orphans -t 2 >/dev/null 2>&1
  docker network rm "$pub" "$run_id-build" >/dev/null 2>&1
  # Volumes a failed compose run may have left (down removes the rest).
  for p in "$proj_lan" "$proj_dht"; do
    docker volume ls -q --filter "label=com.docker.compose.project=$p" | xargs -r docker volume rm >/dev/null 2>&1
  done
  # Every image of this run, intermediate build layers included (an
  # interrupted build leaves some), inherits the label of our base images.
  # Newest first, so that children go before their parents; a second pass
  # catches any left.
  for _ in 1 2 3; do
    ids=$(docker images -aq --filter "label=$label")
    [ -n "$ids" ] || break
    # shellcheck disable=SC2086 # a list of image IDs
    docker rmi -f $ids >/dev/null 2>&1
  done
  rm -rf "$work"
  [ $rc -eq 0 ] || log "FAILED (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# timings: lines "what<TAB>ms", printed at the end.
timings=()
timed() { timings+=("$1"$'\t'"$2"); log "$1: $2 ms"; }

# --- 1. the build context: the repo's working tree, vendored --------------
t0=$(now_ms)
tar -C "$repo" --exclude=./.git --exclude=./vendor -cf - . | tar -C "$ctx" -xf -
build_args=(--build-arg VERSION=e2e)
net_args=()
goflags=
if [ "$vendor" = 1 ]; then
  goflags=-mod=vendor
  # The module cache of this machine fills vendor/; nothing is fetched if
  # it holds every module (it does wherever the repo builds).
  (cd "$ctx" && GOFLAGS=-mod=mod go mod vendor) || fail "go mod vendor"
  build_args+=(--build-arg GOFLAGS=-mod=vendor)
  net_args=(--network none)
else
  # "go mod download" reaches the module proxy from a network of our own.
  docker network create "$run_id-build" >/dev/null
  net_args=(--network "$run_id-build")
fi
timed "context copied$([ "$vendor" = 1 ] && echo ", modules vendored")" $(( $(now_ms) - t0 ))

# --- base images, made here ------------------------------------------------
# The builder: this machine's Go toolchain at the same path, a static or
# self-contained /bin/sh, /tmp, CA certificates (for JBC_E2E_VENDOR=0), and
# optionally a warm build cache. Nothing else: the Dockerfile needs only sh
# and go.
t0=$(now_ms)
goroot=$(go env GOROOT)
broot=$work/builder-root
mkdir -p "$broot/bin" "$broot/tmp" "$broot/etc/ssl/certs"
chmod 1777 "$broot/tmp"
# A static busybox if there is one, else this machine's /bin/sh with the
# libraries it links.
sh_bin=$(command -v busybox || true)
if [ -z "$sh_bin" ] || ldd "$sh_bin" >/dev/null 2>&1; then
  sh_bin=$(readlink -f /bin/sh) # dynamic: its libraries go along below
fi
cp "$sh_bin" "$broot/bin/sh"
for lib in $(ldd "$sh_bin" 2>/dev/null | grep -o '/[^ ]*' || true); do
  cp --parents -L "$lib" "$broot"
done
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$broot/etc/ssl/certs/"
cache_args=()
if [ "$gocache" != off ] && [ -n "$gocache" ]; then
  # Warm the cache with exactly the Dockerfile's compile flags: with
  # -trimpath, cache entries do not depend on the source directory, so the
  # builder finds them. It is kept between runs, like Go's own cache, and
  # holds only what the last build used: Go marks an entry used by setting
  # its mtime when the mtime is over an hour old, so every entry is aged two
  # hours first and those still old after the build are deleted. (This keeps
  # the image small: each build step costs time per file in it.)
  mkdir -p "$gocache"
  tc=$(now_ms)
  find "$gocache" -type f -exec touch -d '2 hours ago' {} +
  touch "$work/cache.stamp"
  (cd "$ctx" && GOCACHE=$gocache CGO_ENABLED=0 GOFLAGS=$goflags \
     go build -trimpath -buildvcs=false -o /dev/null ./cmd/jbc) || fail "warming the build cache"
  find "$gocache" -type f ! -newer "$work/cache.stamp" -delete
  timed "host build cache warmed ($gocache)" $(( $(now_ms) - tc ))
  # Only the cache's members start with "./": they are renamed to /gocache.
  cache_args=(--transform 's,^\./,gocache/,' -C "$gocache" .)
fi
# Of GOROOT, what building needs: no tests, test data, docs or the sources
# of the go command and compiler (they come built, in pkg/tool).
goroot_excl=(--exclude='*_test.go' --exclude=testdata)
for d in test api doc misc src/cmd; do goroot_excl+=(--exclude="${goroot#/}/$d"); done
# shellcheck disable=SC2046 # the names in $broot are ours: no spaces
tar -cf - --owner=0 --group=0 --numeric-owner "${goroot_excl[@]}" -C "$broot" $(ls -A "$broot") \
  -C / "${goroot#/}" "${cache_args[@]}" |
  docker import \
    -c "ENV PATH=/go/bin:$goroot/bin:/bin" -c "ENV GOPATH=/go" -c "ENV GOTOOLCHAIN=local" \
    -c "ENV GOCACHE=/gocache" -c "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" -c "LABEL $label" \
    - "$img_go" >/dev/null || fail "docker import of the builder base"
# The runtime base, like distroless static: /etc/passwd and /etc/group with
# nonroot (65532), /tmp, and no shell.
rroot=$work/runtime-root
mkdir -p "$rroot/etc" "$rroot/tmp"
chmod 1777 "$rroot/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rroot/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rroot/etc/group"
tar -cf - --owner=0 --group=0 --numeric-owner -C "$rroot" etc tmp |
  docker import -c "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" -c "USER 65532:65532" -c "LABEL $label" \
    - "$img_base" >/dev/null || fail "docker import of the runtime base"
timed "base images imported" $(( $(now_ms) - t0 ))

# --- the image -------------------------------------------------------------
t0=$(now_ms)
build=(docker build "${net_args[@]}" -f "$ctx/Dockerfile"
  --build-arg GO_IMAGE="$img_go" --build-arg RUNTIME_IMAGE="$img_base" "${build_args[@]}")
log "building the image (log: $work/build.log)"
# The build stage is built (and timed) on its own first; the full build
# then finds it in the cache.
"${build[@]}" --target build -t "$img_build" "$ctx" >"$work/build.log" 2>&1 || fail "docker build (build stage)"
timed "image build stage (go build) done" $(( $(now_ms) - t0 ))
"${build[@]}" -t "$img" "$ctx" >>"$work/build.log" 2>&1 || fail "docker build"
timed "image built" $(( $(now_ms) - t0 ))
[ "$(docker inspect -f '{{.Config.User}}' "$img")" = 65532:65532 ] || fail "image does not run as 65532"
docker run --rm --network none --entrypoint /usr/local/bin/jbc "$img" version | grep -q 'jbc e2e' ||
  fail "jbc version in the image is not the VERSION build arg"

# --- helpers ---------------------------------------------------------------
# status C: the node's /status JSON, asked inside container C (so no port is
# needed); fails if the node does not answer.
status() { docker exec "$1" /usr/local/bin/jbc status --json 2>/dev/null; }
height() { status "$1" | jq -r '.height' 2>/dev/null || echo -1; }

# same_chain MIN C...: true if every node answers, has height >= MIN, and
# all report the same tip. The nodes are asked at once: node1 mines a block
# every second or so, so asking one after another would often straddle one.
same_chain() {
  local min=$1 i=0 c pids=() first= h t
  shift
  for c in "$@"; do
    status "$c" >"$work/st.$i" &
    pids+=($!)
    i=$((i + 1))
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || return 1; done
  for i in "${!pids[@]}"; do
    read -r h t < <(jq -r '"\(.height) \(.tip)"' "$work/st.$i") || return 1
    [ "$h" -ge "$min" ] || return 1
    if [ -z "$first" ]; then first=$t; elif [ "$t" != "$first" ]; then return 1; fi
  done
  last_same_height=$h
}

# wait_for SECONDS WHAT CMD...: retries CMD until it succeeds; fails the test
# after SECONDS.
wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$(( $(now_ms) + secs * 1000 ))
  until "$@"; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for: $what"
    sleep 0.2
  done
}
height_ge() { [ "$(height "$1")" -ge "$2" ]; }
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$1")" = healthy ]; }
running() { [ "$(docker inspect -f '{{.State.Running}}' "$1")" = true ]; }

# --- 2. one container, API published on 127.0.0.1 --------------------------
# Its own (non-internal) bridge network, since publishing needs one; mDNS
# and the DHT are off, so the node dials nothing.
docker network create "$pub" >/dev/null
docker run -d --name "$pub" --network "$pub" -p 127.0.0.1::8080 "$img" --no-mdns --no-dht >/dev/null
pub_addr=$(docker port "$pub" 8080/tcp | grep '^127\.0\.0\.1:' | head -n1)
[ -n "$pub_addr" ] || fail "HTTP port not published on 127.0.0.1"
wait_for 20 "the HTTP API on $pub_addr" curl -fs -o /dev/null "http://$pub_addr/status"
curl -fsS "http://$pub_addr/status" | jq -e '.height == 0 and (.peer_id | startswith("12D3KooW"))' >/dev/null ||
  fail "unexpected /status from the published port"
uid=$(docker top "$pub" -eo pid,uid,comm | awk '$3 == "jbc" {print $2}')
[ "$uid" = 65532 ] || fail "jbc runs as uid '$uid', want 65532"
log "single container: API answers on $pub_addr (published on 127.0.0.1 only), jbc runs as uid $uid"

# --- 3. three nodes by mDNS --------------------------------------------------
t0=$(now_ms)
"${compose_lan[@]}" up -d --no-build >"$work/compose.log" 2>&1 || { cat "$work/compose.log" >&2; fail "compose up"; }
c1=$("${compose_lan[@]}" ps -q node1)
c2=$("${compose_lan[@]}" ps -q node2)
c3=$("${compose_lan[@]}" ps -q node3)
net=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "$c3")
wait_for "$timeout_s" "the three nodes on the same chain of height >= $min_height" same_chain "$min_height" "$c1" "$c2" "$c3"
timed "compose up to same best chain (mDNS, height $last_same_height)" $(( $(now_ms) - t0 ))
for c in "$c1" "$c2" "$c3"; do
  [ "$(status "$c" | jq -r .peers)" -ge 2 ] || fail "$c is not connected to both other nodes"
done
wait_for 60 "healthchecks pass" eval 'healthy "$c1" && healthy "$c2" && healthy "$c3" && healthy "$pub"'
log "all healthchecks pass"

# --- 4. kill node2, start it again --------------------------------------------
id2=$(status "$c2" | jq -r .peer_id)
h2=$(height "$c2")
docker kill "$c2" >/dev/null
wait_for 20 "node2 to stop" eval '! running "$c2"'
vol2=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}' "$c2")
disk=$(docker run --rm --network none -v "$vol2:/data" --entrypoint /usr/local/bin/jbc "$img" chain --json | jq -r .height)
[ "$disk" -ge "$h2" ] || fail "node2's volume holds height $disk, below the $h2 it had before the kill"
wait_for "$timeout_s" "node1 to mine past node2's height $disk" height_ge "$c1" $((disk + 3))
t0=$(now_ms)
docker start "$c2" >/dev/null
wait_for 30 "node2 to answer again" eval 'status "$c2" >/dev/null'
back=$(height "$c2")
[ "$back" -ge "$disk" ] || fail "node2 came back at height $back, below the $disk in its volume"
target=$(height "$c1")
wait_for "$timeout_s" "node2 to catch up" same_chain "$target" "$c1" "$c2" "$c3"
timed "node2 restarted to caught up (from $disk, to $last_same_height)" $(( $(now_ms) - t0 ))
[ "$(status "$c2" | jq -r .peer_id)" = "$id2" ] || fail "node2 came back with another peer ID"

# --- 5. partition node3 --------------------------------------------------------
docker network disconnect "$net" "$c3"
t0=$(now_ms)
sleep 1 # blocks already on their way in land before the reading below
h3=$(height "$c3")
wait_for "$timeout_s" "node1 to mine 5 blocks past node3's $h3" height_ge "$c1" $((h3 + 5))
left=$(( partition_s * 1000 - ($(now_ms) - t0) ))
[ "$left" -le 0 ] || sleep "$((left / 1000)).$(printf '%03d' $((left % 1000)))"
[ "$(height "$c3")" = "$h3" ] || fail "node3 moved from $h3 while disconnected: the partition leaked"
log "node3 cut off for $(( $(now_ms) - t0 )) ms; node1 at height $(height "$c1")"
t0=$(now_ms)
docker network connect --alias node3 "$net" "$c3"
target=$(height "$c1")
wait_for "$timeout_s" "node3 to converge after reconnecting" same_chain "$target" "$c1" "$c2" "$c3"
timed "node3 reconnected to converged (from $h3, to $last_same_height)" $(( $(now_ms) - t0 ))
# Reconnected, node3 has a new interface (eth1): it must restart mDNS there.
# node4, started now with the DHT off and known to nobody, can then meet it
# only by mDNS: node4 hears node3's answer (source mdns), or node3 hears
# node4's announcement and dials it (source inbound), whichever comes first.
# Without mDNS on node3's new interface neither happens.
wait_for 20 "node3 to restart mDNS on its new interface" eval 'docker logs "$c3" 2>&1 | grep -q "mdns restarted"'
id3=$(status "$c3" | jq -r .peer_id)
t0=$(now_ms)
docker run -d --name "$node4" --network "$net" -p 127.0.0.1::8080 "$img" --no-dht >/dev/null
api4=$(docker port "$node4" 8080/tcp | head -n 1)
met_by_mdns() { curl -fs "http://$api4/peers" | jq -e --arg id "$1" '.[] | select(.id == $id and (.source == "mdns" or .source == "inbound"))' >/dev/null; }
wait_for 30 "node4 and the reconnected node3 to meet by mDNS" met_by_mdns "$id3"
timed "node4 started to meeting reconnected node3 by mDNS" $(( $(now_ms) - t0 ))
docker rm -fv "$node4" >/dev/null
"${compose_lan[@]}" down -v -t 2 >/dev/null 2>&1 || fail "compose down"

# --- 6. three nodes through the DHT -----------------------------------------------
t0=$(now_ms)
out=$("${compose_dht[@]}" run --rm -T --entrypoint /usr/local/bin/jbc boot id 2>"$work/compose-dht.log") ||
  fail "jbc id in boot's volume"
JBC_BOOT_ID=${out%%$'\n'*}
[[ $JBC_BOOT_ID == 12D3KooW* ]] || fail "jbc id printed '$JBC_BOOT_ID', not a peer ID"
"${compose_dht[@]}" up -d --no-build >>"$work/compose-dht.log" 2>&1 || { cat "$work/compose-dht.log" >&2; fail "compose up (dht)"; }
b=$("${compose_dht[@]}" ps -q boot)
p1=$("${compose_dht[@]}" ps -q peer1)
p2=$("${compose_dht[@]}" ps -q peer2)
[ "$(status "$b" | jq -r .peer_id)" = "$JBC_BOOT_ID" ] || fail "boot's peer ID is not the one jbc id printed"
wait_for "$timeout_s" "boot, peer1 and peer2 on the same chain" same_chain "$min_height" "$b" "$p1" "$p2"
timed "dht compose up to same best chain (height $last_same_height)" $(( $(now_ms) - t0 ))
# Each peer was given boot only: a second connection is the other peer,
# found through the DHT (mDNS is off).
wait_for 60 "peer1 and peer2 to find each other through the DHT" \
  eval '[ "$(status "$p1" | jq -r .peers)" -ge 2 ] && [ "$(status "$p2" | jq -r .peers)" -ge 2 ]'
timed "dht compose up to peers found each other" $(( $(now_ms) - t0 ))

printf '\n%-62s %8s\n' "e2e/docker.sh timings" "ms"
for t in "${timings[@]}"; do printf '%-62s %8s\n' "${t%%$'\t'*}" "${t#*$'\t'}"; done
echo "e2e/docker.sh: PASS"
