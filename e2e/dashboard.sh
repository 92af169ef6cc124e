#!/usr/bin/env bash
# e2e/dashboard.sh: the dashboard at / of the HTTP API, in headless
# Chromium (Debian's chromium package), against two real nodes on loopback:
#
#   1. node A mines 2 blocks of the built-in network offline, then runs;
#      node B starts empty with A's multiaddr as --peer and syncs from it;
#      both listen on 127.0.0.1 only, with mDNS and the DHT off;
#   2. an entry holding HTML markup is submitted to A;
#   3. Chromium loads A's dashboard: the DOM must show B as a peer (found
#      "inbound"), A's tip, and the entry as text, never as markup;
#   4. B mines until new blocks (NEW_BLOCKS, default 3) reach A: a page
#      left open must show the new tip by itself, without a reload
#      (Chromium driven over the DevTools protocol; needs python3, skipped
#      with a note without it), and a freshly loaded page's DOM must show
#      it at the top of the recent blocks;
#   5. a screenshot is saved to docs/dashboard.png (SHOT=path to change).
#
# Prints PASS, SKIP (Chromium missing and not installable) or FAIL, and
# exits non-zero only on FAIL. Needs go, curl and jq. Usage:
#   e2e/dashboard.sh            # builds ./cmd/jbc
#   JBC=/path/to/jbc e2e/dashboard.sh
#   KEEP=1 e2e/dashboard.sh     # keep the logs and DOM dumps
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=$(mktemp -d /tmp/jbc-dashboard.XXXXXX)
shot=${SHOT:-$repo/docs/dashboard.png}
timeout_s=${TIMEOUT:-60}      # for the nodes to connect and sync
mine_timeout_s=${MINE_TIMEOUT:-180} # for B to mine the blocks A takes
new_blocks=${NEW_BLOCKS:-3}   # blocks B mines: one is the test, more fill the screenshot

log() { printf '[dashboard.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; echo "FAIL: dashboard: $*"; exit 1; }
skip() { log "SKIP: $*"; echo "SKIP: dashboard: $*"; exit 0; }

pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ] || [ -n "${KEEP:-}" ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { log "--- $f"; tail -n 25 "$f" >&2; }; done
    log "kept $work"
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in go curl jq; do
  command -v "$tool" >/dev/null || fail "$tool not found"
done

# Chromium: Debian's package, installed if missing.
chromium=$(command -v chromium || true)
if [ -z "$chromium" ]; then
  log "chromium not found; installing Debian's chromium package"
  if [ "$(id -u)" != 0 ]; then
    skip "chromium is not installed and installing it needs root (apt-get install chromium)"
  fi
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } >"$work/apt.log" 2>&1; then
    tail -n 5 "$work/apt.log" >&2
    skip "could not install chromium (apt-get install -y chromium failed; see above)"
  fi
  chromium=$(command -v chromium || true)
  [ -n "$chromium" ] || skip "chromium still not found after installing"
fi

# Headless Chromium with its own background networking off: the only
# requests it makes are the page's, to the node on 127.0.0.1.
chrome_flags=(--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage
  --no-first-run --disable-background-networking --disable-component-update
  --disable-sync --disable-default-apps)

# browse URL [ARGS...]: loads URL once; the virtual time budget lets the
# page's first polls run before Chromium dumps or shoots it.
browse() {
  local url=$1; shift
  timeout 90 "$chromium" "${chrome_flags[@]}" --user-data-dir="$work/chromium-profile" \
    --virtual-time-budget=5000 "$@" "$url" 2>>"$work/chromium.log"
}

# free_port prints a TCP port free on 127.0.0.1 now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $(( 20000 + RANDOM % 20000 ))
}

if [ -z "${JBC:-}" ]; then
  log "building jbc"
  (cd "$repo" && go build -o "$work/jbc" ./cmd/jbc) || fail "go build ./cmd/jbc"
  JBC=$work/jbc
fi

# status PORT: the node's GET /status, or nothing.
status() { curl -fsS --max-time 2 "http://127.0.0.1:$1/status" 2>/dev/null || true; }
field() { status "$1" | jq -r "$2 // empty" 2>/dev/null || true; }

