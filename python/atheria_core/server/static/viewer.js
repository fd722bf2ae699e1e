// Atheria live viewer: plain JS, no build step, no external resources.
// Frames arrive as binary WebSocket messages (48-byte header, then float32 data;
// the layout is documented in atheria_core/server/protocol.py and docs/server.md).
"use strict";

const HEADER_BYTES = 48;
const MAX_ANALYSIS_POINTS = 600;
const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  status: null,
  grid: 0,
  // viewport: centre in cells and zoom in canvas pixels per cell
  cx: 0, cy: 0, zoom: 1, fitted: true,
  viz: "density", channel: 0,
  framesShown: 0,
  lastFrame: null,
  analysis: [],
  pendingView: null,
  reconnectDelay: 500,
  msgId: 1,
};

// ------------------------------------------------------------------ colour maps
function viridisLike(t) {
  // polynomial fit of viridis (t in [0, 1]) -> [r, g, b] in [0, 255]
  const r = 0.2777 + t * (0.1050 + t * (-0.3308 + t * (-4.6342 + t * (6.2282 + t * (4.7764 - 5.4354 * t)))));
  const g = 0.0054 + t * (1.4046 + t * (0.2148 + t * (-5.7991 + t * (14.1799 + t * (-13.7451 + 4.6459 * t)))));
  const b = 0.3341 + t * (1.3846 + t * (0.0950 + t * (-19.3324 + t * (56.6906 + t * (-65.3530 + 26.3124 * t)))));
  return [r, g, b].map((v) => Math.max(0, Math.min(255, Math.round(v * 255))));
}
function cyclic(t) {
  // hue wheel for phase maps, so -pi and pi share a colour
  const a = 2 * Math.PI * t;
  return [0, 2, 4].map((k) => Math.round(127.5 + 127.5 * Math.cos(a - (k * Math.PI) / 3)));
}
function makeLut(fn) {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) lut.set(fn(i / 255), i * 3);
  return lut;
}
const LUTS = { linear: makeLut(viridisLike), cyclic: makeLut(cyclic) };

// ------------------------------------------------------------------ frames
function parseFrame(buf) {
  const dv = new DataView(buf);
  const magic = String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3));
  if (magic !== "ATHF" || dv.getUint8(4) !== 1) throw new Error("not an atheria frame");
  const f = {
    channels: dv.getUint8(5), viz: dv.getUint8(6), stride: dv.getUint8(7),
    step: Number(dv.getBigUint64(8, true)),
    x0: dv.getUint32(16, true), y0: dv.getUint32(20, true),
    width: dv.getUint32(24, true), height: dv.getUint32(28, true),
    min: dv.getFloat32(32, true), max: dv.getFloat32(36, true), seq: dv.getUint32(40, true),
  };
  f.data = new Float32Array(buf, HEADER_BYTES, f.width * f.height * f.channels);
  return f;
}

function frameToImage(f) {
  const img = new ImageData(f.width, f.height);
  const px = img.data;
  const n = f.width * f.height;
  const span = f.max - f.min;
  const scale = span > 0 ? 1 / span : 0;
  if (f.channels === 1) {
    const name = (state.status && state.status.viz_types[f.viz]) || "";
    const lut = name === "phase" ? LUTS.cyclic : LUTS.linear;
    for (let i = 0; i < n; i++) {
      const v = f.data[i];
      const t = Number.isFinite(v) ? (v - f.min) * scale : 0;
      const k = Math.max(0, Math.min(255, (t * 255) | 0)) * 3;
      px[4 * i] = lut[k]; px[4 * i + 1] = lut[k + 1]; px[4 * i + 2] = lut[k + 2]; px[4 * i + 3] = 255;
    }
  } else {
    // RGB maps (holographic): values already in [0, 1] are shown as they are, others are stretched
    const inUnit = f.min >= 0 && f.max <= 1;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) {
        const v = f.data[3 * i + c];
        const t = inUnit ? v : (v - f.min) * scale;
        px[4 * i + c] = Number.isFinite(t) ? Math.round(255 * t) : 0;
      }
      px[4 * i + 3] = 255;
    }
  }
  return img;
}

