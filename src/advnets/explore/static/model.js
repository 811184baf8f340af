// The model panel: a trained G (and D) from a run or a shipped model -- samples, Figure 2's neighbours,
// Figure 3's paths, z sliders, D's verdict on a drawing, inpainting, and a still-training run's progress.
"use strict";

const model = { info: null, grid: null, a: null, b: null, path: null, metrics: [], lastStep: -1, timer: null };

function selectedClass() {
  const box = document.getElementById("class-box");
  if (box.hidden) return {};
  const v = document.getElementById("class").value;
  return v === "" ? {} : { class: parseInt(v, 10) };
}

function gridSeed() {
  return Math.max(0, parseInt(document.getElementById("grid-seed").value, 10) || 0);
}

async function loadGrid() {
  const out = await api("POST", "/api/model/grid", { seed: gridSeed(), n: 64, ...selectedClass() });
  model.grid = out.images;
  model.a = model.b = null;
  paintGrid();
}

function paintGrid() {
  const canvas = document.getElementById("grid");
  const { zoom, imgs } = paintTiles(canvas, model.grid, 8);
  const ctx = canvas.getContext("2d");
  ctx.lineWidth = 2;
  for (const [which, color] of [[model.a, "#e53935"], [model.b, "#fb8c00"]]) {
    if (which === null) continue;
    ctx.strokeStyle = color;
    ctx.strokeRect((which % 8) * imgs.w * zoom + 1, Math.floor(which / 8) * imgs.h * zoom + 1, imgs.w * zoom - 2, imgs.h * zoom - 2);
  }
  model.zoom = zoom;
}

async function showNeighbours(index) {
  const out = await api("POST", "/api/model/neighbours", { seed: gridSeed(), index, ...selectedClass() });
  paintTiles(document.getElementById("neighbours"), joinImages(out.sample, out.images));
  document.getElementById("ratio").textContent =
    `sample ${index}: nearest training image at distance ${fmt(out.distance, 2)}; held-out images' median ` +
    `${fmt(out.heldout_median, 2)}; ratio ${fmt(out.ratio, 2)} — ` +
    (out.memorised ? "closer than unseen data: possibly memorised" : "no sign of memorisation") +
    " (left: the sample; then its nearest training images)";
}

// Two encoded batches of one shape as one batch (for a single row of tiles).
function joinImages(first, second) {
  const a = atob(first.pixels), b = atob(second.pixels);
  return { ...first, n: first.n + second.n, pixels: btoa(a + b) };
}

async function showPath() {
  if (model.a === null || model.b === null) return;
  const steps = Math.max(2, Math.min(32, parseInt(document.getElementById("path-steps").value, 10) || 10));
  const out = await api("POST", "/api/model/path", {
    seed: gridSeed(), a: model.a, b: model.b, steps, spherical: document.getElementById("spherical").checked,
    ...selectedClass(),
  });
  model.path = out.images;
  paintTiles(document.getElementById("path"), out.images);
  const slider = document.getElementById("path-slider");
  slider.max = String(out.images.n - 1);
  showPathFrame();
}

function showPathFrame() {
  if (!model.path) return;
  const i = parseInt(document.getElementById("path-slider").value, 10);
  const imgs = decodeImages(model.path);
  const canvas = document.getElementById("path-frame");
  const zoom = Math.floor(canvas.width / imgs.w);
  paintImage(canvas.getContext("2d"), imgs, i, 0, 0, zoom);
}

let moveTimer = null;
function moveSample() {
  clearTimeout(moveTimer);
  moveTimer = setTimeout(async () => {
    if (model.a === null) return;
    const amounts = [...document.querySelectorAll("#dir-sliders input")].map((s) => parseFloat(s.value));
    const out = await api("POST", "/api/model/move", { seed: gridSeed(), index: model.a, amounts, ...selectedClass() });
    const imgs = decodeImages(out.images);
    const canvas = document.getElementById("moved");
    paintImage(canvas.getContext("2d"), imgs, 0, 0, 0, Math.floor(canvas.width / imgs.w));
  }, 30);
}

