"use strict";
// rawinspect's HTML report. Everything it shows comes from the JSON block #data and is
// put on the page as text (textContent, setAttribute): never parsed as HTML.
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const S = D.strings, M = D.meta, L = D.layout;
  // A segment's array, as html.py's _Page.segment writes it.
  const F = { frame: 0, t: 1, fromClient: 2, flags: 3, seq: 4, ack: 5, relSeq: 6, relAck: 7,
    win: 8, winScaled: 9, len: 10, y: 11, yArrive: 12, crossed: 13, event: 14, note: 15,
    analysis: 16, cpath: 17, spath: 18, cause: 19, bytes: 20, rebuilt: 21, mark: 22 };
  const SVGNS = "http://www.w3.org/2000/svg";
  const LEFT = 180, RIGHT = 600, WIDTH = 820, ROW = 22, WINDOW = 1500, ALL_BELOW = 2000;
  const STATES = ["CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1",
    "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"];
  const FLAGS = [[0x02, "S", "SYN"], [0x01, "F", "FIN"], [0x08, "P", "PSH"], [0x04, "R", "RST"],
    [0x20, "U", "URG"], [0x40, "E", "ECE"], [0x80, "W", "CWR"]];

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "text") e.textContent = v; else if (k === "cls") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  function sv(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function letters(flags) {
    let out = FLAGS.filter(f => flags & f[0]).map(f => f[1]).join("");
    if (flags & 0x10) out += ".";
    return out || "none";
  }
  function label(s) {
    let t = `${s[F.frame]}: ${letters(s[F.flags])} ${s[F.relSeq]}`;
    if (s[F.flags] & 0x10) t += ` ack ${s[F.relAck]}`;
    if (s[F.len]) t += ` len ${s[F.len]}`;
    if (s[F.crossed].length) t += ` ✕ crossed ${s[F.crossed].join(", ")}`;
    return t;
  }
  function secs(x) {
    if (x === null || x === undefined) return "-";
    if (x < 0.001) return `${(x * 1e6).toFixed(0)} µs`;
    if (x < 1) return `${(x * 1000).toFixed(3)} ms`;
    return `${x.toFixed(3)} s`;
  }
  function bytesOf(s) {
    const bin = atob(s[F.bytes]);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  const hex = (b, i, n) => Array.from(b.slice(i, i + n), x => x.toString(16).padStart(2, "0")).join(" ");
  const be = (b, i, n) => { let v = 0; for (let k = 0; k < n; k++) v = v * 256 + b[i + k]; return v; };
  const le = (b, i, n) => { let v = 0; for (let k = n - 1; k >= 0; k--) v = v * 256 + b[i + k]; return v; };

  // State -----------------------------------------------------------------------------
  const conns = D.conns;
  const byId = new Map(conns.map(c => [c.id, c]));
  const findingsByConn = new Map(), findingFrames = new Map();
  for (const f of D.findings) {
    if (!findingsByConn.has(f.conn)) findingsByConn.set(f.conn, []);
    findingsByConn.get(f.conn).push(f);
    for (const fr of f.frames) {
      if (!findingFrames.has(fr)) findingFrames.set(fr, []);
      findingFrames.get(fr).push(f);
    }
  }
  for (const c of conns) {
    c.flagsSeen = 0; c.statesSeen = new Set([S[0], c.cb, c.sb]);
    c.crossedBy = new Map();
    for (const s of c.segs) {
      c.flagsSeen |= s[F.flags] | (s[F.len] ? 0x1000 : 0) | (s[F.analysis] ? 0x2000 : 0);
      for (const p of [S[s[F.cpath]], S[s[F.spath]]]) for (const st of p.split(" → ")) c.statesSeen.add(st);
      for (const fr of s[F.crossed]) c.crossedBy.set(fr, s[F.frame]);
    }
  }
  let shown = conns.slice(), current = null, selected = -1, drawnRange = [-1, -1];

  // Header ----------------------------------------------------------------------------
  function header() {
    const h = el("header", { cls: "report" });
    h.append(el("h1", { text: `rawinspect report: ${M.what || "capture"}` }));
    const dl = el("dl", { cls: "meta" });
    const add = (k, v) => { if (v !== "" && v !== null && v !== undefined) dl.append(el("dt", { text: k }), el("dd", { text: String(v) })); };
    add("captured", M.what);
    add("capture file", M.capture);
    add("interface", M.interface);
    add("capture filter", M.filter);
    add("time span", M.start ? `${M.start}, ${secs(M.span)}` : "");
    const counts = [M.packets !== null ? `${M.packets} packets` : "", `${M.segments} TCP segments`,
      `${M.connections} connection${M.connections === 1 ? "" : "s"}`,
      M.datagrams.length ? `${M.datagrams.length} UDP datagram${M.datagrams.length === 1 ? "" : "s"}` : ""
    ].filter(Boolean).join(", ");
    add("counts", counts);
    if (M.dropped !== null) add("dropped by kernel", M.dropped);
    add("findings", D.findings.length ? `${D.findings.length}` : "none");
    add("segment bytes", M.bytes === "capture" ? `from the capture file, payload up to ${M.payloadShown} bytes per segment`
      : "rebuilt from the decoded header fields (no capture file: checksum, urgent pointer and payload not kept)");
    h.append(dl);
    if (M.verdict.length) {
      h.append(el("div", { cls: `verdict ${M.ok ? "ok" : "bad"}`, text: `scenario verdict: ${M.ok ? "as the lesson says" : "not as the lesson says"}` }));
      const ul = el("ul", { cls: "plain verdict-lines" });
      for (const line of M.verdict) ul.append(el("li", { text: line }));
      h.append(ul);
    }
    if (M.datagrams.length) {
      h.append(el("div", { cls: "udp", text: `UDP datagrams (frame, time, addresses, length, payload). ${M.udpLesson}:` }));
      const ul = el("ul", { cls: "plain mono udp-list" });
      for (const line of M.datagrams) ul.append(el("li", { text: line }));
      h.append(ul);
    }
    if (M.processCalls.length) {
      h.append(el("div", { text: "process calls (on no connection):" }));
      const ul = el("ul", { cls: "plain mono" });
      for (const line of M.processCalls) ul.append(el("li", { text: line }));
      h.append(ul);
    }
    return h;
  }

  // Filters and keys ------------------------------------------------------------------
  const filt = { conn: "", addr: "", port: "", flag: "", state: "" };
  const FLAG_FILTERS = { SYN: 0x02, FIN: 0x01, RST: 0x04, PSH: 0x08, data: 0x1000, analysis: 0x2000 };
  function bar() {
    const b = el("div", { cls: "bar", role: "search" });
    const input = (key, text, ph) => {
      const i = el("input", { id: `f-${key}`, placeholder: ph, "aria-label": text });
      i.addEventListener("input", () => { filt[key] = i.value.trim(); applyFilters(); });
      b.append(el("label", { for: `f-${key}`, text }), i);
    };
    const select = (key, text, options) => {
      const s = el("select", { id: `f-${key}`, "aria-label": text });
      s.append(el("option", { value: "", text: "any" }));
      for (const o of options) s.append(el("option", { value: o, text: o }));
      s.addEventListener("change", () => { filt[key] = s.value; applyFilters(); });
      b.append(el("label", { for: `f-${key}`, text }), s);
    };
    input("conn", "connection", "e.g. 3");
    input("addr", "address", "e.g. 127.0.0.1");
    input("port", "port", "e.g. 80");
    select("flag", "flag", Object.keys(FLAG_FILTERS));
    select("state", "state", STATES);
    const theme = el("button", { id: "theme", type: "button", text: "light / dark" });
    theme.addEventListener("click", toggleTheme);
    b.append(theme);
    b.append(el("span", { cls: "keys", text: "keys: j/k next/previous segment · n/N next/previous state change · ]/[ next/previous connection · t theme · Esc" }));
    return b;
  }
  function segMatches(s) {
    if (filt.flag && !((s[F.flags] | (s[F.len] ? 0x1000 : 0) | (s[F.analysis] ? 0x2000 : 0)) & FLAG_FILTERS[filt.flag])) return false;
    if (filt.state && !(S[s[F.cpath]].split(" → ").includes(filt.state) || S[s[F.spath]].split(" → ").includes(filt.state))) return false;
    return true;
  }
  function connMatches(c) {
    if (filt.conn && String(c.id) !== filt.conn) return false;
    if (filt.addr && !(c.client.includes(filt.addr) || c.server.includes(filt.addr))) return false;
    if (filt.port && !(c.client.endsWith(`:${filt.port}`) || c.server.endsWith(`:${filt.port}`))) return false;
    if (filt.flag && !(c.flagsSeen & FLAG_FILTERS[filt.flag])) return false;
    if (filt.state && !c.statesSeen.has(filt.state)) return false;
    return true;
  }
  function applyFilters() {
    shown = conns.filter(connMatches);
    drawList();
    if (current && !shown.includes(current) && shown.length) openConn(shown[0].id);
    else if (current) { drawnRange = [-1, -1]; drawWindow(); }
  }
  function toggleTheme() {
    const root = document.documentElement;
    const dark = root.getAttribute("data-theme") === "dark";
    root.setAttribute("data-theme", dark ? "light" : "dark");
  }

  // Connection list (virtual: only the rows in view are in the page) -----------------
  const list = el("div", { cls: "vlist", id: "conn-list", tabindex: "0" });
  const spacer = el("div", { cls: "spacer" });
  const listCount = el("div", { cls: "count", id: "conn-count" });
  list.append(spacer);
  const COLS = ["#", "client", "server", "state", "history", "final client / server", "duration", "closed first", "findings", "time in each state (client | server)"];
  function timingText(c, who) {
    return (c.timing && c.timing[who] || []).map(h => `${h[0]} ${secs(h[1])}`).join(" → ");
  }
  function connRow(c, i) {
    const r = el("div", { cls: `row${c === current ? " current" : ""}`, "data-conn": c.id });
    r.style.top = `${(i + 1) * ROW}px`;
    const f = (findingsByConn.get(c.id) || []).length;
    const cells = [c.id, c.client, c.server, c.state || "-", c.history || "-",
      `${c.cfin || "?"} / ${c.sfin || "?"}`, secs(c.duration), c.closer || "-", f,
      `${timingText(c, "client")} | ${timingText(c, "server")}`];
    for (const v of cells) r.append(el("span", { text: String(v) }));
    r.title = `client: ${timingText(c, "client")}\nserver: ${timingText(c, "server")}`;
    r.addEventListener("click", () => openConn(c.id));
    return r;
  }
  function drawList() {
    spacer.textContent = "";
    spacer.style.height = `${(shown.length + 1) * ROW}px`;
    const head = el("div", { cls: "row head" });
    for (const h of COLS) head.append(el("span", { text: h }));
    head.style.top = "0px";
    spacer.append(head);
    const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 5);
    const last = Math.min(shown.length, first + Math.ceil(list.clientHeight / ROW) + 10);
    for (let i = first; i < last; i++) spacer.append(connRow(shown[i], i));
    listCount.textContent = `${shown.length} of ${conns.length} connections shown` +
      (shown.length > 8 ? " (scroll the list; it draws only the rows in view)" : "");
  }
  list.addEventListener("scroll", () => requestAnimationFrame(drawList));

  // One connection's ladder -----------------------------------------------------------
  const ladderSec = el("section", { cls: "ladder", id: "ladder" });
  const scroll = el("div", { cls: "scroll", id: "ladder-scroll", tabindex: "0" });
  const svg = sv("svg", { class: "ladder", width: WIDTH, xmlns: SVGNS });
  const layerBands = sv("g", { class: "bands" }), layerRows = sv("g", { class: "rows" });
  scroll.append(svg);
  const detail = el("aside", { cls: "detail", id: "detail" });

  function band(x, from, to, state) {
    const r = sv("rect", { x, y: from, width: 14, height: Math.max(to - from, 1), class: "band", "data-state": state });
    r.style.fill = `var(--${state}, transparent)`;
    r.append(sv("title", {}, state));
    return r;
  }
  function bands(c) {
    // Each endpoint's states: the sender's changes where its arrow leaves, the
    // receiver's where it arrives (a crossed segment arrives late).
    const out = [];
    for (const [client, x] of [[true, LEFT], [false, RIGHT]]) {
      let state = client ? c.cb : c.sb, start = L.minGap / 2;
      const changes = [];
      for (const s of c.segs) {
        const path = S[client ? s[F.cpath] : s[F.spath]];
        if (!path) continue;
        const steps = path.split(" → ").slice(1);
        const at = (s[F.fromClient] === 1) === client ? s[F.y] : s[F.yArrive];
        changes.push([at, steps]);
      }
      changes.sort((a, b) => a[0] - b[0]);
      const bx = client ? x - 22 : x + 8, tx = client ? x - 28 : x + 28;
      for (const [at, steps] of changes) {
        out.push(band(bx, start, at, state));
        const t = sv("text", { x: tx, y: at + 4, "text-anchor": client ? "end" : "start", class: "state", "data-side": client ? "client" : "server", "data-y": at }, steps.join(" → "));
        out.push(t);
        state = steps[steps.length - 1]; start = at;
      }
      out.push(band(bx, start, c.height, state));
    }
    return out;
  }
  function segNode(c, i) {
    const s = c.segs[i];
    const fromClient = s[F.fromClient] === 1;
    const x1 = fromClient ? LEFT : RIGHT, x2 = fromClient ? RIGHT : LEFT;
    const crossing = s[F.crossed].length > 0 || c.crossedBy.has(s[F.frame]);
    let cls = "seg";
    if (s[F.flags] & 0x04) cls += " rst"; else if (S[s[F.analysis]]) cls += " ana";
    if (crossing) cls += " crossing";
    if (i === selected) cls += " sel";
    if ((filt.flag || filt.state) && !segMatches(s)) cls += " dim";
    const g = sv("g", { class: cls, "data-i": i, "data-frame": s[F.frame] });
    const geo = { x1, y1: s[F.y], x2, y2: s[F.yArrive] };
    g.append(sv("line", Object.assign({ class: "hit" }, geo)));
    g.append(sv("line", Object.assign({ class: "arrow", "marker-end": "url(#head)" }, geo)));
    const mid = (LEFT + RIGHT) / 2;
    // A crossing arrow's label sits near its sender, away from the arrow it crosses.
    const along = crossing ? 0.3 : 0.5;
    const t = sv("text", { x: x1 + (x2 - x1) * along, y: s[F.y] + (crossing ? (s[F.yArrive] - s[F.y]) * along : L.slant / 2) - 4, "text-anchor": "middle", class: "label" }, label(s));
    t.append(sv("title", {}, S[s[F.note]]));
    g.append(t);
    if (findingFrames.has(s[F.frame])) {
      g.append(sv("text", { x: RIGHT - 24, y: s[F.y] - 3, class: "finding-mark" }, "⚠"));
    }
    if (S[s[F.mark]]) g.append(sv("text", { x: mid, y: s[F.y] - L.minGap / 2, "text-anchor": "middle", class: "gap" }, `⋯ ${S[s[F.mark]]} ⋯`));
    return g;
  }
  function callNode(k) {
    const [y, server, text, kind, mark] = k;
    const x = server ? RIGHT : LEFT;
    const g = sv("g", { class: `call${kind === 1 ? " failed" : kind === 2 ? " other" : ""}`, "data-side": server ? "server" : "client" });
    g.append(sv("circle", { cx: x, cy: y, r: 4 }));
    const words = S[text];
    const lines = [];
    for (let i = 0; i < words.length; i += 56) lines.push(words.slice(i, i + 56));
    lines.forEach((line, n) => g.append(sv("text", { x: server ? x - 10 : x + 10, y: y + 4 + n * 16, "text-anchor": server ? "end" : "start" }, line)));
    if (S[mark]) g.append(sv("text", { x: (LEFT + RIGHT) / 2, y: y - L.minGap / 2, "text-anchor": "middle", class: "gap" }, `⋯ ${S[mark]} ⋯`));
    return g;
  }
  function lowerBound(arr, y, key) {
    let lo = 0, hi = arr.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (key(arr[mid]) < y) lo = mid + 1; else hi = mid; }
    return lo;
  }
  function drawWindow(all) {
    // A connection under ALL_BELOW segments is drawn whole; a larger one around the view.
    const c = current;
    const big = c.segs.length >= ALL_BELOW && !all;
    const top = big ? scroll.scrollTop - WINDOW : -Infinity;
    const bottom = big ? scroll.scrollTop + scroll.clientHeight + WINDOW : Infinity;
    const a = big ? lowerBound(c.segs, top, s => s[F.y]) : 0;
    const b = big ? lowerBound(c.segs, bottom, s => s[F.y]) : c.segs.length;
    if (drawnRange[0] === a && drawnRange[1] === b) return;
    drawnRange = [a, b];
    layerRows.textContent = "";
    for (let i = a; i < b; i++) layerRows.append(segNode(c, i));
    const ca = big ? lowerBound(c.calls, top, k => k[0]) : 0;
    const cb = big ? lowerBound(c.calls, bottom, k => k[0]) : c.calls.length;
    for (let i = ca; i < cb; i++) layerRows.append(callNode(c.calls[i]));
  }
  scroll.addEventListener("scroll", () => requestAnimationFrame(() => { if (current) drawWindow(); }));
  svg.addEventListener("click", ev => {
    const g = ev.target.closest("g.seg");
    if (g) select(Number(g.getAttribute("data-i")), false);
  });

  function openConn(id, frame) {
    const c = byId.get(id);
    if (!c) return;
    current = c; selected = -1; drawnRange = [-1, -1];
    ladderSec.textContent = "";
    ladderSec.append(el("h2", { text: `connection ${c.id}: client ${c.client} ⇄ server ${c.server}` }));
    const tm = el("div", { cls: "timing" });
    for (const who of ["client", "server"]) {
      const line = el("div", {}, el("span", { text: `${who}: ` }));
      for (const h of (c.timing && c.timing[who]) || []) {
        const st = el("span", { cls: "st", text: `${h[0]} ${secs(h[1])}` });
        st.style.background = `var(--${h[0]})`;
        line.append(st);
      }
      tm.append(line);
    }
    ladderSec.append(tm);
    ladderSec.append(el("div", { cls: "hint", text: `Zeek conn_state ${c.state || "-"}, history ${c.history || "-"}; ${c.segs.length} segments, ${c.calls.length} calls; closed first: ${c.closer || "-"}; handshake RTT ${secs(c.rtt)}` }));
    const fs = findingsByConn.get(c.id) || [];
    if (fs.length) {
      const ul = el("ul", { cls: "plain findings" });
      for (const f of fs) ul.append(el("li", { cls: f.severity, text: `${f.severity} ${f.rule}: ${f.what} Fix: ${f.fix}` }));
      ladderSec.append(ul);
    }
    svg.textContent = "";
    const defs = sv("defs");
    const marker = sv("marker", { id: "head", markerWidth: 10, markerHeight: 8, refX: 9, refY: 4, orient: "auto", markerUnits: "userSpaceOnUse" });
    marker.append(sv("path", { d: "M0,0 L10,4 L0,8 z" }));
    defs.append(marker);
    svg.append(defs);
    svg.setAttribute("height", c.height);
    svg.setAttribute("viewBox", `0 0 ${WIDTH} ${c.height}`);
    for (const [x, who, ep] of [[LEFT, "client", c.client], [RIGHT, "server", c.server]]) {
      svg.append(sv("line", { x1: x, y1: 0, x2: x, y2: c.height, class: "life" }));
      svg.append(sv("text", { x, y: 14, "text-anchor": "middle", class: "who" }, `${who} ${ep}`));
    }
    layerBands.textContent = "";
    for (const n of bands(c)) layerBands.append(n);
    svg.append(layerBands, layerRows);
    ladderSec.append(scroll);
    ladderSec.append(el("div", { cls: "hint", text: "Click an arrow for its bytes. Arrows slant by their real timing where readable; segments that crossed on the wire are drawn crossing." }));
    scroll.scrollTop = 0;
    drawWindow();
    drawList();
    detail.textContent = "";
    detail.append(el("p", { cls: "hint", text: "Click a segment (or press j) to see its header, field by field, and its bytes." }));
    if (frame !== undefined) {
      const i = c.segs.findIndex(s => s[F.frame] === frame);
      if (i >= 0) select(i, true);
    }
  }

  // One segment's details: the byte-order lesson --------------------------------------
  function select(i, scrollTo) {
    const c = current;
    if (!c || i < 0 || i >= c.segs.length) return;
    selected = i;
    const s = c.segs[i];
    if (scrollTo) {
      const y = s[F.y];
      if (y < scroll.scrollTop + 30 || y > scroll.scrollTop + scroll.clientHeight - 30) scroll.scrollTop = Math.max(0, y - scroll.clientHeight / 3);
    }
    drawnRange = [-1, -1];
    drawWindow();
    showDetail(c, s);
  }
  function row(tbody, cells, classes) {
    const tr = el("tr");
    cells.forEach((v, k) => tr.append(el("td", { cls: classes[k] || "", text: String(v) })));
    tbody.append(tr);
  }
  function optionRows(tbody, b, hl, s) {
    let p = 20;
    const shift = s[F.relAck] - s[F.ack];
    while (p < hl) {
      const kind = b[p];
      if (kind === 0) { row(tbody, [`option EOL`, p, hex(b, p, 1), "end of options", ""], ["", "num", "bytes"]); break; }
      if (kind === 1) { row(tbody, ["option NOP", p, hex(b, p, 1), "padding", ""], ["", "num", "bytes"]); p += 1; continue; }
      const len = b[p + 1];
      if (!len || len < 2 || p + len > hl) { row(tbody, [`option ${kind}`, p, hex(b, p, hl - p), "malformed: length runs past the header", ""], ["", "num", "bytes"]); break; }
      let name = `kind ${kind}`, value = "", lesson = "";
      if (kind === 2 && len === 4) { name = "MSS"; value = be(b, p + 2, 2); lesson = `ntohs: the largest segment this side accepts (without ntohs: ${le(b, p + 2, 2)})`; }
      else if (kind === 3 && len === 3) { name = "window scale"; value = `shift ${b[p + 2]}`; lesson = `its later windows are multiplied by 2^${Math.min(b[p + 2], 14)} = ${2 ** Math.min(b[p + 2], 14)}`; }
      else if (kind === 4) { name = "SACK permitted"; lesson = "selective acknowledgements may be used"; }
      else if (kind === 5) {
        name = "SACK blocks";
        const blocks = [];
        for (let q = p + 2; q + 8 <= p + len; q += 8) blocks.push(`${(be(b, q, 4) + shift) >>> 0}-${(be(b, q + 4, 4) + shift) >>> 0}`);
        value = blocks.join(", "); lesson = "ntohl each edge; relative like the ack: bytes received beyond a gap";
      } else if (kind === 8 && len === 10) { name = "timestamps"; value = `TSval ${be(b, p + 2, 4)}, TSecr ${be(b, p + 6, 4)}`; lesson = "ntohl: the sender's clock and the echo of the peer's"; }
      else if (kind === 34) { name = "TCP Fast Open"; value = len === 2 ? "cookie request" : `cookie of ${len - 2} bytes`; }
      row(tbody, [`option ${name}`, p, hex(b, p, len), value, lesson], ["", "num", "bytes", "num"]);
      p += len;
    }
  }
  function headerTable(s, b) {
    const t = el("table", { cls: "header" });
    const cols = el("colgroup");
    for (const c of ["c-field", "c-off", "c-bytes", "c-value", "c-what"]) cols.append(el("col", { cls: c }));
    t.append(cols);
    t.append(el("thead", {}, el("tr", {}, ...["field", "offset", "bytes on the wire (network order)", "value (ntohs/ntohl)", "what it means"].map(h => el("th", { text: h })))));
    const tb = el("tbody");
    const hl = Math.max((b[12] >> 4) * 4, 20);
    const n2 = (i) => `${be(b, i, 2)}`, n4 = (i) => `${be(b, i, 4)}`;
    const cls = ["", "num", "bytes", "num", "lesson"];
    row(tb, ["source port", 0, hex(b, 0, 2), n2(0), `ntohs(sin_port); read as a little-endian u16 without ntohs: ${le(b, 0, 2)}`], cls);
    row(tb, ["destination port", 2, hex(b, 2, 2), n2(2), `htons(${n2(2)}) is what a program puts in sin_port`], cls);
    row(tb, ["sequence number", 4, hex(b, 4, 4), n4(4), `ntohl; relative ${s[F.relSeq]} (without ntohl: ${le(b, 4, 4)})`], cls);
    row(tb, ["acknowledgement number", 8, hex(b, 8, 4), n4(8), s[F.flags] & 0x10 ? `ntohl; relative ${s[F.relAck]}: the next byte expected` : "ACK not set: ignored"], cls);
    row(tb, ["data offset", 12, hex(b, 12, 1), `${b[12] >> 4} words`, `header length ${hl} bytes (${hl - 20} of options)`], cls);
    const fl = be(b, 12, 2) & 0x1ff;
    row(tb, ["flags", 12, hex(b, 12, 2), letters(fl), FLAGS.filter(f => fl & f[0]).map(f => f[2]).concat(fl & 0x10 ? ["ACK"] : []).join(" ")], cls);
    row(tb, ["window", 14, hex(b, 14, 2), n2(14), s[F.winScaled] !== s[F.win] ? `ntohs, then scaled by the window scale option: ${s[F.winScaled]} bytes` : "ntohs: bytes the sender can still receive"], cls);
    row(tb, ["checksum", 16, s[F.rebuilt] ? "not kept" : hex(b, 16, 2), s[F.rebuilt] ? "-" : `0x${hex(b, 16, 2).replace(" ", "")}`, "over a pseudo-header, the header and the payload"], cls);
    row(tb, ["urgent pointer", 18, s[F.rebuilt] ? "not kept" : hex(b, 18, 2), s[F.rebuilt] ? "-" : n2(18), s[F.flags] & 0x20 ? "URG set" : "URG not set: ignored"], cls);
    optionRows(tb, b, Math.min(hl, b.length), s);
    t.append(tb);
    return t;
  }
  function dump(b, start, n) {
    // tcpdump -X: offset, 16 bytes as 8 groups of two, then the printable characters.
    const lines = [];
    for (let i = 0; i < n; i += 16) {
      const chunk = b.slice(start + i, start + Math.min(i + 16, n));
      let hx = "";
      for (let k = 0; k < 16; k += 2) {
        hx += k < chunk.length ? chunk[k].toString(16).padStart(2, "0") : "  ";
        hx += k + 1 < chunk.length ? chunk[k + 1].toString(16).padStart(2, "0") : "  ";
        hx += " ";
      }
      const txt = Array.from(chunk, x => x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : ".").join("");
      lines.push(`0x${i.toString(16).padStart(4, "0")}:  ${hx} ${txt}`);
    }
    return lines.join("\n");
  }
  function showDetail(c, s) {
    detail.textContent = "";
    const fromClient = s[F.fromClient] === 1;
    detail.append(el("h2", { text: `frame ${s[F.frame]} · ${fromClient ? "client → server" : "server → client"} · ${S[s[F.event]]}` }));
    const dl = el("dl", { cls: "meta" });
    const add = (k, v) => { if (v) dl.append(el("dt", { text: k }), el("dd", { text: String(v) })); };
    add("time", `+${s[F.t].toFixed(6)} s`);
    add("annotation", S[s[F.note]]);
    add("client", S[s[F.cpath]]); add("server", S[s[F.spath]]);
    add("caused by", S[s[F.cause]]);
    add("Wireshark analysis", S[s[F.analysis]]);
    if (s[F.crossed].length) add("crossed on the wire", `frame ${s[F.crossed].join(", ")}: sent before that one arrived`);
    if (c.crossedBy.has(s[F.frame])) add("crossed on the wire", `by frame ${c.crossedBy.get(s[F.frame])}, sent before this one arrived`);
    for (const f of findingFrames.get(s[F.frame]) || []) add(`finding (${f.severity})`, `${f.rule}: ${f.what} Fix: ${f.fix}${f.why ? ` Why: ${f.why}` : ""}`);
    detail.append(dl);
    const b = bytesOf(s);
    detail.append(el("h2", { text: "TCP header, field by field" }));
    detail.append(el("p", { cls: "lesson", text: "Multi-byte fields travel most significant byte first (network byte order). A program reads them through sockaddr_in and the header with ntohs/ntohl and writes them with htons/htonl; read as a native integer on a little-endian CPU they come out byte-swapped." }));
    if (s[F.rebuilt]) detail.append(el("p", { cls: "hint", text: "No capture file was read: the header is rebuilt from the decoded fields." }));
    detail.append(headerTable(s, b));
    const hl = Math.max((b[12] >> 4) * 4, 20);
    const have = Math.max(b.length - hl, 0);
    detail.append(el("h2", { text: `payload: ${s[F.len]} bytes` }));
    if (s[F.len] && s[F.rebuilt]) detail.append(el("p", { cls: "hint", text: "not kept (no capture file)" }));
    else if (s[F.len]) {
      if (have < s[F.len]) detail.append(el("p", { cls: "hint", text: `the first ${have} of ${s[F.len]} bytes (the report keeps up to ${M.payloadShown} per segment, and the capture may have cut it)` }));
      detail.append(el("pre", { cls: "dump", id: "payload-dump", text: dump(b, hl, have) }));
    }
    detail.append(el("h2", { text: "header bytes" }));
    detail.append(el("pre", { cls: "dump", id: "header-dump", text: dump(b, 0, Math.min(hl, b.length)) }));
  }

  // Keyboard navigation ---------------------------------------------------------------
  function isChange(s) { return S[s[F.cpath]] !== "" || S[s[F.spath]] !== ""; }
  function step(dir, test) {
    const c = current;
    if (!c) return;
    for (let i = selected + dir; i >= 0 && i < c.segs.length; i += dir) {
      if ((!(filt.flag || filt.state) || segMatches(c.segs[i])) && (!test || test(c.segs[i]))) { select(i, true); return; }
    }
  }
  function nextConn(dir) {
    const i = shown.indexOf(current) + dir;
    if (i >= 0 && i < shown.length) {
      openConn(shown[i].id);
      const top = (i + 1) * ROW;
      if (top < list.scrollTop + ROW || top > list.scrollTop + list.clientHeight - ROW) list.scrollTop = top - ROW;
    }
  }
  document.addEventListener("keydown", ev => {
    if (ev.target.closest && ev.target.closest("input, select, textarea")) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const keys = { j: () => step(1), ArrowDown: () => step(1), k: () => step(-1), ArrowUp: () => step(-1),
      n: () => step(1, isChange), N: () => step(-1, isChange), "]": () => nextConn(1), "[": () => nextConn(-1),
      t: toggleTheme, Escape: () => { selected = -1; drawnRange = [-1, -1]; if (current) drawWindow(); detail.textContent = ""; } };
    const f = keys[ev.key];
    if (f) { f(); ev.preventDefault(); }
  });
  window.addEventListener("beforeprint", () => { if (current) { drawnRange = [-1, -1]; drawWindow(true); } });

  // The page ---------------------------------------------------------------------------
  if (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches) document.documentElement.setAttribute("data-theme", "dark");
  const main = el("main", { cls: "report" });
  const connSec = el("section", { cls: "conns" }, el("h2", { text: "connections" }), listCount, list);
  main.append(connSec, ladderSec, detail);
  document.body.append(header(), bar(), main);
  drawList();
  const want = new URLSearchParams(location.hash.slice(1));
  const start = want.has("conn") ? Number(want.get("conn")) : (conns.length ? conns[0].id : null);
  if (start !== null) openConn(start, want.has("frame") ? Number(want.get("frame")) : undefined);
  document.documentElement.setAttribute("data-ready", "1");
})();