const offscreen = document.createElement("canvas");
function drawFrame(f) {
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  offscreen.width = f.width; offscreen.height = f.height;
  offscreen.getContext("2d").putImageData(frameToImage(f), 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const [sx, sy] = cellToScreen(f.x0, f.y0);
  ctx.drawImage(offscreen, sx, sy, f.width * f.stride * state.zoom, f.height * f.stride * state.zoom);
  state.framesShown++;
  state.lastFrame = f;
  canvas.dataset.frames = String(state.framesShown);
  canvas.dataset.step = String(f.step);
  $("stat-range").textContent = `${f.min.toPrecision(4)} … ${f.max.toPrecision(4)}`;
  setStep(f.step);
}

// ------------------------------------------------------------------ viewport (native ROI)
function fit() {
  const c = $("canvas");
  state.zoom = c.width / Math.max(1, state.grid);
  state.cx = state.grid / 2; state.cy = state.grid / 2;
  state.fitted = true;
  sendView();
}
function cellToScreen(x, y) {
  const c = $("canvas");
  return [(x - state.cx) * state.zoom + c.width / 2, (y - state.cy) * state.zoom + c.height / 2];
}
function screenToCell(px, py) {
  const c = $("canvas");
  return [state.cx + (px - c.width / 2) / state.zoom, state.cy + (py - c.height / 2) / state.zoom];
}
function visibleRoi() {
  const c = $("canvas");
  const g = state.grid;
  const [ax, ay] = screenToCell(0, 0);
  const [bx, by] = screenToCell(c.width, c.height);
  const x0 = Math.max(0, Math.floor(ax)), y0 = Math.max(0, Math.floor(ay));
  const x1 = Math.min(g, Math.ceil(bx)), y1 = Math.min(g, Math.ceil(by));
  if (x0 >= x1 || y0 >= y1) return [0, 0, Math.min(1, g), Math.min(1, g)];
  if (x0 === 0 && y0 === 0 && x1 === g && y1 === g) return null;
  return [x0, y0, x1, y1];
}
let viewTimer = null;
function sendView() {
  // at most one view message per 50 ms while the user drags or zooms
  if (viewTimer) return;
  viewTimer = setTimeout(() => {
    viewTimer = null;
    if (!state.grid) return;
    const roi = visibleRoi();
    $("roi-info").textContent = roi ? `ROI x ${roi[0]}–${roi[2]}, y ${roi[1]}–${roi[3]} (of ${state.grid}²)`
      : `whole grid ${state.grid}²`;
    send({ action: "view", viz: state.viz, roi: roi, channel: state.channel });
  }, 50);
}

// ------------------------------------------------------------------ messages
function send(obj) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  obj.id = state.msgId++;
  state.ws.send(JSON.stringify(obj));
}
function setStep(step) { $("stat-step").textContent = String(step); }
function fmt(v, digits) { return (typeof v === "number" && v > 0) ? v.toFixed(digits) : "–"; }

function applyStatus(st) {
  const gridChanged = st.grid_size !== state.grid;
  state.status = st;
  state.grid = st.grid_size;
  const en = $("engine-name");
  en.textContent = st.engine ? `engine: ${st.engine}${st.engine_kind ? " (" + st.engine_kind + ")" : ""}` : "engine: –";
  en.className = "badge " + (st.engine || "");
  $("engine-route").textContent = st.model_route ? `route: ${st.model_route}` : "";
  $("engine-reason").textContent = st.fallback_reason ? `fallback: ${st.fallback_reason}` : "";
  $("btn-native").classList.toggle("active", st.engine === "native");
  $("btn-python").classList.toggle("active", st.engine === "python");
  $("btn-play").classList.toggle("active", !!st.running);
  $("btn-pause").classList.toggle("active", !st.running);
  $("stat-fps").textContent = st.running ? fmt(st.fps, 1) : "paused";
  $("stat-ms").textContent = fmt(st.ms_per_step, 3);
  $("stat-matter").textContent = String(st.matter_count);
  for (const k of ["native", "python"]) {
    const c = (st.compare || {})[k] || {};
    $(`cmp-${k}-fps`).textContent = fmt(c.fps, 1);
    $(`cmp-${k}-ms`).textContent = fmt(c.ms_per_step, 3);
  }
  if (st.error) message(st.error);
  fillSelect($("viz-select"), st.viz_types, state.viz);
  $("channel").max = String(Math.max(0, st.d_state - 1));
  if (st.experiments) fillSelect($("exp-select"), st.experiments, st.experiment);
  const feat = st.features || {};
  for (const id of ["btn-snap-save", "btn-snap-load", "snap-select"]) $(id).disabled = !feat.snapshots;
  $("btn-rewind").disabled = !feat.history;
  $("snap-note").textContent = feat.snapshots ? `history: ${st.history_len || 0} state(s) kept`
    : "snapshots/history: not available for this engine";
  if (Array.isArray(st.snapshots)) fillSelect($("snap-select"), st.snapshots, $("snap-select").value);
  $("analysis-note").textContent = feat.analysis ? "" : "analysis: not available for this engine";
  if (gridChanged && st.grid_size) fit();
}