function setupSliders(n) {
  const box = document.getElementById("dir-sliders");
  box.innerHTML = "";
  for (let j = 0; j < n; j++) {
    const label = document.createElement("label");
    label.textContent = `direction ${j + 1} `;
    const input = document.createElement("input");
    Object.assign(input, { type: "range", min: "-3", max: "3", step: "0.1", value: "0" });
    input.addEventListener("input", moveSample);
    label.appendChild(input);
    box.appendChild(label);
  }
}

function gridClick(e) {
  if (!model.grid) return;
  const canvas = document.getElementById("grid");
  const box = canvas.getBoundingClientRect();
  const x = ((e.clientX - box.left) * canvas.width) / box.width, y = ((e.clientY - box.top) * canvas.height) / box.height;
  const tile = 28 * model.zoom;
  const col = Math.floor(x / tile), row = Math.floor(y / tile);
  if (col > 7 || row > 7) return;
  const index = row * 8 + col;
  if (e.shiftKey && model.a !== null) {
    model.b = index;
    paintGrid();
    showPath();
  } else {
    model.a = index;
    model.b = null;
    paintGrid();
    for (const s of document.querySelectorAll("#dir-sliders input")) s.value = "0";
    showNeighbours(index);
    moveSample();
  }
}

// ---------------------------------------------------------------- drawing and D's verdict

function canvasPixels(canvas, h, w) {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const bh = canvas.height / h, bw = canvas.width / w, out = [];
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      let sum = 0, count = 0;
      for (let y = Math.floor(r * bh); y < Math.floor((r + 1) * bh); y++) {
        for (let x = Math.floor(c * bw); x < Math.floor((c + 1) * bw); x++) { sum += data[(y * canvas.width + x) * 4]; count++; }
      }
      out.push(Math.min(1, sum / count / 255));
    }
  }
  return out;
}

function clearDrawing() {
  const canvas = document.getElementById("draw");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  document.getElementById("verdict").textContent = "draw something";
}

async function verdict() {
  const [, h, w] = model.info.image_shape;
  const pixels = canvasPixels(document.getElementById("draw"), h, w);
  const out = await api("POST", "/api/model/verdict", { pixels, ...selectedClass() });
  const p = out.d_real;
  document.getElementById("verdict").textContent =
    `D(x) = ${fmt(p, 3)}: D judges it ${p >= 0.5 ? "real" : "generated"}`;
  paintTiles(document.getElementById("draw-neighbours"), out.images);
}

function setupDrawing() {
  const canvas = document.getElementById("draw");
  const ctx = canvas.getContext("2d");
  clearDrawing();
  let last = null;
  strokes(canvas, (x, y) => {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 22;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(...(last || [x, y]));
    ctx.lineTo(x, y);
    ctx.stroke();
    last = [x, y];
  }, () => { last = null; if (model.info && model.info.has_discriminator) verdict(); });
  document.getElementById("clear-draw").addEventListener("click", clearDrawing);
}

// ---------------------------------------------------------------- inpainting

const inpaint = { original: null, mask: null };

function paintMask() {
  const canvas = document.getElementById("mask");
  const imgs = decodeImages(inpaint.original);
  const zoom = Math.floor(canvas.width / imgs.w);
  const ctx = canvas.getContext("2d");
  paintImage(ctx, imgs, 0, 0, 0, zoom);
  ctx.fillStyle = "rgba(229,57,53,0.55)";
  for (let i = 0; i < inpaint.mask.length; i++) {
    if (inpaint.mask[i]) ctx.fillRect((i % imgs.w) * zoom, Math.floor(i / imgs.w) * zoom, zoom, zoom);
  }
}