# wait_for SECONDS WHAT CMD...: polls CMD until it succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

# start_node NAME PORT HTTP ARGS...: runs a node on loopback; its stdout
# (peer ID, then multiaddrs) goes to NAME.out, its log to NAME.log.
start_node() {
  local name=$1 port=$2 http=$3; shift 3
  "$JBC" --datadir "$work/$name" node --no-mdns --no-dht \
    --listen "/ip4/127.0.0.1/tcp/$port" --http "127.0.0.1:$http" "$@" \
    >"$work/$name.out" 2>"$work/$name.log" &
  pids+=($!)
  wait_for 30 "node $name to print its multiaddr" has_line2 "$work/$name.out"
  wait_for 30 "node $name's HTTP API" answers "$http"
}
has_line2() { [ -n "$(sed -n 2p "$1" 2>/dev/null)" ]; }
answers() { [ -n "$(status "$1")" ]; }

# write_live_check FILE writes the live check: a DevTools protocol client
# (Python standard library only, a minimal WebSocket) that opens the
# dashboard in the running headless Chromium, waits for the first render,
# turns B's miner on, and waits for the same page (no reload) to show a
# newer tip of A's best chain, in the tip card and at the top of the recent
# blocks. Usage: live_check.py CDP_PORT DASH_URL A_HTTP B_HTTP TIMEOUT_S.
write_live_check() {
  cat >"$1" <<'EOF'
import base64, json, os, socket, struct, sys, time, urllib.request

cdp_port, url, a_http, b_http, timeout_s = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])

def log(msg):
    print("[live_check] " + msg, file=sys.stderr, flush=True)

def http(u, method="GET"):
    req = urllib.request.Request(u, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)

