#!/usr/bin/env bash
# e2e/dashboard.sh: the dashboard at / of the HTTP API, in headless
# Chromium (Debian's chromium package), against real nodes. Everything,
# the nodes and Chromium, runs inside one host of a netlab lab
# (../shared/netlab, a network namespace with no route off this machine),
# on that namespace's loopback:
#
#   1. node A makes a private network retargeting toward 2 s blocks and
#      mines 40 blocks offline (the difficulty steps up at each retarget);
#      then it runs, and node B joins the network empty with A's multiaddr
#      as --peer and syncs from it; node C runs the built-in network with
#      A as --peer, and A bans it (another network); all listen on
#      127.0.0.1 only, with mDNS and the DHT off;
#   2. an entry holding HTML markup is submitted to A;
#   3. Chromium loads A's dashboard: the DOM must show B as a peer (found
#      "inbound"), C as banned with the reason, A's tip, the entry as text,
#      never as markup, and the plots of the recent chain with one point
#      per block GET /history gives;
#   4. with the API's JSON endpoints blocked, a page loaded afresh must
#      still show A's tip, peers and plots: the first state comes with the
#      page, rendered before the first paint (paint timing); and, with
#      GET /peers answered by the test, the last-sync column shows each
#      outcome in full, "up to date" (no more work than ours) neutrally
#      and refusals and failures apart;
#   5. B mines until new blocks (NEW_BLOCKS, default 3) reach A: a page
#      left open must show the new tip by itself, without a reload, and a
#      freshly loaded page's DOM must show it at the top of the recent
#      blocks; once B's miner is off, B's page shows no hash rate;
#   6. a screenshot is saved to docs/dashboard.png (SHOT=path to change).
#
# Chromium is driven over the DevTools protocol for 4 and 5 (needs
# python3). Prints PASS, SKIP (Chromium missing and not installable, or no
# network namespaces) or FAIL, and exits non-zero only on FAIL. Needs root
# (network namespaces), go, curl and jq. Usage:
#   e2e/dashboard.sh            # builds ./cmd/jbc
#   JBC=/path/to/jbc e2e/dashboard.sh
#   LAB=name e2e/dashboard.sh   # the netlab lab's name (default jbcdash)
#   KEEP=1 e2e/dashboard.sh     # keep the logs and DOM dumps
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
netlab=${NETLAB:-$repo/../shared/netlab}
lab=${LAB:-jbcdash}
shot=${SHOT:-$repo/docs/dashboard.png}
timeout_s=${TIMEOUT:-60}      # for the nodes to connect and sync
mine_timeout_s=${MINE_TIMEOUT:-180} # for B to mine the blocks A takes
new_blocks=${NEW_BLOCKS:-3}   # blocks B mines: one is the test, more fill the screenshot

log() { printf '[dashboard.sh %s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { log "FAIL: $*"; echo "FAIL: dashboard: $*"; exit 1; }
skip() { log "SKIP: $*"; echo "SKIP: dashboard: $*"; exit 0; }

# Outside the lab: check and install what is needed, build jbc, make the
# lab, and run this script again inside its host 1-1; take the lab down
# after, whatever happened.
if [ -z "${JBC_DASH_INSIDE:-}" ]; then
  for tool in go curl jq python3; do
    command -v "$tool" >/dev/null || fail "$tool not found"
  done
  [ "$(id -u)" = 0 ] || skip "needs root: Chromium runs only inside a network namespace"
  [ -f "$netlab" ] || skip "netlab not found at $netlab"
  if ! ip netns add "$lab-probe" 2>/dev/null; then
    skip "cannot make network namespaces here"
  fi
  ip netns del "$lab-probe"
  work=$(mktemp -d /tmp/jbc-dashboard.XXXXXX)
  outer_cleanup() {
    local rc=$?
    bash "$netlab" down "$lab" >/dev/null 2>&1 || true
    if [ $rc -ne 0 ] || [ -n "${KEEP:-}" ]; then
      log "kept $work"
    else
      rm -rf "$work"
    fi
    exit $rc
  }
  trap outer_cleanup EXIT
  trap 'exit 130' INT TERM

  # Chromium: Debian's package, installed if missing.
  if ! command -v chromium >/dev/null; then
    log "chromium not found; installing Debian's chromium package"
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } >"$work/apt.log" 2>&1; then
      tail -n 5 "$work/apt.log" >&2
      skip "could not install chromium (apt-get install -y chromium failed; see above)"
    fi
    command -v chromium >/dev/null || skip "chromium still not found after installing"
  fi
  if [ -z "${JBC:-}" ]; then
    log "building jbc"
    (cd "$repo" && go build -o "$work/jbc" ./cmd/jbc) || fail "go build ./cmd/jbc"
    JBC=$work/jbc
  fi
  bash "$netlab" down "$lab" >/dev/null 2>&1 || true
  bash "$netlab" up "$lab" 1 1 >/dev/null || fail "netlab up $lab"
  log "lab $lab up; running inside its host 1-1"
  # The lab's host has its own loopback and no route off this machine.
  bash "$netlab" exec "$lab" 1-1 env JBC_DASH_INSIDE=1 JBC="$JBC" WORK="$work" SHOT="$shot" bash "$0"
  exit $?
