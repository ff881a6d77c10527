// The dlapps page: one tab per app, each calling the REST API under /v1/ with multipart uploads, and drawing the
// answer. No build step and nothing from a CDN.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { models: [], painting: null, lastDetect: null };

function apiKey() { return localStorage.getItem("dlapps-api-key") || ""; }
function headers() { const key = apiKey(); return key ? { "X-API-Key": key } : {}; }

async function call(method, path, form) {
  const response = await fetch(path, { method, body: form, headers: headers() });
  const kind = response.headers.get("content-type") || "";
  const body = kind.includes("json") ? await response.json() : await response.blob();
  if (response.status === 401) { $("key-box").hidden = false; }
  if (!response.ok) { throw new Error(body.error ? body.error + (body.detail ? " (" + body.detail + ")" : "") : response.statusText); }
  return body;
}
function form(fields) { const f = new FormData(); for (const [k, v] of Object.entries(fields)) { if (v !== null && v !== undefined) f.append(k, v); } return f; }
function showError(out, error) {
  const canvas = out.parentElement && out.parentElement.querySelector("canvas");
  if (canvas) { canvas.width = 0; canvas.height = 0; }  // not the previous photo beside this error
  out.innerHTML = ""; const p = document.createElement("p"); p.className = "error"; p.textContent = error.message || String(error); out.appendChild(p); }
function esc(text) { const d = document.createElement("div"); d.textContent = String(text); return d.innerHTML; }
function busy(text) { $("status").textContent = text || ""; }

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const img = new Image(); img.onload = () => resolve(img); img.onerror = () => reject(new Error(file.name + ": the browser cannot show this image"));
    img.src = URL.createObjectURL(file);
  });
}
function drawPicture(canvas, img) {
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d"); ctx.drawImage(img, 0, 0); return ctx;
}
const COLOURS = ["#e53935", "#43a047", "#1e88e5", "#fdd835", "#8e24aa", "#00acc1", "#fb8c00", "#6d4c41"];
function drawBox(ctx, box, label, colour) {
  const [x0, y0, x1, y1] = box; const line = Math.max(2, ctx.canvas.width / 300);
  ctx.lineWidth = line; ctx.strokeStyle = colour; ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  if (!label) return;
  ctx.font = `${Math.max(12, ctx.canvas.width / 50)}px sans-serif`;
  const w = ctx.measureText(label).width + 6, h = Math.max(14, ctx.canvas.width / 45);
  ctx.fillStyle = colour; ctx.fillRect(x0, Math.max(0, y0 - h), w, h);
  ctx.fillStyle = "#fff"; ctx.fillText(label, x0 + 3, Math.max(h - 3, y0 - 3));
}

// --- Tabs, drop zones, API key ---
document.querySelectorAll("#tabs button").forEach((b) => b.onclick = () => {
  document.querySelectorAll("#tabs button, .tab").forEach((e) => e.classList.remove("active"));
  b.classList.add("active"); $(b.dataset.tab).classList.add("active");
});
document.querySelectorAll(".drop").forEach((zone) => {
  const input = $(zone.dataset.target);
  zone.ondragover = (e) => { e.preventDefault(); zone.classList.add("over"); };
  zone.ondragleave = () => zone.classList.remove("over");
  zone.ondrop = (e) => { e.preventDefault(); zone.classList.remove("over"); input.files = e.dataTransfer.files; input.dispatchEvent(new Event("change")); };
});
$("api-key").value = apiKey();
$("api-key").onchange = () => { localStorage.setItem("dlapps-api-key", $("api-key").value); init(); };

// --- Classify ---
$("classify-file").onchange = async () => {
  const file = $("classify-file").files[0]; const out = $("classify-out"); if (!file) return;
  try {
    drawPicture($("classify-canvas"), await loadImage(file)); busy("classifying...");
    const r = await call("POST", "/v1/classify", form({ image: file, model: $("classify-model").value, top_k: 5 }));
    // A binary model's record gives P(positive) with its threshold: show both classes' probabilities.
    const other = (state.models.find((m) => m.name === $("classify-model").value) || {}).classes || ["non-cat", "cat"];
    const rows = r.top_k || [{ label: other[1], probability: r.probability }, { label: other[0], probability: 1 - r.probability }];
    out.innerHTML = `<p class="verdict">${esc(r.label)}</p>` + rows.map((row) =>
      `<div>${esc(row.label.padEnd(14))} <span class="bar" style="width:${Math.round(200 * row.probability)}px"></span> ${(100 * row.probability).toFixed(1)}%</div>`).join("") +
      (r.threshold !== undefined ? `<p>P(cat) ${r.probability.toFixed(3)}, threshold ${r.threshold}</p>` : "") +
      (r.imagenet_top ? `<p>ImageNet sees: ${esc(r.imagenet_top.label)}</p>` : "");
  } catch (e) { showError(out, e); } finally { busy(); }
};