class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: text frames."""

    def __init__(self, ws_url):
        hostport, path = ws_url[len("ws://"):].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("websocket handshake: connection closed")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0] + b" ":
            raise RuntimeError("websocket handshake: " + head.decode(errors="replace"))
        self.next_id = 0

    def send(self, obj):
        data = json.dumps(obj).encode()
        head = bytearray([0x81])
        if len(data) < 126:
            head.append(0x80 | len(data))
        elif len(data) < 1 << 16:
            head.append(0x80 | 126); head += struct.pack(">H", len(data))
        else:
            head.append(0x80 | 127); head += struct.pack(">Q", len(data))
        mask = os.urandom(4)
        self.sock.sendall(bytes(head) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        msg = b""
        while True:
            b0, b1 = self.read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.read(8))[0]
            mask = self.read(4) if b1 & 0x80 else None
            payload = self.read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            op = b0 & 0x0F
            if op == 8:
                raise RuntimeError("websocket closed by chromium")
            if op in (9, 10):
                continue
            msg += payload
            if b0 & 0x80:
                return json.loads(msg)

    def call(self, method, **params):
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            m = self.recv()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

def wait(what, cond, secs):
    deadline = time.time() + secs
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise SystemExit(f"[live_check] FAIL: timed out after {secs:.0f}s waiting for {what}")
        time.sleep(0.2)

def page_ws():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{cdp_port}/json/list", timeout=2) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        return pages[0]["webSocketDebuggerUrl"] if pages else None
    except OSError:
        return None

ws = WebSocket(wait("chromium's DevTools endpoint", page_ws, 30))
ws.call("Page.navigate", url=url)
PAGE = "(() => { const d = document.getElementById('dash'); const top = document.querySelector('#blocks tr');" \
       " const card = document.querySelector('#tip-hash .hash');" \
       " return d && { ready: d.dataset.ready, tip: d.dataset.tip, height: d.dataset.height," \
       " top: top && top.dataset.hash, card: card && card.dataset.hash, mark: window.__liveCheck === 1 }; })()"
first = wait("the page's first render", lambda: (lambda p: p if p and p["ready"] == "1" else None)(ws.eval(PAGE)), 20)
tip0 = first["tip"]
if tip0 != http(a_http + "/status")["tip"]:
    raise SystemExit(f"[live_check] FAIL: the page shows tip {tip0}, not A's")
ws.eval("window.__liveCheck = 1")
log(f"page open at #{first['height']} {tip0[:12]}; turning B's miner on")
http(b_http + "/mining?on=true", "POST")

def moved():
    p = ws.eval(PAGE)
    return p if p and p["tip"] != tip0 else None
p = wait("the open page to show a new tip", moved, timeout_s)
if not p["mark"]:
    raise SystemExit("[live_check] FAIL: the page was reloaded")
block = http(a_http + "/blocks/" + p["tip"])
if block["index"] <= int(first["height"]) or block["hash"] != p["tip"]:
    raise SystemExit(f"[live_check] FAIL: the page's new tip {p['tip']} is not a newer block of A's: {block}")
def settled():
    q = ws.eval(PAGE)
    return q if q["top"] == q["tip"] and q["card"] == q["tip"] else None
wait("the tip card and the recent blocks to show the new tip", settled, 5)
log(f"the open page went by itself from #{first['height']} to #{block['index']} {p['tip'][:12]}")
EOF
}

# 1. Two nodes on the built-in network.
log "node A: mining 2 blocks offline"
"$JBC" --datadir "$work/A" mine --blocks 2 >"$work/mine.log" 2>&1 || fail "jbc mine --blocks 2"
pa=$(free_port); ha=$(free_port); pb=$(free_port); hb=$(free_port)
start_node A "$pa" "$ha"
id_a=$(sed -n 1p "$work/A.out"); addr_a=$(sed -n 2p "$work/A.out")
case "$addr_a" in /ip4/127.0.0.1/*/p2p/"$id_a") ;; *) fail "A's multiaddr $addr_a is not on loopback or lacks /p2p/$id_a" ;; esac
start_node B "$pb" "$hb" --peer "$addr_a"
id_b=$(sed -n 1p "$work/B.out")
tip_a=$(field "$ha" .tip); height_a=$(field "$ha" .height)
[ "$height_a" = 2 ] || fail "A's height is $height_a, want 2"
log "A $id_a at #$height_a ${tip_a:0:12}, HTTP $ha; B $id_b, HTTP $hb"

b_connected() { curl -fsS --max-time 2 "http://127.0.0.1:$ha/peers" | jq -e --arg id "$id_b" 'any(.[]; .id == $id and .connected)' >/dev/null 2>&1; }
wait_for "$timeout_s" "A to list B as a connected peer" b_connected
b_synced() { [ "$(field "$hb" .tip)" = "$tip_a" ]; }
wait_for "$timeout_s" "B to sync A's chain" b_synced

# 2. An entry that would be markup if the page parsed it.
entry='<b id="xss">pwned</b> & <img src=x onerror=alert(1)>'
code=$(curl -sS -o /dev/null -w '%{http_code}' --data-binary "$entry" -H 'Content-Type: text/plain' "http://127.0.0.1:$ha/data")
[ "$code" = 202 ] || fail "POST /data: HTTP $code"

# 3. The page shows the peers, the tip and the pending entry.
url="http://127.0.0.1:$ha/"
log "chromium: loading $url"
browse "$url" --dump-dom >"$work/dom1.html" || fail "chromium --dump-dom failed (see $work/chromium.log)"
grep -q 'data-ready="1"' "$work/dom1.html" || fail "the page never rendered the node's data (data-ready is not 1)"
grep -q "data-tip=\"$tip_a\"" "$work/dom1.html" || fail "the page does not show A's tip $tip_a"
grep -q "class=\"hash-slot\"><code class=\"hash\" title=\"$tip_a\" data-hash=\"$tip_a\"" "$work/dom1.html" ||
  fail "the tip card does not show A's tip hash"
grep -q "data-peer-id=\"$id_b\" data-source=\"inbound\" data-connected=\"1\"" "$work/dom1.html" ||
  fail "the peers table does not show B ($id_b) as a connected inbound peer"
grep -q "data-hash=\"$tip_a\" data-height=\"$height_a\"" "$work/dom1.html" || fail "the recent blocks do not start at A's tip"
grep -q '&lt;b id="xss"&gt;pwned&lt;/b&gt; &amp; &lt;img src=x onerror=alert(1)&gt;' "$work/dom1.html" ||
  fail "the pending entry is not shown as text"
if grep -q '<b id="xss">' "$work/dom1.html" || grep -q '<img src="x"' "$work/dom1.html"; then
  fail "the pending entry was rendered as markup"
fi
log "page shows B as a peer, A's tip and the pending entry as text"

# 4. A new block arrives: B mines it, A takes it, the page shows it. First
# live: a page already open must show the new tip by itself, without a
# reload (Chromium driven over the DevTools protocol by live_check, which
# also turns B's miner on); then, mining on, in a freshly loaded page.
want=$(( height_a + new_blocks ))
if command -v python3 >/dev/null; then
  cdp=$(free_port)
  "$chromium" "${chrome_flags[@]}" --user-data-dir="$work/chromium-live" \
    --remote-debugging-address=127.0.0.1 --remote-debugging-port="$cdp" \
    --window-size=1280,900 about:blank 2>>"$work/chromium.log" &
  live_pid=$!
  pids+=("$live_pid")
  write_live_check "$work/live_check.py"
  python3 "$work/live_check.py" "$cdp" "$url" "http://127.0.0.1:$ha" "http://127.0.0.1:$hb" "$mine_timeout_s" ||
    fail "the open page did not update by itself when a block arrived"
  kill "$live_pid" 2>/dev/null || true
  wait "$live_pid" 2>/dev/null || true
else
  log "no python3: skipping the live (no reload) check; the reload check below still runs"
  curl -fsS -X POST "http://127.0.0.1:$hb/mining?on=true" >/dev/null || fail "POST /mining?on=true on B"
fi
log "B mining until A reaches #$want"
a_grew() { local h; h=$(field "$ha" .height); [ -n "$h" ] && [ "$h" -ge "$want" ]; }
wait_for "$mine_timeout_s" "blocks mined by B to reach A" a_grew
curl -fsS -X POST "http://127.0.0.1:$hb/mining?on=false" >/dev/null || fail "POST /mining?on=false on B"
same_tip() { local t; t=$(field "$ha" .tip); [ -n "$t" ] && [ "$t" = "$(field "$hb" .tip)" ]; }
wait_for "$timeout_s" "A and B to agree on the tip after mining stopped" same_tip
tip_new=$(field "$ha" .tip); height_new=$(field "$ha" .height)
log "A now at #$height_new ${tip_new:0:12}"

browse "$url" --dump-dom >"$work/dom2.html" || fail "chromium --dump-dom failed (see $work/chromium.log)"
grep -q "data-tip=\"$tip_new\"" "$work/dom2.html" || fail "after a new block the page does not show the new tip $tip_new"
grep -q "data-hash=\"$tip_new\" data-height=\"$height_new\"" "$work/dom2.html" ||
  fail "the recent blocks do not start at the new tip"
grep -q "class=\"hash-slot\"><code class=\"hash\" title=\"$tip_new\" data-hash=\"$tip_new\"" "$work/dom2.html" || fail "the tip card does not show the new tip"
log "page shows the new tip #$height_new"

# 5. The screenshot kept in the repository, with some data pending.
for text in "hello from e2e/dashboard.sh" "pending entries wait here until a miner puts them in a block"; do
  curl -fsS --data-binary "$text" -H 'Content-Type: text/plain' "http://127.0.0.1:$ha/data" >/dev/null || fail "POST /data"
done
mkdir -p "$(dirname "$shot")"
rm -f "$work/shot.png"
browse "$url" --screenshot="$work/shot.png" --window-size=1280,900 --hide-scrollbars >/dev/null ||
  fail "chromium --screenshot failed"
[ "$(head -c 8 "$work/shot.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "the screenshot is not a PNG"
[ "$(wc -c <"$work/shot.png")" -gt 20000 ] || fail "the screenshot is suspiciously small"
cp "$work/shot.png" "$shot"
log "screenshot: $shot"

echo "PASS: dashboard: peers, tip, pending entry as text, and a new block shown live and on reload in headless Chromium; screenshot $shot"
