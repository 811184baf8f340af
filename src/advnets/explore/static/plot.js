// Shared helpers of the explore page: the API, line plots and image tiles on canvases. Plain JS, no libraries.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";

async function api(method, path, body) {
  const init = { method, headers: { "X-Advnets-Token": TOKEN } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json();
  if (!response.ok) {
    const message = data.error || response.statusText;
    setStatus(message);
    throw new Error(message);
  }
  setStatus("");
  return data;
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function fmt(v, digits = 3) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits);
}

// A linear map from [lo, hi] to [a, b].
function scale(lo, hi, a, b) {
  const span = hi - lo || 1;
  return (v) => a + ((v - lo) / span) * (b - a);
}

function line(ctx, xs, ys, sx, sy, style, width = 2, dash = []) {
  ctx.save();
  ctx.strokeStyle = style;
  ctx.lineWidth = width;
  ctx.setLineDash(dash);
  ctx.beginPath();
  let started = false;
  for (let i = 0; i < xs.length; i++) {
    if (ys[i] === null || xs[i] === null) { started = false; continue; }
    const x = sx(xs[i]), y = sy(ys[i]);
    if (started) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    started = true;
  }
  ctx.stroke();
  ctx.restore();
}

// Curves over iterations: series = [{key, color}], rows = [{iteration, key: value}], marks = [{value, label}].
function plotCurves(canvas, rows, series, marks, xKey = "iteration") {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 34;
  ctx.clearRect(0, 0, w, h);
  if (!rows.length) return;
  let lo = Infinity, hi = -Infinity;
  for (const r of rows) for (const s of series) {
    const v = r[s.key];
    if (v !== null && v !== undefined && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  }
  for (const m of marks) { lo = Math.min(lo, m.value); hi = Math.max(hi, m.value); }
  if (!Number.isFinite(lo)) return;
  const margin = 0.05 * (hi - lo || 1);
  lo -= margin; hi += margin;
  const xs = rows.map((r) => r[xKey]);
  const sx = scale(Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1), pad, w - 8);
  const sy = scale(lo, hi, h - 20, 8);
  ctx.fillStyle = "#555";
  ctx.font = "11px sans-serif";
  ctx.fillText(hi.toFixed(2), 2, 14);
  ctx.fillText(lo.toFixed(2), 2, h - 22);
  ctx.fillText(`${xKey} ${xs[xs.length - 1]}`, w - 120, h - 4);
  for (const m of marks) {
    line(ctx, [xs[0], xs[xs.length - 1]], [m.value, m.value], sx, sy, "#888", 1, [5, 4]);
    ctx.fillText(m.label, pad + 2, sy(m.value) - 3);
  }
  for (const s of series) line(ctx, xs, rows.map((r) => (r[s.key] === undefined ? null : r[s.key])), sx, sy, s.color, 1.5);
}

function decodeImages(images) {
  const bytes = Uint8Array.from(atob(images.pixels), (c) => c.charCodeAt(0));
  return { ...images, bytes };
}

// Paint image i of a decoded batch at (x, y), each pixel as a zoom x zoom square.
function paintImage(ctx, imgs, i, x, y, zoom) {
  const { h, w, c, bytes } = imgs;
  const data = ctx.createImageData(w * zoom, h * zoom);
  const base = i * h * w * c;
  for (let r = 0; r < h * zoom; r++) {
    for (let q = 0; q < w * zoom; q++) {
      const src = base + (Math.floor(r / zoom) * w + Math.floor(q / zoom)) * c;
      const dst = (r * w * zoom + q) * 4;
      data.data[dst] = bytes[src];
      data.data[dst + 1] = bytes[src + (c > 1 ? 1 : 0)];
      data.data[dst + 2] = bytes[src + (c > 2 ? 2 : 0)];
      data.data[dst + 3] = 255;
    }
  }
  ctx.putImageData(data, x, y);
}

// A row (or grid of `columns`) of images filling the canvas.
function paintTiles(canvas, images, columns) {
  const imgs = decodeImages(images);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const cols = columns || imgs.n;
  const rows = Math.ceil(imgs.n / cols);
  const zoom = Math.max(1, Math.floor(Math.min(canvas.width / (cols * imgs.w), canvas.height / (rows * imgs.h))));
  for (let i = 0; i < imgs.n; i++) {
    paintImage(ctx, imgs, i, (i % cols) * imgs.w * zoom, Math.floor(i / cols) * imgs.h * zoom, zoom);
  }
  canvas.dataset.painted = String(imgs.n);
  return { zoom, cols, imgs };
}

// Pointer strokes on a canvas: onStroke(x, y) in canvas pixels while the button is down, onEnd() after.
function strokes(canvas, onStroke, onEnd) {
  let down = false;
  const at = (e) => {
    const box = canvas.getBoundingClientRect();
    return [((e.clientX - box.left) * canvas.width) / box.width, ((e.clientY - box.top) * canvas.height) / box.height];
  };
  canvas.addEventListener("pointerdown", (e) => { down = true; onStroke(...at(e)); });
  canvas.addEventListener("pointermove", (e) => { if (down) onStroke(...at(e)); });
  const end = () => { if (down) { down = false; if (onEnd) onEnd(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointerleave", end);
}