async function inpaintCall(k) {
  const index = Math.max(0, parseInt(document.getElementById("inpaint-index").value, 10) || 0);
  const out = await api("POST", "/api/model/inpaint", { index, mask: inpaint.mask, k, seed: 0 });
  return out;
}

function setupInpaint() {
  const [, h, w] = model.info.image_shape;
  inpaint.mask = new Array(h * w).fill(0);
  document.getElementById("inpaint-load").addEventListener("click", async () => {
    inpaint.mask.fill(0);
    inpaint.original = (await inpaintCall(1)).original;
    paintMask();
  });
  document.getElementById("inpaint-go").addEventListener("click", async () => {
    paintTiles(document.getElementById("completions"), (await inpaintCall(6)).images);
  });
  const canvas = document.getElementById("mask");
  strokes(canvas, (x, y) => {
    if (!inpaint.original) return;
    const zoom = canvas.width / w;
    const c = Math.floor(x / zoom), r = Math.floor(y / zoom);
    for (let dr = -1; dr <= 1; dr++) for (let dc = -1; dc <= 1; dc++) {
      if (r + dr >= 0 && r + dr < h && c + dc >= 0 && c + dc < w) inpaint.mask[(r + dr) * w + c + dc] = 1;
    }
    paintMask();
  });
  document.getElementById("inpaint-load").click();
}

// ---------------------------------------------------------------- a run's progress

async function pollProgress() {
  try {
    const out = await api("GET", `/api/model/progress?after=${model.lastStep}`);
    model.metrics.push(...out.rows);
    if (out.rows.length) model.lastStep = out.rows[out.rows.length - 1].step;
    document.getElementById("model-step").textContent = out.step;
    plotCurves(document.getElementById("model-curves"), model.metrics.slice(-2000),
      [{ key: "d_loss", color: "#1565c0" }, { key: "g_loss", color: "#2e7d32" }], [], "step");
    if (out.reloaded && model.info.condition !== "inpaint") loadGrid();
  } catch (e) { /* shown in the status line */ }
}

// ---------------------------------------------------------------- set-up

function switchTab(name) {
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.tab === name);
  document.getElementById("panel-toy").hidden = name !== "toy";
  document.getElementById("panel-model").hidden = name !== "model";
  if (name === "model" && toy.playing) setPlaying(false);
}

async function setupModel() {
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => switchTab(t.dataset.tab));
  let info;
  try {
    const response = await fetch("/api/model", { headers: { "X-Advnets-Token": TOKEN } });
    if (!response.ok) return; // no model loaded: the toys only
    info = await response.json();
  } catch (e) { return; }
  model.info = info;
  document.getElementById("tab-model").disabled = false;
  document.getElementById("model-name").textContent =
    `${info.name} (step ${info.step}; ${info.training_images} training images for the neighbours)`;
  if (info.classes) {
    const select = document.getElementById("class");
    select.innerHTML = '<option value="">one per row</option>' +
      [...Array(info.classes).keys()].map((c) => `<option value="${c}">${c}</option>`).join("");
    document.getElementById("class-box").hidden = false;
    select.addEventListener("change", loadGrid);
  }
  setupSliders(info.directions);
  setupDrawing();
  document.getElementById("new-grid").addEventListener("click", loadGrid);
  document.getElementById("grid").addEventListener("click", gridClick);
  document.getElementById("spherical").addEventListener("change", showPath);
  document.getElementById("path-steps").addEventListener("change", showPath);
  document.getElementById("path-slider").addEventListener("input", showPathFrame);
  if (info.condition === "inpaint") {
    document.getElementById("inpaint-box").hidden = false;
    setupInpaint();
  } else {
    loadGrid();
  }
  if (info.run) {
    document.getElementById("progress-box").hidden = false;
    pollProgress();
    model.timer = setInterval(pollProgress, 2000);
  }
  if (new URLSearchParams(location.search).get("tab") === "model") switchTab("model");
}

document.addEventListener("DOMContentLoaded", setupModel);