// --- Detect ---
function sliderValue(id) { const v = $(id).value; $(id + "-v").textContent = v; return v; }
async function detect() {
  const file = $("detect-file").files[0]; const out = $("detect-out"); if (!file) return;
  try {
    busy("detecting...");
    const r = await call("POST", "/v1/detect", form({ image: file, score_threshold: sliderValue("detect-score"),
      iou_threshold: sliderValue("detect-iou"), explain: $("detect-grid").checked }));
    const ctx = drawPicture($("detect-canvas"), await loadImage(file));
    const names = [...new Set(r.detections.map((d) => d.class))];
    if (r.grid) drawGrid(ctx, r.grid, r);
    r.detections.forEach((d) => drawBox(ctx, d.box, `${d.class} ${d.score.toFixed(2)}`, COLOURS[names.indexOf(d.class) % COLOURS.length]));
    out.textContent = `${r.detections.length} box(es) in ${r.width}x${r.height} px\n` +
      r.detections.map((d) => `${d.class.padEnd(10)} ${d.score.toFixed(3)}  [${d.box.join(", ")}]`).join("\n") +
      (r.grid ? `\n\nGrid: ${r.grid.input_size}px input, strides ${r.grid.scales.map((s) => s.stride + " (" + s.cells + "x" + s.cells + ")").join(", ")}.\n` +
        r.grid.boxes.map((b, i) => `box ${i + 1}: stride ${r.grid.scales[b.scale].stride}, cell row ${b.cell[0]} col ${b.cell[1]}`).join("\n") : "");
  } catch (e) { showError(out, e); } finally { busy(); }
}
function drawGrid(ctx, grid, r) {
  // The grid of the scale responsible for the first box (the coarsest if none) over the letterboxed square, then
  // each box's responsible cell and anchor.
  const [x0, y0, x1, y1] = grid.square;
  const coarse = grid.scales[grid.boxes.length ? grid.boxes[0].scale : grid.scales.length - 1];
  ctx.save(); ctx.strokeStyle = "rgba(255,255,255,0.5)"; ctx.lineWidth = 1;
  for (let i = 0; i <= coarse.cells; i++) {
    const x = x0 + i * coarse.cell_size, y = y0 + i * coarse.cell_size;
    ctx.beginPath(); ctx.moveTo(x, y0); ctx.lineTo(x, y1); ctx.moveTo(x0, y); ctx.lineTo(x1, y); ctx.stroke();
  }
  grid.boxes.forEach((b) => {
    const [cx0, cy0, cx1, cy1] = b.cell_box; ctx.fillStyle = "rgba(255,235,59,0.45)"; ctx.fillRect(cx0, cy0, cx1 - cx0, cy1 - cy0);
    const [ax0, ay0, ax1, ay1] = b.anchor_box; ctx.setLineDash([6, 4]); ctx.strokeStyle = "#ffeb3b"; ctx.lineWidth = 2;
    ctx.strokeRect(ax0, ay0, ax1 - ax0, ay1 - ay0); ctx.setLineDash([]);
  });
  ctx.restore();
}
["detect-file", "detect-score", "detect-iou", "detect-grid"].forEach((id) => $(id).addEventListener("change", detect));

