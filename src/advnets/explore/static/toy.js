// The toy panel: Algorithm 1 trained live by the server (advnets.toy's step functions), drawn as Figure 1
// (1-D) or as points, D's heat map and G's transport of a z grid (2-D).
"use strict";

const toy = { playing: false, view: null, drawing: false, points: [], frameTimes: [] };
const DRAW_BOX = [-4.4, 4.4, -4.4, 4.4];
const SETTINGS = ["k", "g_steps_per_d_step", "rule", "g_loss", "optimizer", "lr", "g_lr", "batch_size", "seed"];
const NUMERIC = new Set(["k", "g_steps_per_d_step", "lr", "g_lr", "batch_size", "seed"]);
const INTEGER = new Set(["k", "g_steps_per_d_step", "batch_size", "seed"]);

function showToy(view) {
  toy.view = view;
  document.body.dataset.toyViews = String(Number(document.body.dataset.toyViews || 0) + 1);
  document.getElementById("iterations").textContent = view.iterations;
  document.getElementById("d-updates").textContent = view.d_updates;
  document.getElementById("g-updates").textContent = view.g_updates;
  const last = view.history[view.history.length - 1] || {};
  document.getElementById("value").textContent = fmt(last.v);
  document.getElementById("jsd-box").hidden = view.dim !== 1;
  document.getElementById("modes-box").hidden = view.dim !== 2;
  const lost = document.getElementById("mode-lost");
  if (view.dim === 1) {
    document.getElementById("jsd").textContent = fmt(view.jsd, 4);
    document.getElementById("cg").textContent = fmt(view.c_g, 4);
    lost.hidden = true;
  } else {
    document.getElementById("modes").textContent = `${view.modes_covered} of ${view.n_modes}`;
    lost.hidden = view.lost.length === 0;
    lost.textContent = `mode${view.lost.length > 1 ? "s" : ""} lost: ${view.lost.join(", ")}`;
  }
  for (const name of SETTINGS) {
    const el = document.getElementById(name);
    if (document.activeElement !== el) el.value = view.settings[name];
  }
  document.getElementById("dataset").value = view.settings.dataset;
  if (!toy.drawing) (view.dim === 1 ? draw1d : draw2d)(view);
  plotCurves(
    document.getElementById("curves"),
    view.history,
    [{ key: "v", color: "#6a1b9a" }, { key: "c_g", color: "#ef6c00" }],
    [{ value: view.neg_log4, label: "−log 4" }],
  );
  plotCurves(
    document.getElementById("loss-curves"),
    view.history,
    [{ key: "d_loss", color: "#1565c0" }, { key: "g_loss", color: "#2e7d32" }],
    [],
  );
}

function draw1d(v) {
  const canvas = document.getElementById("toy-canvas");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, top = 300;
  ctx.clearRect(0, 0, w, h);
  const sx = scale(v.x[0], v.x[v.x.length - 1], 20, w - 20);
  const peak = Math.max(...v.p_data, ...v.p_g);
  const sd = scale(0, peak * 1.05, top, 10);
  const s01 = scale(0, 1.05, top, 10);
  line(ctx, [v.x[0], v.x[v.x.length - 1]], [0.5, 0.5], sx, s01, "#bbb", 1, [2, 3]);
  line(ctx, v.x, v.p_data, sx, sd, "#000", 2, [2, 3]);
  line(ctx, v.x, v.p_g, sx, sd, "#2e7d32", 2);
  line(ctx, v.x, v.d_star, sx, s01, "#e57373", 1.5);
  line(ctx, v.x, v.d, sx, s01, "#1565c0", 2, [8, 5]);
  ctx.strokeStyle = "#000";
  ctx.beginPath(); ctx.moveTo(20, top + 30); ctx.lineTo(w - 20, top + 30); ctx.stroke();
  ctx.beginPath(); ctx.moveTo(20, h - 20); ctx.lineTo(w - 20, h - 20); ctx.stroke();
  if (v.z) {
    const sz = scale(-2, 2, w / 2 - 150, w / 2 + 150);
    ctx.strokeStyle = "#555";
    ctx.lineWidth = 1;
    for (let i = 0; i < v.z.length; i++) {
      ctx.beginPath(); ctx.moveTo(sz(v.z[i]), h - 20); ctx.lineTo(sx(v.gz[i]), top + 30); ctx.stroke();
    }
  }
  ctx.fillStyle = "#444";
  ctx.font = "12px sans-serif";
  ctx.fillText("x", 6, top + 34);
  ctx.fillText("z", 6, h - 16);
  ctx.fillText(`${v.x[0].toFixed(1)}`, 20, top + 16);
  ctx.fillText(`${v.x[v.x.length - 1].toFixed(1)}`, w - 50, top + 16);
  canvas.dataset.dSum = v.d.reduce((a, b) => a + b, 0).toFixed(6);
  document.getElementById("toy-legend").innerHTML =
    "p<sub>data</sub> black dotted · p<sub>g</sub> green · D(x) blue dashed · " +
    "D* = p<sub>data</sub>/(p<sub>data</sub>+p<sub>g</sub>) red · lines: x = G(z), z uniform below (Figure 1)";
}

function boxScales(canvas, box) {
  const side = Math.min(canvas.width, canvas.height);
  return [scale(box[0], box[1], 0, side), scale(box[2], box[3], side, 0), side];
}