fi

# Inside the lab from here on.
work=$WORK
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ $rc -ne 0 ] || [ -n "${KEEP:-}" ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { log "--- $f"; tail -n 25 "$f" >&2; }; done
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chromium=$(command -v chromium)

# Headless Chromium with its own background networking off: the only
# requests it makes are the page's, to the node on 127.0.0.1 (and the
# namespace it runs in has no route elsewhere).
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

# write_checks DIR writes the DevTools protocol checks into DIR: cdp.py, a
# client (Python standard library only, a minimal WebSocket) for the
# headless Chromium started with --remote-debugging-port, and the checks
# that use it (each says what it checks).
write_checks() {
  cat >"$1/cdp.py" <<'EOF'
import base64, json, os, socket, struct, sys, time, urllib.request

NAME = os.path.basename(sys.argv[0]).removesuffix(".py")

def log(msg):
    print(f"[{NAME}] " + msg, file=sys.stderr, flush=True)

def fail(msg):
    raise SystemExit(f"[{NAME}] FAIL: {msg}")

def http(u, method="GET"):
    req = urllib.request.Request(u, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)

def wait(what, cond, secs):
    deadline = time.time() + secs
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            fail(f"timed out after {secs:.0f}s waiting for {what}")
        time.sleep(0.2)

class Page:
    """A page of the running Chromium over the DevTools protocol: just
    enough of RFC 6455 for its text frames. Events are queued for
    wait_event."""

    def __init__(self, cdp_port):
        ws_url = wait("chromium's DevTools endpoint", lambda: self._page_ws(cdp_port), 30)
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
        self.events = []

    @staticmethod
    def _page_ws(cdp_port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{cdp_port}/json/list", timeout=2) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None
        except OSError:
            return None

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
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method, secs):
        deadline = time.time() + secs
        while True:
            for i, m in enumerate(self.events):
                if m["method"] == method:
                    return self.events.pop(i)["params"]
            if time.time() > deadline:
                fail(f"timed out after {secs:.0f}s waiting for {method}")
            self.sock.settimeout(max(0.1, deadline - time.time()))
            try:
                m = self.recv()
            except socket.timeout:
                continue
            finally:
                self.sock.settimeout(30)
            if "method" in m:
                self.events.append(m)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate {expr!r}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def load(self, url):
        self.call("Page.navigate", url=url)
        wait("the page to load", lambda: self.eval("document.readyState === 'complete' && location.href") == url, 20)
EOF

  # first_check: the state comes with the page and is on screen from the
  # first paint. With the API's JSON endpoints blocked, a page loaded
  # afresh must show A's tip, peers (B connected, C banned) and the plots
  # (one point per block of GET /history), must have rendered them before
  # the first paint, and its polls must indeed have failed.
  # Usage: first_check.py CDP_PORT DASH_URL A_HTTP B_ID C_ID
  cat >"$1/first_check.py" <<'EOF'
import sys
from cdp import *

cdp_port, url, a_http, b_id, c_id = sys.argv[1:6]
page = Page(cdp_port)
page.call("Network.enable")
page.call("Network.setBlockedURLs", urls=[url + p + "*" for p in ("status", "peers", "recent", "pending", "history")])
page.load(url)
st = http(a_http + "/status")
got = page.eval("""(() => {
  const d = document.getElementById('dash');
  const row = (id) => document.querySelector('#peers tr[data-peer-id="' + id + '"]');
  const b = row(%r), c = row(%r);
  const plot = (id) => { const s = document.getElementById(id); return s && [Number(s.dataset.points), s.querySelectorAll('circle.pt').length]; };
  return { ready: d.dataset.ready, tip: d.dataset.tip, height: document.getElementById('height').textContent,
    b: b && b.dataset.connected, c: c && c.dataset.banned, cText: c && c.textContent,
    interval: plot('plot-interval'), bits: plot('plot-bits'), rate: plot('plot-rate') };
})()""" % (b_id, c_id))
log(f"page with the API blocked: {got}")
if got["ready"] != "1" or got["tip"] != st["tip"]:
    fail(f"with the API blocked the page does not show A's tip {st['tip']}: {got}")
if got["b"] != "1":
    fail("with the API blocked the page does not show B as a connected peer")
if got["c"] != "1" or "another network" not in (got["cText"] or ""):
    fail(f"with the API blocked the page does not show C as banned, with why: {got['cText']!r}")
blocks = http(a_http + "/history")["blocks"]
want = {"interval": len(blocks), "bits": len(blocks), "rate": sum(1 for b in blocks if b.get("hash_rate"))}
if len(blocks) < 10:
    fail(f"GET /history has {len(blocks)} blocks: too few to test the plots")
for k, n in want.items():
    if got[k] != [n, n]:
        fail(f"plot {k}: {got[k]} points (data-points, circles), want {n} (GET /history)")
# Paint timing: the first render is marked before the first paint.
paint = wait("paint timing", lambda: page.eval("""(() => {
  const m = performance.getEntriesByName('jbc-first-render')[0];
  const p = performance.getEntriesByName('first-paint')[0] || performance.getEntriesByName('first-contentful-paint')[0];
  return p ? { render: m ? m.startTime : null, paint: p.startTime } : null;
})()"""), 10)
log(f"paint timing: {paint}")
if paint["render"] is None or paint["render"] > paint["paint"]:
    fail(f"the first state was not rendered before the first paint: {paint}")
# The polls that follow were blocked: what the page shows came with it.
wait("the page's blocked polls to fail", lambda: page.eval("document.getElementById('conn').dataset.state") == "offline", 10)
log("with the API blocked, the page shows A's tip, B, C banned and the plots, rendered before the first paint")
EOF

  # peers_check: the last-sync column. GET /peers is answered by this
  # check with one peer per sync outcome; the page must show each label
  # in full (not cut), "up to date" neutrally, refusals and failures each
  # in their own style with why, and a banned peer with its reason.
  # Usage: peers_check.py CDP_PORT DASH_URL
  cat >"$1/peers_check.py" <<'EOF'
import sys, time
from cdp import *

cdp_port, url = sys.argv[1:3]
now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1830))
def peer(name, **kw):
    p = {"id": "12D3KooWTest" + name, "addrs": ["/ip4/127.0.0.1/tcp/4801"], "source": "direct", "connected": True}
    p.update(kw)
    return p