// --- Faces ---
async function verify() {
  const a = $("faces-a").files[0], b = $("faces-b").files[0]; const out = $("verify-out"); if (!a || !b) return;
  try {
    busy("verifying...");
    const r = await call("POST", "/v1/faces/verify", form({ image_a: a, image_b: b, chips: $("faces-chips").checked }));
    out.innerHTML = `<p class="verdict">${r.same_person ? "Same person" : "Different people"} (confidence ${(100 * r.confidence).toFixed(0)}%)</p>` +
      `<p>distance ${r.distance.toFixed(3)} ${r.same_person ? "&le;" : "&gt;"} threshold ${r.threshold.toFixed(3)}</p>` +
      `<svg width="300" height="24"><rect x="0" y="8" width="300" height="8" fill="#eceff1"/>` +
      `<rect x="0" y="8" width="${Math.min(300, 150 * r.distance)}" height="8" fill="${r.same_person ? "#43a047" : "#e53935"}"/>` +
      `<line x1="${150 * r.threshold}" x2="${150 * r.threshold}" y1="2" y2="22" stroke="#000"/></svg>` +
      (r.chips ? `<div class="chips">${r.chips.map((c) => `<img src="${c}" alt="aligned face">`).join("")}</div>` : "") +
      (r.faces_a > 1 || r.faces_b > 1 ? `<p>${r.faces_a} and ${r.faces_b} faces found; the largest of each was used.</p>` : "");
  } catch (e) { showError(out, e); } finally { busy(); }
}
["faces-a", "faces-b"].forEach((id) => $(id).addEventListener("change", verify));

async function refreshSubjects() {
  const list = $("subjects"); list.innerHTML = "";
  try {
    const r = await call("GET", "/v1/faces/subjects");
    r.subjects.forEach((s) => {
      const li = document.createElement("li"); li.textContent = `${s.subject} (${s.faces}) `;
      const rename = document.createElement("button"); rename.textContent = "rename"; rename.style.color = "#0277bd";
      rename.onclick = async () => { const name = prompt("New name", s.subject); if (name) { await call("PUT", "/v1/faces/subjects/" + encodeURIComponent(s.subject), form({ subject: name })).catch((e) => alert(e.message)); refreshSubjects(); } };
      const remove = document.createElement("button"); remove.textContent = "x"; remove.title = "remove";
      remove.onclick = async () => {
        if (!confirm(`Remove ${s.subject} and their ${s.faces} face(s)?`)) return;
        await call("DELETE", "/v1/faces/subjects/" + encodeURIComponent(s.subject)).catch((e) => alert(e.message)); refreshSubjects();
      };
      li.append(rename, remove); list.appendChild(li);
    });
  } catch (e) { list.textContent = e.message; }
}
$("subject-add").onclick = async () => {
  const name = $("subject-name").value.trim(), photo = $("subject-photo").files[0];
  if (!name || !photo) { alert("A name and a photo, please"); return; }
  try { busy("enrolling..."); await call("POST", "/v1/faces/subjects/" + encodeURIComponent(name) + "/faces", form({ image: photo })); refreshSubjects(); }
  catch (e) { alert(e.message); } finally { busy(); }
};
$("identify-file").onchange = async () => {
  const file = $("identify-file").files[0]; const out = $("identify-out"); if (!file) return;
  try {
    busy("identifying...");
    const r = await call("POST", "/v1/faces/identify", form({ image: file, all_faces: true }));
    const ctx = drawPicture($("identify-canvas"), await loadImage(file));
    r.faces.forEach((f, i) => { const [x, y, w, h] = f.box; drawBox(ctx, [x, y, x + w, y + h], `${f.name} ${f.distance.toFixed(2)}`, COLOURS[i % COLOURS.length]); });
    out.textContent = r.faces.map((f) => `${f.name} (distance ${f.distance.toFixed(3)}, threshold ${f.threshold.toFixed(3)})\n  closest: ` +
      f.top_k.map((t) => `${t.name} ${t.distance.toFixed(3)}`).join(", ")).join("\n");
  } catch (e) { showError(out, e); } finally { busy(); }
};

