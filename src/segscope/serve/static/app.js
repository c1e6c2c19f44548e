// segscope serve: the page. Plain JS, no build step; talks only to this server's /api.
"use strict";

const state = {
  info: null,       // /api/info
  image: null,      // {image_id, width, height, channels, name}
  bitmap: null,     // the decoded image for the input canvas
  prompt: { box: null, fg_points: [], bg_points: [] },
  drag: null,       // box start or brush in progress
  cards: new Map(), // card key -> {el, job}
};

const $ = (sel) => document.querySelector(sel);

function showMessage(text) {
  const box = $("#message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && body.detail;
    const text = typeof detail === "string" ? detail : (detail ? JSON.stringify(detail) : response.statusText);
    throw new Error(text);
  }
  return body;
}

// ---- methods -------------------------------------------------------------------------------------
function renderMethods() {
  const box = $("#methods");
  box.textContent = "";
  const groups = [["run", "Trained runs"], ["classical", "Classical (no training)"]];
  for (const [kind, title] of groups) {
    const methods = state.info.methods.filter((m) => m.kind === kind);
    if (!methods.length) continue;
    const h = document.createElement("h3");
    h.textContent = title;
    box.appendChild(h);
    for (const m of methods) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.value = m.id;
      input.name = "method";
      input.checked = kind === "run" || m.id === "otsu";
      label.appendChild(input);
      label.append(" " + m.label + " ");
      if (m.prompts.length) {
        const tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = "(" + m.prompts.join(", ") + ")";
        label.appendChild(tag);
      }
      label.title = m.paper;
      box.appendChild(label);
    }
  }
  const promptable = state.info.methods.filter((m) => m.prompts.length).map((m) => m.label);
  $("#prompt-methods").textContent = promptable.join(", ") || "none";
  const o = state.info.oracle;
  $("#oracle-info").textContent = o
    ? `Quality oracle loaded: predicted ${o.quality} of class${o.classes.length > 1 ? "es" : ""} ${o.classes.join(", ")}; "refine" runs its gradient ascent.`
    : "No quality oracle (start with --oracle ORACLE_DIR for predicted quality and refinement).";
}

function selectedMethods() {
  const ids = [...document.querySelectorAll("input[name=method]:checked")].map((i) => i.value);
  return state.info.methods.filter((m) => ids.includes(m.id));
}

// ---- image upload --------------------------------------------------------------------------------
async function upload(file) {
  showMessage("");
  if (!file) return;
  try {
    const info = await api("/api/images", {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream", "X-Filename": file.name },
      body: file,
    });
    state.image = info;
    clearPrompt(false);
    for (const card of state.cards.values()) card.el.remove();
    state.cards.clear();
    $("#image-info").textContent = `${info.name}: ${info.width}×${info.height}, ${info.channels === 1 ? "grey" : "colour"}`;
    const img = new Image();
    img.onload = () => { state.bitmap = img; drawInput(); };
    img.src = `/api/images/${info.image_id}.png`;
    $("#input-card").hidden = false;
    $("#input-meta").textContent = `${info.width}×${info.height}`;
    $("#run").disabled = false;
  } catch (err) {
    showMessage(err.message);
  }
}