def sync(outcome, result):
    return {"at": now, "blocks": 0, "bytes": 0, "duration_ns": 1000000, "result": result, "outcome": outcome}
cases = {
    "Adopted": ("adopted", "result-ok", sync("adopted", "adopted")),
    "NoMoreWork": ("up to date", "result-none", sync("no-more-work", "refused: no more work than ours")),
    "Refused": ("refused", "result-bad", sync("refused", "refused: invalid block: block 7: hash does not meet the difficulty")),
    "Failed": ("failed", "result-warn", sync("failed", "failed: protocol: timeout")),
}
peers = [peer(k, last_sync=v[2]) for k, v in cases.items()]
peers.append(peer("Banned", connected=False, ban={"reason": "misbehaved: invalid-block (score 100): block 7", "until": later}))
body = base64.b64encode(json.dumps(peers).encode()).decode()

page = Page(cdp_port)
page.call("Fetch.enable", patterns=[{"urlPattern": url + "peers*", "requestStage": "Request"}])
page.call("Page.navigate", url=url)
req = page.wait_event("Fetch.requestPaused", 20)
page.call("Fetch.fulfillRequest", requestId=req["requestId"], responseCode=200,
          responseHeaders=[{"name": "Content-Type", "value": "application/json"}], body=body)
page.call("Fetch.disable")
def shown():
    return page.eval("""(() => {
      const out = {};
      for (const tr of document.querySelectorAll('#peers tr[data-peer-id^="12D3KooWTest"]')) {
        const td = tr.cells[3] || tr.cells[2], r = td.querySelector('.result'), why = td.querySelector('.why');
        out[tr.dataset.peerId.slice(12)] = { label: r && r.textContent, cls: r && r.className,
          cut: td.scrollWidth > td.clientWidth + 1 || (r && r.scrollWidth > r.clientWidth + 1),
          why: why && why.textContent, chain: tr.cells[2].textContent, banned: tr.dataset.banned || '' };
      }
      return Object.keys(out).length === 5 ? out : null;
    })()""")