function fillSelect(sel, items, current) {
  const have = Array.from(sel.options).map((o) => o.value).join("\n");
  if (have !== items.join("\n")) {
    sel.innerHTML = "";
    for (const it of items) {
      const o = document.createElement("option");
      o.value = it; o.textContent = it;
      sel.appendChild(o);
    }
  }
  if (current && items.includes(current) && document.activeElement !== sel) sel.value = current;
}

function message(text) { $("message").textContent = text; }

function onText(msg) {
  if (msg.type === "hello" || msg.type === "status") {
    applyStatus(msg.status);
    setStep(msg.status.step);
    if (msg.type === "hello") state.analysis = [];
    addAnalysis(msg.analysis || []);
    if (msg.frames) $("stat-frames").textContent = `${state.framesShown} / ${msg.frames.dropped}`;
  } else if (msg.type === "ok") {
    if (msg.status) { applyStatus(msg.status); setStep(msg.status.step); }
    if (["reset", "load", "snapshot_load"].includes(msg.action)) state.analysis = [];
    if (msg.action === "rewind" && msg.status) {
      state.analysis = state.analysis.filter((p) => p.step <= msg.status.step);
      drawAnalysis();
    }
    if (msg.action === "snapshot_save" && msg.result) message(`snapshot saved: ${msg.result.snapshot}`);
    if (msg.action !== "view" && msg.action !== "snapshot_save") message(`${msg.action}: ok`);
  } else if (msg.type === "error") {
    message(`error: ${msg.error}`);
  }
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => {
    $("conn").textContent = "connected"; $("conn").className = "badge native";
    state.reconnectDelay = 500;
    sendView();
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") onText(JSON.parse(ev.data));
    else { try { drawFrame(parseFrame(ev.data)); } catch (e) { message(String(e)); } }
  };
  ws.onclose = () => {
    $("conn").textContent = "disconnected"; $("conn").className = "badge off";
    state.ws = null;
    setTimeout(connect, state.reconnectDelay);
    state.reconnectDelay = Math.min(5000, state.reconnectDelay * 2);
  };
}

// ------------------------------------------------------------------ analysis plot
function addAnalysis(points) {
  for (const p of points) state.analysis.push(p);
  if (state.analysis.length > MAX_ANALYSIS_POINTS) state.analysis.splice(0, state.analysis.length - MAX_ANALYSIS_POINTS);
  drawAnalysis();
}
function drawAnalysis() {
  const c = $("analysis-plot");
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const pts = state.analysis;
  if (pts.length < 2) return;
  const s0 = pts[0].step, s1 = pts[pts.length - 1].step || s0 + 1;
  const xOf = (s) => 30 + (c.width - 40) * (s - s0) / Math.max(1, s1 - s0);
  const line = (key, color, lo, hi) => {
    ctx.strokeStyle = color; ctx.beginPath();
    pts.forEach((p, i) => {
      const y = c.height - 15 - (c.height - 25) * (hi > lo ? (p[key] - lo) / (hi - lo) : 0.5);
      if (i) ctx.lineTo(xOf(p.step), y); else ctx.moveTo(xOf(p.step), y);
    });
    ctx.stroke();
  };
  const es = pts.map((p) => p.energy);
  let eLo = Math.min(...es), eHi = Math.max(...es);
  // float32 round-off must not look like a trend: the energy axis spans at least 0.1 % of its value
  const minSpan = 1e-3 * Math.max(Math.abs(eHi), Math.abs(eLo), 1e-30);
  if (eHi - eLo < minSpan) { const mid = (eHi + eLo) / 2; eLo = mid - minSpan / 2; eHi = mid + minSpan / 2; }
  line("energy", "#6cc3ff", eLo, eHi);
  line("coherence", "#ffb35c", 0, 1);
  ctx.fillStyle = "#8a90a0"; ctx.font = "10px sans-serif";
  ctx.fillText(`E ${eHi.toPrecision(6)}`, 2, 10);
  ctx.fillText(`E ${eLo.toPrecision(6)}`, 2, c.height - 17);
  ctx.fillText(`step ${s0}`, 30, c.height - 3);
  ctx.fillText(`${s1}`, c.width - 40, c.height - 3);
  ctx.fillText("coh. 0…1", c.width - 60, 10);
}