// ---- the input canvas and prompts ----------------------------------------------------------------
function drawInput() {
  const canvas = $("#input-canvas");
  if (!state.bitmap) return;
  canvas.width = state.bitmap.naturalWidth;
  canvas.height = state.bitmap.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(state.bitmap, 0, 0);
  const lw = Math.max(1, canvas.width / 300);
  const p = state.prompt;
  const box = state.drag && state.drag.kind === "box" ? state.drag.box : p.box;
  if (box) {
    ctx.strokeStyle = "#00e5ff";
    ctx.lineWidth = 2 * lw;
    ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
  }
  const r = Math.max(Number($("#radius").value) || 0, lw * 1.5);
  for (const [points, colour] of [[p.fg_points, "#ffd400"], [p.bg_points, "#ff3b6b"]]) {
    ctx.fillStyle = colour;
    for (const [x, y] of points) {
      ctx.beginPath();
      ctx.arc(x + 0.5, y + 0.5, r, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}

function tool() { return document.querySelector("input[name=tool]:checked").value; }

function imagePoint(event) {
  const canvas = $("#input-canvas");
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * canvas.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * canvas.height);
  return [Math.min(Math.max(x, 0), canvas.width - 1), Math.min(Math.max(y, 0), canvas.height - 1)];
}

function onPointerDown(event) {
  if (!state.image) return;
  const t = tool();
  if (t === "none") return;
  const pt = imagePoint(event);
  event.preventDefault();
  if (t === "box") {
    state.drag = { kind: "box", start: pt, box: [pt[0], pt[1], pt[0] + 1, pt[1] + 1] };
  } else if (t === "fg" || t === "bg") {
    (t === "fg" ? state.prompt.fg_points : state.prompt.bg_points).push(pt);
    drawInput();
    promptChanged();
  } else {
    state.drag = { kind: t, last: pt };
    (t === "fg-brush" ? state.prompt.fg_points : state.prompt.bg_points).push(pt);
    drawInput();
  }
}

function onPointerMove(event) {
  if (!state.drag) return;
  const pt = imagePoint(event);
  if (state.drag.kind === "box") {
    const [x0, y0] = state.drag.start;
    state.drag.box = [Math.min(x0, pt[0]), Math.min(y0, pt[1]), Math.max(x0, pt[0]) + 1, Math.max(y0, pt[1]) + 1];
  } else {
    const [lx, ly] = state.drag.last;
    const step = Math.max(1, Number($("#radius").value) || 1);
    if (Math.hypot(pt[0] - lx, pt[1] - ly) < step) return;
    (state.drag.kind === "fg-brush" ? state.prompt.fg_points : state.prompt.bg_points).push(pt);
    state.drag.last = pt;
  }
  drawInput();
}

function onPointerUp() {
  if (!state.drag) return;
  if (state.drag.kind === "box") {
    const b = state.drag.box;
    if (b[2] - b[0] > 2 && b[3] - b[1] > 2) state.prompt.box = b;
  }
  state.drag = null;
  drawInput();
  promptChanged();
}

function clearPrompt(rerun = true) {
  state.prompt = { box: null, fg_points: [], bg_points: [] };
  drawInput();
  if (rerun) promptChanged();
}

function promptFor(method) {
  const p = state.prompt;
  const radius = Number($("#radius").value) || 0;
  const out = { box: null, fg_points: [], bg_points: [], radius };
  if (method.prompts.includes("box") && p.box) out.box = p.box;
  if (method.prompts.includes("points")) { out.fg_points = p.fg_points; out.bg_points = p.bg_points; }
  return out.box || out.fg_points.length || out.bg_points.length ? out : null;
}

function promptChanged() {
  // brush corrections and new boxes re-run the selected methods that read prompts
  if (!state.image) return;
  for (const m of selectedMethods()) if (m.prompts.length) runMethod(m);
}

// ---- jobs and result cards -----------------------------------------------------------------------
function card(key, title) {
  let entry = state.cards.get(key);
  if (!entry) {
    const el = document.createElement("figure");
    el.className = "card result";
    el.dataset.key = key;
    $("#cards").appendChild(el);
    entry = { el, job: null };
    state.cards.set(key, entry);
  }
  entry.el.textContent = "";
  const cap = document.createElement("figcaption");
  const b = document.createElement("b");
  b.textContent = title;
  cap.appendChild(b);
  entry.el.appendChild(cap);
  return entry;
}

function runningCard(entry, job) {
  const bar = document.createElement("progress");
  bar.max = 1;
  if (job.progress !== null && job.progress !== undefined) bar.value = job.progress;
  const line = document.createElement("div");
  line.className = "actions";
  const status = document.createElement("span");
  status.className = "meta";
  status.textContent = `${job.state} · ${job.elapsed_s.toFixed(1)} s`;
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "cancel";
  cancel.className = "cancel";
  cancel.onclick = () => api(`/api/jobs/${job.job_id}/cancel`, { method: "POST" }).catch((e) => showMessage(e.message));
  line.append(status, cancel);
  entry.el.append(bar, line);
}

function qualityText(q, before) {
  const div = document.createElement("div");
  div.className = "quality";
  if (!q) return div;
  const metric = state.info.oracle ? state.info.oracle.quality : "quality";
  for (const [name, value] of Object.entries(q)) {
    const span = document.createElement("span");
    let text = `predicted ${metric} (${name}): ${value.toFixed(3)}`;
    if (before && before[name] !== undefined) {
      const delta = value - before[name];
      text = `predicted ${metric} (${name}): ${before[name].toFixed(3)} → ${value.toFixed(3)}`;
      span.className = delta >= 0 ? "up" : "down";
    }
    span.textContent = text + " ";
    div.appendChild(span);
  }
  return div;
}

function resultCard(entry, result, cached) {
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = ` ${result.seconds.toFixed(2)} s${cached ? " · cached" : ""}`;
  entry.el.querySelector("figcaption").appendChild(meta);
  const stack = document.createElement("div");
  stack.className = "stack";
  const base = new Image();
  base.className = "base";
  base.alt = "input";
  base.src = `/api/images/${result.image_id}.png`;
  const over = new Image();
  over.className = "overlay";
  over.alt = `${result.title} mask`;
  over.src = result.colour_url;
  stack.append(base, over);
  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const c of result.legend) {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = c.painted ? c.colour : "transparent";
    li.append(sw, `${c.name} ${(100 * c.fraction).toFixed(1)}%`);
    legend.appendChild(li);
  }
  const actions = document.createElement("div");
  actions.className = "actions";
  const link = document.createElement("a");
  link.href = result.labels_url;
  const stem = (state.image ? state.image.name.replace(/\.[^.]*$/, "") : "image");
  link.download = `${stem}_${result.method}${result.refined_from ? "_refined" : ""}.png`;
  link.textContent = "download labels PNG";
  actions.appendChild(link);
  if (state.info.oracle && !result.refined_from && result.quality) {
    const refine = document.createElement("button");
    refine.type = "button";
    refine.className = "refine";
    refine.textContent = "refine";
    refine.onclick = () => startJob(`${entry.el.dataset.key}-refined`, `${result.title}, refined`,
      "/api/refine", { result_id: result.result_id, iterations: 50 });
    actions.appendChild(refine);
  }
  entry.el.append(stack, legend, qualityText(result.quality, result.quality_before), actions);
}

async function poll(entry, job) {
  let shown = false;
  while (job.state === "queued" || job.state === "running") {
    if (entry.job !== job.job_id) return; // superseded by a newer run of this card
    if (!shown) { card(entry.el.dataset.key, job.title); runningCard(entry, job); shown = true; }
    const bar = entry.el.querySelector("progress");
    if (bar && job.progress !== null && job.progress !== undefined) bar.value = job.progress;
    const status = entry.el.querySelector(".actions .meta");
    if (status) status.textContent = `${job.state} · ${job.elapsed_s.toFixed(1)} s`;
    await new Promise((r) => setTimeout(r, 250));
    try { job = await api(`/api/jobs/${job.job_id}`); } catch (e) { showMessage(e.message); return; }
  }
  if (entry.job !== job.job_id) return;
  card(entry.el.dataset.key, job.result ? job.result.title : job.title);
  if (job.state === "done") {
    resultCard(entry, job.result, job.message === "cached");
  } else {
    const p = document.createElement("p");
    p.className = job.state === "failed" ? "error" : "meta";
    p.textContent = job.state === "failed" ? job.message : "cancelled";
    entry.el.appendChild(p);
  }
}

async function startJob(key, title, path, payload) {
  const previous = state.cards.get(key);
  if (previous && previous.job) {  // a newer prompt supersedes a run still in flight
    api(`/api/jobs/${previous.job}/cancel`, { method: "POST" }).catch(() => {});
  }
  const entry = card(key, title);
  entry.job = null;
  try {
    const job = await api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    entry.job = job.job_id;
    await poll(entry, job);
  } catch (err) {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = err.message;
    entry.el.appendChild(p);
  }
}

function runMethod(method) {
  const prompt = promptFor(method);
  return startJob(method.id, method.label, "/api/segment", { image_id: state.image.image_id, method: method.id, prompt });
}

function runSelected() {
  showMessage("");
  const methods = selectedMethods();
  if (!methods.length) { showMessage("Pick at least one method."); return; }
  methods.forEach(runMethod);
}

// ---- wiring --------------------------------------------------------------------------------------
function wire() {
  const drop = $("#drop");
  $("#file").addEventListener("change", (e) => upload(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload(e.dataTransfer.files[0]);
  });
  const canvas = $("#input-canvas");
  canvas.addEventListener("pointerdown", onPointerDown);
  window.addEventListener("pointermove", onPointerMove);
  window.addEventListener("pointerup", onPointerUp);
  $("#clear-prompt").addEventListener("click", () => clearPrompt(true));
  $("#radius").addEventListener("change", drawInput);
  $("#run").addEventListener("click", runSelected);
  $("#opacity").addEventListener("input", (e) => {
    document.documentElement.style.setProperty("--opacity", String(e.target.value / 100));
  });
}

async function start() {
  wire();
  try {
    state.info = await api("/api/info");
    renderMethods();
  } catch (err) {
    showMessage(`cannot reach the segscope server: ${err.message}`);
  }
}

document.addEventListener("DOMContentLoaded", start);