got = wait("the page to show the peers GET /peers gave", shown, 10)
log(f"last sync column: {got}")
for name, (label, cls, rec) in cases.items():
    g = got[name]
    if g["label"] != label or cls not in g["cls"].split():
        fail(f"{rec['outcome']}: shown as {g['label']!r} ({g['cls']}), want {label!r} ({cls})")
    if g["cut"]:
        fail(f"{rec['outcome']}: the last-sync cell is cut")
if "does not meet the difficulty" not in (got["Refused"]["why"] or ""):
    fail(f"the refusal does not say why: {got['Refused']}")
if got["NoMoreWork"]["why"]:
    fail(f"'up to date' is shown with a reason, as a fault: {got['NoMoreWork']}")
b = got["Banned"]
if b["banned"] != "1" or not all(w in b["chain"] for w in ("banned", "until in 30 min", "invalid-block (score 100): block 7")):
    fail(f"the banned peer is not shown as banned, with until when and why: {b}")
log("the last-sync column shows each outcome in full, 'up to date' neutrally, the ban with its reason")
EOF

  # live_check: a page left open shows a new tip by itself. It opens the
  # dashboard, waits for the first render, turns B's miner on, and waits
  # for the same page (no reload) to show a newer tip of A's best chain,
  # in the tip card and at the top of the recent blocks.
  # Usage: live_check.py CDP_PORT DASH_URL A_HTTP B_HTTP TIMEOUT_S
  cat >"$1/live_check.py" <<'EOF'
import sys
from cdp import *

cdp_port, url, a_http, b_http, timeout_s = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
ws = Page(cdp_port)
ws.call("Page.navigate", url=url)
PAGE = "(() => { const d = document.getElementById('dash'); const top = document.querySelector('#blocks tr');" \
       " const card = document.querySelector('#tip-hash .hash');" \
       " return d && { ready: d.dataset.ready, tip: d.dataset.tip, height: d.dataset.height," \
       " top: top && top.dataset.hash, card: card && card.dataset.hash, mark: window.__liveCheck === 1 }; })()"
first = wait("the page's first render", lambda: (lambda p: p if p and p["ready"] == "1" else None)(ws.eval(PAGE)), 20)
tip0 = first["tip"]
if tip0 != http(a_http + "/status")["tip"]:
    fail(f"the page shows tip {tip0}, not A's")
ws.eval("window.__liveCheck = 1")
log(f"page open at #{first['height']} {tip0[:12]}; turning B's miner on")
http(b_http + "/mining?on=true", "POST")