// ------------------------------------------------------------------ UI wiring
function bind() {
  $("btn-play").onclick = () => send({ action: "play" });
  $("btn-pause").onclick = () => send({ action: "pause" });
  $("btn-step").onclick = () => send({ action: "step", n: 1 });
  $("btn-reset").onclick = () => send({ action: "reset" });
  $("btn-load").onclick = () => send({ action: "load", experiment: $("exp-select").value });
  $("btn-native").onclick = () => send({ action: "engine", engine: "native" });
  $("btn-python").onclick = () => send({ action: "engine", engine: "python" });
  $("btn-fit").onclick = fit;
  $("btn-snap-save").onclick = () => send({ action: "snapshot_save" });
  $("btn-snap-load").onclick = () => { if ($("snap-select").value) send({ action: "snapshot_load", name: $("snap-select").value }); };
  $("btn-rewind").onclick = () => send({ action: "rewind", n: 1 });
  $("viz-select").onchange = (e) => { state.viz = e.target.value; sendView(); };
  $("channel").onchange = (e) => { state.channel = Math.max(0, parseInt(e.target.value, 10) || 0); sendView(); };

  const canvas = $("canvas");
  let drag = null;
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    if (!state.grid) return;
    const r = canvas.getBoundingClientRect();
    const [mx, my] = screenToCell(e.clientX - r.left, e.clientY - r.top);
    const minZoom = canvas.width / state.grid, maxZoom = 64;
    state.zoom = Math.max(minZoom, Math.min(maxZoom, state.zoom * (e.deltaY < 0 ? 1.25 : 0.8)));
    // keep the cell under the cursor where it is
    state.cx = mx - (e.clientX - r.left - canvas.width / 2) / state.zoom;
    state.cy = my - (e.clientY - r.top - canvas.height / 2) / state.zoom;
    state.fitted = false;
    if (state.lastFrame) drawFrame(state.lastFrame);
    sendView();
  }, { passive: false });
  canvas.addEventListener("mousedown", (e) => { drag = { x: e.clientX, y: e.clientY, cx: state.cx, cy: state.cy, moved: false }; });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
    if (!drag.moved) return;
    state.cx = drag.cx - dx / state.zoom; state.cy = drag.cy - dy / state.zoom;
    state.fitted = false;
    if (state.lastFrame) drawFrame(state.lastFrame);
    sendView();
  });
  window.addEventListener("mouseup", (e) => {
    if (drag && !drag.moved && e.target === canvas) applyToolAt(e);
    drag = null;
  });
}

function applyToolAt(e) {
  const tool = $("tool-select").value;
  if (!tool || !state.grid) return;
  const r = $("canvas").getBoundingClientRect();
  const [x, y] = screenToCell(e.clientX - r.left, e.clientY - r.top);
  if (x < 0 || y < 0 || x >= state.grid || y >= state.grid) return;
  const params = { x: Math.floor(x), y: Math.floor(y) };
  const radius = parseFloat($("tool-radius").value), strength = parseFloat($("tool-strength").value);
  if (Number.isFinite(radius) && radius > 0) params.radius = Math.min(radius, state.grid);
  if (Number.isFinite(strength)) params.strength = tool === "collapse" ? Math.max(0, Math.min(1, strength)) : strength;
  send({ action: "tool", tool: tool, params: params });
}

async function start() {
  bind();
  try {
    const r = await fetch("/api/experiments");
    const j = await r.json();
    fillSelect($("exp-select"), j.experiments, j.current);
  } catch (e) { message(`cannot list experiments: ${e}`); }
  connect();
}
start();
