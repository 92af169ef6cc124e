// jbc dashboard: renders the node's state that came with the page (the
// #first-state JSON, before the first frame), then polls the node's HTTP
// API and renders it again.
//
// Everything shown comes from the node, and data entries are anyone's
// input: text only ever reaches the page through text nodes (append of a
// string, textContent) and setAttribute, never as markup to be parsed.
'use strict';

(() => {
  // Poll every POLL_MS while the page is visible, every HIDDEN_POLL_MS
  // while it is not; give up on a request after FETCH_TIMEOUT_MS.
  const POLL_MS = 1500;
  const HIDDEN_POLL_MS = 10000;
  const FETCH_TIMEOUT_MS = 5000;
  // Longest text put in a cell or a tooltip; CSS clips further.
  const PREVIEW_CHARS = 160;
  const TOOLTIP_CHARS = 2000;

  const $ = (id) => document.getElementById(id);

  // el builds an element: attrs are set with setAttribute (class with
  // className), children are nodes or strings (appended as text).
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else e.setAttribute(k, String(v));
    }
    for (const k of kids) {
      if (k === undefined || k === null || k === false) continue;
      e.append(k instanceof Node ? k : String(k));
    }
    return e;
  }

  function setText(id, text) {
    const e = $(id);
    if (e.textContent !== text) e.textContent = text;
  }

  function clip(s, n) {
    s = String(s);
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  function shortHash(h) {
    return h && h.length > 20 ? h.slice(0, 10) + '…' + h.slice(-6) : (h || '—');
  }

  function shortPeer(id) {
    return id && id.length > 18 ? id.slice(0, 8) + '…' + id.slice(-6) : (id || '—');
  }

  // hashEl shows a hash or peer ID short, with the full value on hover and
  // in data-hash (click copies it).
  function hashEl(full, short, extraClass) {
    if (!full) return el('span', { class: 'muted' }, '—');
    return el('code', { class: 'hash' + (extraClass ? ' ' + extraClass : ''), title: full, 'data-hash': full, tabindex: 0 }, short);
  }

  function ago(ms) {
    const s = Math.round((Date.now() - ms) / 1000);
    const a = Math.abs(s);
    if (a < 3) return 'just now';
    let v;
    if (a < 60) v = a + ' s';
    else if (a < 3600) v = Math.floor(a / 60) + ' min';
    else if (a < 86400) v = Math.floor(a / 3600) + ' h';
    else v = Math.floor(a / 86400) + ' d';
    return s >= 0 ? v + ' ago' : 'in ' + v;
  }

  // timeEl shows a time relative to now, kept fresh by tick; the exact
  // time is in the tooltip.
  function timeEl(ms) {
    if (!Number.isFinite(ms) || ms <= 0) return el('span', { class: 'muted' }, '—');
    const d = new Date(ms);
    return el('time', { datetime: d.toISOString(), title: d.toLocaleString(), 'data-t': ms }, ago(ms));
  }

  function tick() {
    for (const t of document.querySelectorAll('time[data-t]')) {
      const s = ago(Number(t.getAttribute('data-t')));
      if (t.textContent !== s) t.textContent = s;
    }
  }

  function fmtRate(hps) {
    if (!Number.isFinite(hps) || hps <= 0) return '0 H/s';
    const units = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s'];
    let i = 0;
    while (hps >= 1000 && i < units.length - 1) { hps /= 1000; i++; }
    return (hps >= 100 ? hps.toFixed(0) : hps.toFixed(hps >= 10 ? 1 : 2)) + ' ' + units[i];
  }

  function fmtCount(n) {
    return Number(n || 0).toLocaleString('en-US');
  }

  const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
  function fmtCompact(n) {
    return compact.format(Number(n || 0));
  }

  // fmtWork shows a chain's total work (a decimal string of any size) as
  // a power of two: the expected number of hashes behind it.
  function fmtWork(s) {
    if (!/^[0-9]+$/.test(s || '')) return '—';
    let log2;
    try {
      const n = Number(BigInt(s));
      log2 = Number.isFinite(n) ? Math.log2(n) : s.length * Math.log2(10);
    } catch (_) {
      log2 = s.length * Math.log2(10);
    }
    return 'work 2^' + log2.toFixed(1);
  }

  function plural(n, one, many) {
    return fmtCount(n) + ' ' + (n === 1 ? one : many);
  }

  // entriesOf returns the data entries a block's data field holds (a JSON
  // array of strings), or null when it holds none.
  function entriesOf(data) {
    if (typeof data !== 'string' || data.length < 2 || data[0] !== '[' || data[data.length - 1] !== ']') return null;
    try {
      const v = JSON.parse(data);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
    } catch (_) { /* not entries */ }
    return null;
  }

  function dataCell(data, selfID) {
    const td = el('td', { class: 'data', title: clip(data, TOOLTIP_CHARS) });
    const entries = entriesOf(data);
    if (entries) {
      td.append(el('span', { class: 'badge entries' }, plural(entries.length, 'entry', 'entries')));
      if (entries.length > 0) td.append(clip(entries[0], PREVIEW_CHARS));
      return td;
    }
    // "mined by <peer ID>": what a node's miner writes with nothing pending.
    const m = /^mined by ((?:12D3Koo|Qm)[1-9A-HJ-NP-Za-km-z]{30,})$/.exec(data);
    if (m && m[1] === selfID) {
      td.append('mined by ', el('span', { class: 'self', title: m[1] }, 'this node'));
      return td;
    }
    if (m) {
      td.append('mined by ', hashEl(m[1], shortPeer(m[1]), 'plain'));
      return td;
    }
    td.append(clip(data, PREVIEW_CHARS));
    return td;
  }

  // State kept between polls: what is new since the last render.
  let seenBlocks = null; // Set of hashes rendered, null before the first render
  let lastTip = '';

  function renderStatus(st, peers) {
    const dash = $('dash');
    dash.setAttribute('data-tip', st.tip);
    dash.setAttribute('data-height', String(st.height));

    const idSlot = $('node-id');
    if (idSlot.getAttribute('data-hash') !== st.peer_id) {
      idSlot.setAttribute('data-hash', st.peer_id);
      idSlot.replaceChildren(hashEl(st.peer_id, shortPeer(st.peer_id)));
    }
    const netSlot = $('network');
    if (netSlot.getAttribute('data-hash') !== st.network) {
      netSlot.setAttribute('data-hash', st.network);
      netSlot.replaceChildren(hashEl(st.network, shortHash(st.network)));
    }

    // Best tip.
    setText('height', fmtCount(st.height));
    if (st.tip !== lastTip) {
      $('tip-hash').replaceChildren(hashEl(st.tip, shortHash(st.tip)));
      if (lastTip) {
        const card = $('tip-card');
        card.classList.remove('bump');
        void card.offsetWidth; // restart the animation
        card.classList.add('bump');
      }
      lastTip = st.tip;
    }
    setText('tip-work', fmtWork(st.total_work));
    document.title = '#' + st.height + ' · jbc node';

    // Peers.
    setText('peer-count', fmtCount(st.peers));
    const bySource = {};
    for (const p of peers) if (p.connected) bySource[p.source] = (bySource[p.source] || 0) + 1;
    const parts = Object.keys(bySource).sort().map((s) => bySource[s] + ' ' + s);
    const banned = peers.filter((p) => p.ban).length;
    const known = peers.length - banned;
    // With a ban to mention too, "connected" would not fit the card.
    setText('peer-sources', (parts.length ? (banned ? '' : 'connected · ') + parts.join(' · ') : 'none connected · ' + plural(known, 'known', 'known')) +
      (banned ? ' · ' + fmtCount(banned) + ' banned' : ''));

    // Reachability from outside (package nat): whether nodes behind NAT
    // can reach this one, and through which relay.
    setText('reachability', reachText(st));

    // Mining.
    // A rate only while the miner runs: the node reports none otherwise,
    // and the first few seconds after it starts are still being measured.
    setText('hash-rate', !st.mining ? 'idle' : st.hash_rate > 0 ? fmtRate(st.hash_rate) : 'measuring…');
    setText('mining', (st.mining ? 'miner on' : 'miner off') + ' · ' + fmtCompact(st.hashes) + ' hashes tried');

    setText('pending-count', fmtCount(st.pending));

    renderSync(st, peers);
  }

  function renderSync(st, peers) {
    const sy = st.sync || {};
    let best = st.height;
    for (const p of peers) if (p.connected && p.status && p.status.height > best) best = p.status.height;
    let state, label, detail, pct;
    if (sy.syncing) {
      state = 'syncing';
      label = 'Syncing';
      const target = sy.target || best;
      pct = target > 0 ? Math.min(1, sy.height / target) : 0;
      detail = fmtCount(sy.height) + ' / ' + fmtCount(target);
      if (sy.blocks_per_second > 0) detail += ' · ' + fmtCount(Math.round(sy.blocks_per_second)) + ' blocks/s';
      if (sy.peer) detail += ' · from ' + shortPeer(sy.peer);
    } else if (best > st.height) {
      state = 'behind';
      label = 'Behind';
      pct = best > 0 ? st.height / best : 0;
      detail = 'peers are at #' + fmtCount(best);
    } else if (st.peers > 0) {
      state = 'synced';
      label = 'Up to date';
      pct = 1;
      detail = 'no peer has a better chain';
    } else {
      state = 'idle';
      label = 'Idle';
      pct = 0;
      detail = 'no peers to sync from';
    }
    $('sync-card').setAttribute('data-state', state);
    setText('sync-state', label);
    setText('sync-detail', detail);
    $('sync-bar').style.width = (pct * 100).toFixed(1) + '%';
  }

  function renderBlocks(blocks, st) {
    const first = seenBlocks === null;
    const seen = new Set();
    const rows = blocks.map((b) => {
      seen.add(b.hash);
      const fresh = !first && !seenBlocks.has(b.hash);
      return el('tr', { class: fresh ? 'fresh' : null, 'data-hash': b.hash, 'data-height': b.index },
        el('td', { class: 'num' }, fmtCount(b.index)),
        el('td', {}, hashEl(b.hash, shortHash(b.hash))),
        el('td', {}, timeEl(b.timestamp * 1000)),
        dataCell(b.data, st.peer_id));
    });
    seenBlocks = seen;
    $('blocks').replaceChildren(...rows);
    $('blocks-empty').hidden = rows.length > 0;
    const tip = blocks.length ? blocks[0] : null;
    if (tip && tip.index === st.height) {
      $('tip-age').replaceChildren('mined ', timeEl(tip.timestamp * 1000));
    }
  }

  const sourceOrder = { direct: 0, bootstrap: 1, mdns: 2, dht: 3, inbound: 4 };

  // How the last sync with a peer went (its outcome), as a label and a
  // style: finding no more work than ours is the normal answer of a peer in
  // step with us, shown neutrally; a refusal or a failure stands out.
  const outcomes = {
    adopted: ['adopted', 'result-ok'],
    'no-more-work': ['up to date', 'result-none'],
    refused: ['refused', 'result-bad'],
    failed: ['failed', 'result-warn'],
    stopped: ['stopped', 'result-none'],
  };

  function syncCell(ls) {
    const [label, cls] = outcomes[ls.outcome] || ['failed', 'result-warn'];
    const title = ls.outcome === 'no-more-work' ? 'its chain has no more work than ours: nothing to take' : ls.result;
    // What went wrong, without the label's word.
    const why = cls === 'result-bad' || cls === 'result-warn' ? String(ls.result).replace(/^(refused|failed): /, '') : '';
    return el('td', { class: 'sync', title: title, 'data-outcome': ls.outcome || '' },
      el('span', { class: 'result ' + cls }, label),
      why ? el('div', { class: 'sub why' }, clip(why, PREVIEW_CHARS)) : null,
      el('div', { class: 'sub' }, plural(ls.blocks, 'block', 'blocks') + ' · ', timeEl(Date.parse(ls.at))));
  }

  // reachText says whether the node is reachable from outside: public,
  // behind NAT through a relay, or behind NAT with none.
  function reachText(st) {
    const relays = st.relays || [];
    switch (st.reachability) {
      case 'public':
        return 'reachable from outside' + (st.relay_service === 'on' ? ' · relaying' : '');
      case 'private':
        return relays.length ? 'behind NAT · through ' + relays.map(shortPeer).join(', ') : 'behind NAT · no relay';
      case 'unknown':
        return 'reachability unknown' + (st.relay_service === 'on' ? ' · relaying' : '');
    }
    return '';
  }

  // linkText says how the node holds a peer: each connection direct or
  // relayed, and how it was made.
  function linkText(p) {
    return (p.connections || []).map((c) => c.link + ' · ' + c.made).join(', ');
  }

  function renderPeers(peers, st) {
    const sorted = peers.slice().sort((a, b) =>
      (!!a.ban - !!b.ban) ||
      (b.connected - a.connected) ||
      ((sourceOrder[a.source] ?? 9) - (sourceOrder[b.source] ?? 9)) ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const rows = sorted.map((p) => {
      const src = /^[a-z]+$/.test(p.source || '') && p.source in sourceOrder ? p.source : 'other';
      const addr = (p.addrs && p.addrs[0]) || '';
      const dot = p.ban ? ['banned', 'banned'] : p.connected ? ['on', 'connected'] : ['', 'not connected'];
      const peerCell = el('td', {},
        el('span', { class: 'status-dot ' + dot[0], title: dot[1] }),
        hashEl(p.id, shortPeer(p.id)),
        el('div', { class: 'sub', title: (p.addrs || []).join('\n') },
          p.status && p.status.agent ? p.status.agent + (addr ? ' · ' : '') : '', addr));

      // A banned peer's chain and last sync matter no more: one cell
      // says why it is refused and until when.
      let chainCell;
      if (p.ban) {
        const until = Date.parse(p.ban.until);
        chainCell = el('td', { colspan: 2, class: 'ban', title: p.ban.reason + '\nrefused until ' + new Date(until).toLocaleString() },
          el('span', { class: 'badge bad' }, 'banned'), ' until ', timeEl(until),
          el('div', { class: 'sub why' }, clip(p.ban.reason, PREVIEW_CHARS)));
      } else if (p.status) {
        const s = p.status;
        let rel;
        if (s.tip === st.tip) rel = el('span', { class: 'badge ok' }, 'same tip');
        else if (s.height > st.height) rel = el('span', { class: 'badge warn' }, 'ahead');
        else rel = el('span', { class: 'badge' }, 'behind');
        chainCell = el('td', { title: 'tip ' + s.tip + '\nstatus received ' + s.at },
          el('span', { class: 'mono' }, '#' + fmtCount(s.height)), ' ', rel,
          el('div', { class: 'sub' }, 'status ', timeEl(Date.parse(s.at))));
      } else if (p.dial_error && !p.connected) {
        chainCell = el('td', { title: p.dial_error },
          el('span', { class: 'result result-warn' }, 'unreachable'),
          el('div', { class: 'sub why' }, clip(p.dial_error, PREVIEW_CHARS)));
      } else {
        chainCell = el('td', { class: 'muted' }, 'no status yet');
      }

      let lastCell;
      if (p.ban) {
        lastCell = null;
      } else if (p.last_sync) {
        lastCell = syncCell(p.last_sync);
      } else {
        lastCell = el('td', { class: 'muted' }, 'never');
      }

      return el('tr', { 'data-peer-id': p.id, 'data-source': src, 'data-connected': p.connected ? '1' : '0', 'data-banned': p.ban ? '1' : null },
        peerCell,
        el('td', {}, el('span', { class: 'badge src src-' + src }, p.source || '?'),
          el('div', { class: 'sub link', title: (p.connections || []).map((c) => c.remote).join('\n') +
            (p.hole_punch && p.hole_punch.last_error ? '\nhole punch: ' + p.hole_punch.last_error : '') }, linkText(p))),
        chainCell,
        lastCell);
    });
    $('peers').replaceChildren(...rows);
    $('peers-empty').hidden = rows.length > 0;
    const connected = peers.filter((p) => p.connected).length;
    const banned = peers.filter((p) => p.ban).length;
    const known = peers.length - banned;
    setText('peers-note', (known ? connected + ' of ' + known + ' connected' : '') + (known && banned ? ' · ' : '') + (banned ? banned + ' banned' : ''));
  }

  function renderPending(entries, total) {
    const items = entries.map((e) =>
      el('li', { 'data-id': e.id },
        hashEl(e.id, e.id.slice(0, 10)),
        el('span', { class: 'text', title: clip(e.text, TOOLTIP_CHARS) }, clip(e.text, 4 * PREVIEW_CHARS))));
    $('pending').replaceChildren(...items);
    $('pending-empty').hidden = items.length > 0;
    setText('pending-note', total > entries.length ? 'oldest ' + entries.length + ' of ' + fmtCount(total) : (total ? 'oldest first' : ''));
  }

  // Plots of the recent chain, drawn as inline SVG. Each svg.plot gets a
  // data-points attribute: how many points (circle.pt) it shows.
  const SVG = 'http://www.w3.org/2000/svg';
  const PLOT = { w: 360, h: 150, left: 46, right: 10, top: 10, bottom: 20 };

  function svgEl(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const k of kids) e.append(k instanceof Node ? k : String(k));
    return e;
  }

  // niceMax rounds v up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmtSecs(s) {
    if (Math.abs(s) >= 120) return (s / 60).toFixed(Math.abs(s) >= 600 ? 0 : 1) + ' min';
    return (Number.isInteger(s) || Math.abs(s) >= 10 ? Math.round(s) : s.toFixed(1)) + ' s';
  }

  // plot draws points {x: height, y: value, tip: tooltip} into the svg
  // with the given id, on a y axis from lo to hi labelled by fmt; points
  // above hi are drawn at the top, marked as clipped. ref, if set, is a
  // dashed reference line {y, label}; step joins the points as a step
  // line (a value that holds until the next point).
  function plot(id, points, opts) {
    const svg = $(id);
    const { w, h, left, right, top, bottom } = PLOT;
    const pw = w - left - right, ph = h - top - bottom;
    const kids = [];
    if (points.length === 0) {
      kids.push(svgEl('text', { x: w / 2, y: h / 2, class: 'empty-note', 'text-anchor': 'middle' }, opts.empty || 'no blocks yet'));
      svg.replaceChildren(...kids);
      svg.setAttribute('data-points', '0');
      return;
    }
    const x0 = points[0].x, x1 = points[points.length - 1].x;
    const X = (x) => left + (x1 === x0 ? pw / 2 : (x - x0) / (x1 - x0) * pw);
    const Y = (y) => top + ph - (Math.min(Math.max(y, opts.lo), opts.hi) - opts.lo) / (opts.hi - opts.lo) * ph;
    // Grid and labels: bottom, middle, top.
    for (const v of [opts.lo, (opts.lo + opts.hi) / 2, opts.hi]) {
      kids.push(svgEl('line', { x1: left, x2: w - right, y1: Y(v), y2: Y(v), class: 'grid' }));
      kids.push(svgEl('text', { x: left - 6, y: Y(v) + 4, 'text-anchor': 'end', class: 'tick' }, opts.fmt(v)));
    }
    kids.push(svgEl('text', { x: left, y: h - 4, class: 'tick' }, '#' + fmtCount(x0)));
    if (x1 !== x0) kids.push(svgEl('text', { x: w - right, y: h - 4, 'text-anchor': 'end', class: 'tick' }, '#' + fmtCount(x1)));
    if (opts.ref) {
      const y = Y(opts.ref.y);
      kids.push(svgEl('line', { x1: left, x2: w - right, y1: y, y2: y, class: 'ref' }));
      kids.push(svgEl('text', { x: w - right - 2, y: y - 4, 'text-anchor': 'end', class: 'ref-label' }, opts.ref.label));
    }
    let path = '';
    points.forEach((p, i) => {
      const x = X(p.x).toFixed(1), y = Y(p.y).toFixed(1);
      if (i === 0) path = 'M' + x + ' ' + y;
      else if (opts.step) path += 'H' + x + 'V' + y;
      else path += 'L' + x + ' ' + y;
    });
    kids.push(svgEl('path', { d: path, class: 'series' }));
    const r = points.length > 60 ? 1.6 : 2.6;
    for (const p of points) {
      const clipped = p.y > opts.hi;
      kids.push(svgEl('circle', { cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: clipped ? r + 1 : r, class: 'pt' + (clipped ? ' clipped' : ''), 'data-height': p.x },
        svgEl('title', {}, p.tip)));
    }
    svg.replaceChildren(...kids);
    svg.setAttribute('data-points', String(points.length));
  }

  // renderHistory plots the recent chain: the time between blocks against
  // the target spacing, the difficulty, and the hash rate the blocks show.
  function renderHistory(hist) {
    const blocks = (hist && hist.blocks) || [];
    const spacing = (hist && hist.spacing_s) || 0;
    setText('charts-note', blocks.length ? 'last ' + plural(blocks.length, 'block', 'blocks') + (spacing > 0 ? ' · target one every ' + fmtSecs(spacing) : ' · fixed difficulty') : '');

    // Intervals: an outlier (block 1 after an old genesis, a node that
    // was off) would flatten the rest, so the axis stops at four times
    // the target (or the median, on a fixed-difficulty network).
    const iv = blocks.map((b) => ({ x: b.height, y: b.interval_s, tip: '#' + fmtCount(b.height) + ': ' + fmtSecs(b.interval_s) + ' after its parent' }));
    const sorted = iv.map((p) => p.y).sort((a, b) => a - b);
    const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
    const cap = 4 * (spacing > 0 ? spacing : Math.max(median, 1));
    const ivMax = niceMax(Math.max(Math.min(sorted.length ? sorted[sorted.length - 1] : 0, cap), spacing * 1.25, 1));
    plot('plot-interval', iv, {
      lo: Math.min(0, sorted.length ? sorted[0] : 0), hi: ivMax, fmt: fmtSecs,
      ref: spacing > 0 ? { y: spacing, label: 'target ' + fmtSecs(spacing) } : null,
    });
    const mean = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : 0;
    setText('interval-note', sorted.length ? 'mean ' + fmtSecs(mean) : '');

    // Difficulty, in leading zero bits: a step at each retarget.
    const bits = blocks.map((b) => ({ x: b.height, y: b.bits, tip: '#' + fmtCount(b.height) + ': ' + b.bits + ' bits, ' + fmtCompact(Math.pow(2, b.bits)) + ' hashes a block on average' }));
    const bmin = Math.min(...blocks.map((b) => b.bits)), bmax = Math.max(...blocks.map((b) => b.bits));
    plot('plot-bits', bits, { lo: Math.max(0, bmin - 2), hi: bmax + 2, fmt: (v) => v.toFixed(Number.isInteger(v) ? 0 : 1) + ' bits', step: true });
    setText('bits-note', blocks.length ? blocks[blocks.length - 1].bits + ' bits at the tip' : '');

    // Hash rate: what the blocks' work over their time shows.
    const rates = blocks.filter((b) => Number.isFinite(b.hash_rate) && b.hash_rate > 0)
      .map((b) => ({ x: b.height, y: b.hash_rate, tip: '#' + fmtCount(b.height) + ': ' + fmtRate(b.hash_rate) + ' over the 10 blocks to it' }));
    plot('plot-rate', rates, { lo: 0, hi: niceMax(Math.max(...rates.map((p) => p.y), 0)), fmt: fmtRate, empty: blocks.length ? 'too few blocks yet' : 'no blocks yet' });
    setText('rate-note', rates.length ? fmtRate(rates[rates.length - 1].y) + ' over the last blocks' : '');
  }

  function setConn(ok, err) {
    const c = $('conn');
    c.setAttribute('data-state', ok ? 'live' : 'offline');
    setText('conn-text', ok ? 'live' : 'offline · retrying');
    c.title = ok ? 'polling every ' + POLL_MS / 1000 + ' s' : String(err && err.message || err);
  }

  async function getJSON(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    try {
      const r = await fetch(path, { signal: ctl.signal, cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
      return await r.json();
    } finally {
      clearTimeout(timer);
    }
  }

  // render shows one state of the node: what the page came with, or
  // what a poll fetched (the same endpoints, with their default counts).
  function render(state) {
    const st = state.status;
    renderStatus(st, state.peers || []);
    renderBlocks(state.recent || [], st);
    renderPeers(state.peers || [], st);
    renderPending(state.pending || [], st.pending);
    renderHistory(state.history);
    setText('updated', new Date().toLocaleTimeString());
    $('dash').setAttribute('data-ready', '1');
  }

  let timer = null;
  let busy = false;

  async function poll() {
    if (busy) return;
    busy = true;
    clearTimeout(timer);
    try {
      // Relative paths: the page works behind a proxy that mounts the API
      // under a prefix.
      const [status, peers, recent, pending, history] = await Promise.all([
        getJSON('status'),
        getJSON('peers'),
        getJSON('recent'),
        getJSON('pending'),
        getJSON('history'),
      ]);
      render({ status, peers, recent, pending, history });
      setConn(true);
    } catch (err) {
      setConn(false, err);
    } finally {
      busy = false;
      timer = setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
    }
  }

  // Click (or Enter on) a hash to copy its full value.
  function copy(e) {
    const t = e.target.closest && e.target.closest('[data-hash].hash');
    if (!t || !navigator.clipboard) return;
    navigator.clipboard.writeText(t.getAttribute('data-hash')).then(() => {
      t.classList.add('copied');
      setTimeout(() => t.classList.remove('copied'), 900);
    }, () => {});
  }
  document.addEventListener('click', copy);
  document.addEventListener('keydown', (e) => { if (e.key === 'Enter') copy(e); });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });
  setInterval(tick, 1000);

  // The state the page came with, rendered now, before the first frame
  // (the script blocks rendering until it has run); the polls follow.
  let first = null;
  try {
    first = JSON.parse($('first-state').textContent);
  } catch (_) { /* a page without it: poll at once */ }
  if (first && first.status) {
    render(first);
    setConn(true);
    $('conn').title = 'as the page came; polling every ' + POLL_MS / 1000 + ' s';
    performance.mark('jbc-first-render');
    timer = setTimeout(poll, POLL_MS);
  } else {
    poll();
  }
})();