function draw2d(v) {
  const canvas = document.getElementById("toy-canvas");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const [sx, sy, side] = boxScales(canvas, v.box);
  const n = v.heat.length, cell = side / n;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const d = v.heat[i][j];
      const t = 2 * d - 1; // > 0: judged real (blue), < 0: judged fake (pink)
      const rgb = t > 0 ? [255 - 110 * t, 255 - 70 * t, 255] : [255, 255 + 90 * t, 255 + 60 * t];
      ctx.fillStyle = `rgb(${rgb.map(Math.round).join(",")})`;
      ctx.fillRect(j * cell, side - (i + 1) * cell, cell + 1, cell + 1);
    }
  }
  ctx.strokeStyle = "rgba(90,90,90,0.45)";
  ctx.lineWidth = 1;
  for (const path of v.z_grid) line(ctx, path.map((p) => p[0]), path.map((p) => p[1]), sx, sy, "rgba(90,90,90,0.5)", 1);
  const dots = (pts, color, r) => {
    ctx.fillStyle = color;
    for (const p of pts) { ctx.beginPath(); ctx.arc(sx(p[0]), sy(p[1]), r, 0, 2 * Math.PI); ctx.fill(); }
  };
  dots(v.real, "rgba(0,0,0,0.55)", 1.6);
  dots(v.fake, "rgba(46,125,50,0.8)", 2);
  ctx.strokeStyle = "#c62828";
  ctx.lineWidth = 2.5;
  for (const i of v.lost) {
    const [x, y] = [sx(v.modes[i][0]), sy(v.modes[i][1])];
    ctx.beginPath(); ctx.moveTo(x - 7, y - 7); ctx.lineTo(x + 7, y + 7); ctx.moveTo(x + 7, y - 7); ctx.lineTo(x - 7, y + 7); ctx.stroke();
  }
  document.getElementById("toy-legend").innerHTML =
    "real points black · G's samples green · background: D(x), pink = judged fake, blue = judged real · " +
    "grey lines: G's image of a grid of z · red ✕: a mode G covered and lost (mode coverage, advnets.evaluate.modes)";
}

function drawPoints() {
  const canvas = document.getElementById("toy-canvas");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const [sx, sy, side] = boxScales(canvas, DRAW_BOX);
  ctx.strokeStyle = "#ccc";
  ctx.strokeRect(0, 0, side, side);
  ctx.fillStyle = "#000";
  for (const p of toy.points) { ctx.beginPath(); ctx.arc(sx(p[0]), sy(p[1]), 3, 0, 2 * Math.PI); ctx.fill(); }
  document.getElementById("toy-legend").textContent = `${toy.points.length} points (at most 200)`;
}

async function toyCall(path, body) {
  try {
    showToy(await api("POST", path, body));
  } catch (e) {
    setPlaying(false);
  }
}

function setPlaying(on) {
  toy.playing = on;
  document.getElementById("play").textContent = on ? "Pause" : "Play";
  if (on) playLoop();
}

async function playLoop() {
  while (toy.playing) {
    const n = Math.max(1, Math.min(200, parseInt(document.getElementById("per-frame").value, 10) || 1));
    await toyCall("/api/toy/step", { kind: "iteration", n });
    const now = performance.now();
    toy.frameTimes.push(now);
    toy.frameTimes = toy.frameTimes.filter((t) => now - t < 2000);
    if (toy.frameTimes.length > 1) {
      const rate = ((toy.frameTimes.length - 1) * 1000) / (now - toy.frameTimes[0]);
      document.getElementById("fps").textContent = rate.toFixed(1);
    }
  }
}

function enterDrawing(on) {
  toy.drawing = on;
  document.getElementById("draw-help").hidden = !on && document.getElementById("dataset").value !== "drawn";
  if (on) { setPlaying(false); drawPoints(); }
}

function setupToy() {
  document.getElementById("play").addEventListener("click", () => setPlaying(!toy.playing));
  document.getElementById("dstep").addEventListener("click", () => toyCall("/api/toy/step", { kind: "d", n: 1 }));
  document.getElementById("gstep").addEventListener("click", () => toyCall("/api/toy/step", { kind: "g", n: 1 }));
  document.getElementById("reset").addEventListener("click", () => toyCall("/api/toy/reset", {}));
  document.getElementById("dataset").addEventListener("change", (e) => {
    if (e.target.value === "drawn") { enterDrawing(true); return; }
    enterDrawing(false);
    document.getElementById("draw-help").hidden = true;
    toyCall("/api/toy/settings", { dataset: e.target.value });
  });
  for (const name of SETTINGS) {
    document.getElementById(name).addEventListener("change", (e) => {
      let value = e.target.value;
      if (NUMERIC.has(name)) value = INTEGER.has(name) ? parseInt(value, 10) : parseFloat(value);
      toyCall("/api/toy/settings", { [name]: value });
    });
  }
  document.getElementById("use-points").addEventListener("click", () => {
    if (!toy.points.length) { setStatus("draw some points first"); return; }
    enterDrawing(false);
    toyCall("/api/toy/settings", { dataset: "drawn", points: toy.points });
  });
  document.getElementById("clear-points").addEventListener("click", () => { toy.points = []; enterDrawing(true); });
  const canvas = document.getElementById("toy-canvas");
  strokes(canvas, (x, y) => {
    if (!toy.drawing || toy.points.length >= 200) return;
    const side = Math.min(canvas.width, canvas.height);
    if (x > side) return;
    const p = [DRAW_BOX[0] + (x / side) * (DRAW_BOX[1] - DRAW_BOX[0]), DRAW_BOX[3] - (y / side) * (DRAW_BOX[3] - DRAW_BOX[2])];
    const last = toy.points[toy.points.length - 1];
    if (last && Math.hypot(p[0] - last[0], p[1] - last[1]) < 0.25) return;
    toy.points.push([Math.max(-4, Math.min(4, p[0])), Math.max(-4, Math.min(4, p[1]))]);
    drawPoints();
  });
  api("GET", "/api/toy").then(showToy);
}

document.addEventListener("DOMContentLoaded", setupToy);