// --- Style ---
async function stylise() {
  const file = $("style-file").files[0]; const out = $("style-out"); if (!file) return;
  const own = $("style-upload").files[0];
  try {
    busy("stylising...");
    const r = await call("POST", "/v1/style", form({ image: file, style: own ? null : state.painting, style_image: own || null,
      strength: $("style-strength").value, losses: !own && $("style-losses").checked }));
    $("style-img").src = r.image; out.textContent = `${r.style}, ${r.width}x${r.height} px`;
    if (r.losses) {
      const l = r.losses;
      out.textContent += `\n\nJ = ${l.content_weight} J_content + ${l.style_weight} J_style + ${l.tv_weight} TV\n` +
        `J_content ${l.content.toPrecision(4)}  (the photo's VGG16 features kept)\nJ_style   ${l.style.toPrecision(4)}  (Gram matrices against the painting's)\n` +
        `TV        ${l.tv.toPrecision(4)}\nJ         ${l.total.toPrecision(4)}`;
    }
  } catch (e) { showError(out, e); } finally { busy(); }
}
$("style-strength").addEventListener("input", () => { $("style-strength-v").textContent = $("style-strength").value; });
$("style-upload").addEventListener("change", () => document.querySelectorAll("#paintings figure").forEach((f) => f.classList.remove("chosen")));
["style-file", "style-strength", "style-upload", "style-losses"].forEach((id) => $(id).addEventListener("change", stylise));
function paintings() {
  const box = $("paintings"); box.innerHTML = "";
  state.models.filter((m) => m.app === "style").forEach((m, i) => {
    const fig = document.createElement("figure"); fig.innerHTML = `<img src="/v1/style/paintings/${m.name}" alt="${esc(m.style)}"><figcaption>${esc(m.style)}</figcaption>`;
    fig.onclick = () => { state.painting = m.name; $("style-upload").value = ""; box.querySelectorAll("figure").forEach((f) => f.classList.remove("chosen")); fig.classList.add("chosen"); stylise(); };
    if (i === 0) { state.painting = m.name; fig.classList.add("chosen"); }
    box.appendChild(fig);
  });
}

// --- Webcam (WebSocket: JPEG frames out, annotated frames back) and video upload ---
const streams = {};
document.querySelectorAll(".webcam").forEach((button) => button.onclick = async () => {
  const app = button.dataset.app, live = $(app + "-live");
  if (streams[app]) { streams[app].stop(); return; }
  try {
    const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640 } });
    const video = document.createElement("video"); video.srcObject = media; video.muted = true; await video.play();
    const shown = document.createElement("img"); live.innerHTML = ""; live.appendChild(shown);
    const params = new URLSearchParams({ api_key: apiKey() });
    if (app === "detect") { params.set("score_threshold", $("detect-score").value); params.set("iou_threshold", $("detect-iou").value); }
    if (app === "style") { params.set("style", state.painting || ""); params.set("strength", $("style-strength").value); }
    const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/stream/${app}?${params}`);
    socket.binaryType = "blob"; const canvas = document.createElement("canvas");
    const send = () => { if (socket.readyState !== 1) return; canvas.width = video.videoWidth; canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0); canvas.toBlob((b) => socket.send(b), "image/jpeg", 0.8); };
    socket.onopen = send;
    socket.onmessage = (m) => { if (typeof m.data === "string") { busy(JSON.parse(m.data).error); } else { shown.src = URL.createObjectURL(m.data); } send(); };
    streams[app] = { stop: () => { socket.close(); media.getTracks().forEach((t) => t.stop()); delete streams[app]; button.textContent = "Webcam"; } };
    button.textContent = "Stop";
  } catch (e) { busy("webcam: " + e.message); }
});
document.querySelectorAll(".video").forEach((input) => input.onchange = async () => {
  const app = input.dataset.app, live = $(app + "-live"), file = input.files[0]; if (!file) return;
  try {
    busy("processing the video...");
    const fields = { video: file };
    if (app === "detect") { fields.score_threshold = $("detect-score").value; }
    if (app === "style") { fields.style = state.painting; fields.strength = $("style-strength").value; }
    const blob = await call("POST", "/v1/video/" + app, form(fields));
    live.innerHTML = ""; const v = document.createElement("video"); v.controls = true; v.src = URL.createObjectURL(blob); live.appendChild(v);
  } catch (e) { live.innerHTML = ""; showError(live, e); } finally { busy(); }
});

// --- Start: what the server has loaded ---
async function init() {
  try {
    state.models = (await call("GET", "/v1/models")).models;
  } catch (e) { busy(e.message); return; }
  const classifiers = state.models.filter((m) => m.app === "cat" || m.app === "finetune");
  $("classify-model").innerHTML = classifiers.map((m) => `<option>${esc(m.name)}</option>`).join("");
  const detector = state.models.find((m) => m.app === "detect");
  if (detector) { $("detect-score").value = detector.score_threshold; $("detect-iou").value = detector.iou_threshold; sliderValue("detect-score"); sliderValue("detect-iou"); }
  for (const [tab, present] of [["classify", classifiers.length], ["detect", detector], ["faces", state.models.find((m) => m.app === "faces")], ["style", state.models.find((m) => m.app === "style")]]) {
    document.querySelector(`#tabs button[data-tab=${tab}]`).hidden = !present;
  }
  paintings(); refreshSubjects();
}
init();