def moved():
    p = ws.eval(PAGE)
    return p if p and p["tip"] != tip0 else None
p = wait("the open page to show a new tip", moved, timeout_s)
if not p["mark"]:
    fail("the page was reloaded")
block = http(a_http + "/blocks/" + p["tip"])
if block["index"] <= int(first["height"]) or block["hash"] != p["tip"]:
    fail(f"the page's new tip {p['tip']} is not a newer block of A's: {block}")
def settled():
    q = ws.eval(PAGE)
    return q if q["top"] == q["tip"] and q["card"] == q["tip"] else None
wait("the tip card and the recent blocks to show the new tip", settled, 5)
log(f"the open page went by itself from #{first['height']} to #{block['index']} {p['tip'][:12]}")
EOF
}

# 1. A private network whose difficulty retargets toward 2 s blocks: A
# mines 40 blocks offline, far faster than that, so the difficulty steps
# up at each retarget (every 20 blocks) and the plots have a shape.
log "node A: a private network, 40 blocks mined offline"
"$JBC" --datadir "$work/A" init --difficulty 12 --spacing 2s --name dashboard >"$work/init.log" 2>&1 || fail "jbc init"
"$JBC" --datadir "$work/A" mine --blocks 40 --threads 1 >"$work/mine.log" 2>&1 || fail "jbc mine --blocks 40"
"$JBC" --datadir "$work/B" init --genesis "$work/A/genesis.json" >>"$work/init.log" 2>&1 || fail "jbc init --genesis"
pa=$(free_port); ha=$(free_port); pb=$(free_port); hb=$(free_port); pc=$(free_port); hc=$(free_port)
start_node A "$pa" "$ha"
id_a=$(sed -n 1p "$work/A.out"); addr_a=$(sed -n 2p "$work/A.out")
case "$addr_a" in /ip4/127.0.0.1/*/p2p/"$id_a") ;; *) fail "A's multiaddr $addr_a is not on loopback or lacks /p2p/$id_a" ;; esac
start_node B "$pb" "$hb" --peer "$addr_a"
id_b=$(sed -n 1p "$work/B.out")
tip_a=$(field "$ha" .tip); height_a=$(field "$ha" .height)
[ "$height_a" = 40 ] || fail "A's height is $height_a, want 40"
log "A $id_a at #$height_a ${tip_a:0:12}, HTTP $ha; B $id_b, HTTP $hb"

b_connected() { curl -fsS --max-time 2 "http://127.0.0.1:$ha/peers" | jq -e --arg id "$id_b" 'any(.[]; .id == $id and .connected)' >/dev/null 2>&1; }
wait_for "$timeout_s" "A to list B as a connected peer" b_connected
b_synced() { [ "$(field "$hb" .tip)" = "$tip_a" ]; }
wait_for "$timeout_s" "B to sync A's chain" b_synced

# C runs the built-in network and dials A: A bans it, and shows why.
start_node C "$pc" "$hc" --peer "$addr_a"
id_c=$(sed -n 1p "$work/C.out")
c_banned() { curl -fsS --max-time 2 "http://127.0.0.1:$ha/peers" | jq -e --arg id "$id_c" 'any(.[]; .id == $id and (.ban.reason // "" | startswith("on another network")) and (.connected | not))' >/dev/null 2>&1; }
wait_for "$timeout_s" "A to list C as banned, on another network" c_banned
log "A banned C ($id_c): $(curl -fsS "http://127.0.0.1:$ha/peers" | jq -r --arg id "$id_c" '.[] | select(.id == $id) | .ban | "\(.reason) until \(.until)"')"

# 2. An entry that would be markup if the page parsed it.
entry='<b id="xss">pwned</b> & <img src=x onerror=alert(1)>'
code=$(curl -sS -o /dev/null -w '%{http_code}' --data-binary "$entry" -H 'Content-Type: text/plain' "http://127.0.0.1:$ha/data")
[ "$code" = 202 ] || fail "POST /data: HTTP $code"

# 3. The page shows the peers, the tip, the pending entry and the plots.
url="http://127.0.0.1:$ha/"
log "chromium: loading $url"
browse "$url" --dump-dom >"$work/dom1.html" || fail "chromium --dump-dom failed (see $work/chromium.log)"
grep -q 'data-ready="1"' "$work/dom1.html" || fail "the page never rendered the node's data (data-ready is not 1)"
grep -q "data-tip=\"$tip_a\"" "$work/dom1.html" || fail "the page does not show A's tip $tip_a"
grep -q "class=\"hash-slot\"><code class=\"hash\" title=\"$tip_a\" data-hash=\"$tip_a\"" "$work/dom1.html" ||
  fail "the tip card does not show A's tip hash"
grep -q "data-peer-id=\"$id_b\" data-source=\"inbound\" data-connected=\"1\"" "$work/dom1.html" ||
  fail "the peers table does not show B ($id_b) as a connected inbound peer"
grep -q "data-peer-id=\"$id_c\" data-source=\"inbound\" data-connected=\"0\" data-banned=\"1\"" "$work/dom1.html" ||
  fail "the peers table does not show C ($id_c) as banned"
grep -q "data-hash=\"$tip_a\" data-height=\"$height_a\"" "$work/dom1.html" || fail "the recent blocks do not start at A's tip"
grep -q '&lt;b id="xss"&gt;pwned&lt;/b&gt; &amp; &lt;img src=x onerror=alert(1)&gt;' "$work/dom1.html" ||
  fail "the pending entry is not shown as text"
if grep -q '<b id="xss">' "$work/dom1.html" || grep -q '<img src="x"' "$work/dom1.html"; then
  fail "the pending entry was rendered as markup"
fi
for plot in plot-interval plot-bits; do
  grep -q "id=\"$plot\"[^>]* data-points=\"$height_a\"" "$work/dom1.html" || fail "plot $plot does not have one point per block ($height_a)"
done
log "page shows B as a peer, C banned, A's tip, the pending entry as text, and the plots"

# 4. The first state comes with the page, and the last-sync column, in a
# headless Chromium driven over the DevTools protocol.
write_checks "$work"
cdp=$(free_port)
"$chromium" "${chrome_flags[@]}" --user-data-dir="$work/chromium-live" \
  --remote-debugging-address=127.0.0.1 --remote-debugging-port="$cdp" \
  --window-size=1280,900 about:blank 2>>"$work/chromium.log" &
pids+=($!)
(cd "$work" && python3 first_check.py "$cdp" "$url" "http://127.0.0.1:$ha" "$id_b" "$id_c") ||
  fail "the page's first frame does not show the state it came with"
(cd "$work" && python3 peers_check.py "$cdp" "$url") || fail "the last-sync column"

# 5. A new block arrives: B mines it, A takes it, the page shows it. First
# live: a page already open must show the new tip by itself, without a
# reload (live_check also turns B's miner on); then, mining on, in a
# freshly loaded page.
want=$(( height_a + new_blocks ))
(cd "$work" && python3 live_check.py "$cdp" "$url" "http://127.0.0.1:$ha" "http://127.0.0.1:$hb" "$mine_timeout_s") ||
  fail "the open page did not update by itself when a block arrived"
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

# B's miner is off: its page shows no hash rate, not the last one measured.
browse "http://127.0.0.1:$hb/" --dump-dom >"$work/dom-b.html" || fail "chromium --dump-dom failed (see $work/chromium.log)"
grep -q 'id="hash-rate">idle<' "$work/dom-b.html" ||
  fail "B's miner is off but its page shows a hash rate: $(grep -o 'id="hash-rate">[^<]*<' "$work/dom-b.html")"
grep -q 'id="mining">miner off' "$work/dom-b.html" || fail "B's page does not say its miner is off"
log "B's page, miner off, shows no hash rate"

# 6. The screenshot kept in the repository, with some data pending.
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

echo "PASS: dashboard: peers, a ban with its reason, tip, pending entry as text, plots, the first state before the first paint, the last-sync outcomes, no stale hash rate, and a new block shown live and on reload in headless Chromium; screenshot $shot"
