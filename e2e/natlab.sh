# e2e/natlab.sh, sourced by e2e/nat.sh and e2e/natprobe.sh: nat_lab_up
# makes their lab, LANs 1 and 2 each behind a NAT of its own and LAN 3
# public (`NAT=1,2 netlab up LAB 3 2`), waits for its IPv6 addresses to
# settle, and sets r_ip (host 3-1's public IPv6 address) and a_nat (NAT
# gateway 1's, A as seen from outside); nat_cleanup is their EXIT trap and
# nat_checks what they need. It needs $netlab, $lab, $work, log and fail.

pids=()
# nat_cleanup ends the processes in pids, takes the lab down, shows the
# tail of every log in $work if the script failed, keeps the logs in
# $KEEP_LOGS if set, and removes $work.
nat_cleanup() {
  local rc=$? p f
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$netlab" down "$lab" >/dev/null 2>&1 || true
  if [ $rc -ne 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { log "--- $f"; tail -n 40 "$f" | cut -c1-400 >&2; }; done
  fi
  if [ -n "${KEEP_LOGS:-}" ]; then
    mkdir -p "$KEEP_LOGS" && cp "$work"/*.log "$KEEP_LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$work"
  exit $rc
}

# nat_checks fails unless the script runs as root with netlab and jq.
nat_checks() {
  [ "$(id -u)" = 0 ] || fail "needs root for network namespaces"
  [ -f "$netlab" ] || fail "netlab not found at $netlab"
  command -v jq >/dev/null || fail "needs jq"
}

# ipv6_settled waits until no namespace of the lab has a tentative IPv6
# address: netlab's `up` returns while the gateways' link-local addresses
# are still in duplicate address detection (1-2 s), and until then the
# first IPv6 packets across the gateways are lost (a first TCP SYN from a
# NAT LAN to LAN 3 is answered only on its retransmission, 1 s later),
# which would count in every time measured.
ipv6_settled() {
  local deadline=$(( $(date +%s) + 10 )) n busy
  while :; do
    busy=
    for n in $(ip netns list | awk '{print $1}' | grep "^$lab-"); do
      if ip netns exec "$n" ip -6 addr show tentative | grep -q inet6; then busy=$n; break; fi
    done
    [ -z "$busy" ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || fail "IPv6 addresses of $busy still tentative after 10 s"
    sleep 0.1
  done
}

nat_lab_up() {
  "$netlab" down "$lab" >/dev/null 2>&1 || true
  NAT=1,2 bash "$netlab" up "$lab" 3 2 >/dev/null
  ipv6_settled
  r_ip=$(bash "$netlab" addr6 "$lab" 3-1)
  a_nat=2001:2::1
  case $r_ip in 2001:2:*) ;; *) fail "R's IPv6 address is '$r_ip', want one in 2001:2::/48 (netlab NAT mode)";; esac
}
