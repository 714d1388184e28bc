// Radiograph viewer and reading clock for one case (Streamlit components v2 module).
// Each view arrives as a quick windowed preview, then as a lossless WebP carrying 16-bit values (R high byte,
// G low byte), so window/level is done here on a canvas without another round trip. The first drawn image starts the server clock;
// page visibility and idle stretches are measured here; the report editor asks for the totals at SUBMIT with a
// "readerstudy:clock" event (no shared global: the two components only agree on the event).

function post(path, body) {
  return fetch(path, {
    method: "POST", headers: BEACON_HEADERS, body: JSON.stringify(body || {}), credentials: "same-origin",
    keepalive: true,
  }).catch(() => null);
}

// ---- reading clock: one per page, keyed by case; its totals survive a refresh (localStorage) ----
// Totals = what earlier visits stored + this visit's closed stretches + the stretch still open now.
const ACTIVITY = ["keydown", "pointerdown", "pointermove", "wheel", "input", "scroll"];

class ReadingClock {
  constructor(caseRef, idleThresholdS) {
    this.id = caseRef;
    this.idleMs = Math.max(5, idleThresholdS || 60) * 1000;
    this.storeKey = `readerstudy-clock-${caseRef}`;
    let saved = {};
    try { saved = JSON.parse(localStorage.getItem(this.storeKey) || "{}"); } catch (e) { saved = {}; }
    this.base = { visit_s: +saved.visit_s || 0, hidden_s: +saved.hidden_s || 0, idle_s: +saved.idle_s || 0 };
    this.started = null;        // performance.now() when this visit's clock started (first image drawn)
    this.hiddenClosed = 0;      // ms, this visit
    this.idleClosed = 0;        // ms, this visit
    this.hiddenSince = null;
    this.lastActivity = performance.now();
    this.onActivity = () => this.activity();
    this.onVisibility = () => this.visibility();
    this.onPageHide = () => this.save();
    for (const kind of ACTIVITY) document.addEventListener(kind, this.onActivity, { capture: true, passive: true });
    document.addEventListener("visibilitychange", this.onVisibility);
    window.addEventListener("pagehide", this.onPageHide);
    this.timer = setInterval(() => this.save(), 2000);
  }
  start() {
    if (this.started !== null) return;
    this.started = performance.now();
    this.lastActivity = this.started;
    if (document.hidden) this.hiddenSince = this.started;
  }
  event(kind, durationS) {
    const body = { kind, client_at: new Date().toISOString() };
    if (durationS !== undefined) body.duration_s = Math.round(durationS * 1000) / 1000;
    post(`/api/reading/${this.id}/event`, body);
  }
  openIdle(now) {
    // An idle stretch counts whole once it passes the threshold, and only while the page is visible.
    const gap = now - this.lastActivity;
    return this.started !== null && this.hiddenSince === null && gap > this.idleMs ? gap : 0;
  }
  activity() {
    if (this.hiddenSince !== null) return;
    const now = performance.now();
    const idle = this.openIdle(now);
    if (idle) { this.idleClosed += idle; this.event("idle", idle / 1000); }
    this.lastActivity = now;
  }
  visibility() {
    if (this.started === null) return;
    const now = performance.now();
    if (document.hidden && this.hiddenSince === null) {
      const idle = this.openIdle(now);
      if (idle) { this.idleClosed += idle; this.event("idle", idle / 1000); }
      this.hiddenSince = now;
      this.event("hidden");
      this.save();
    } else if (!document.hidden && this.hiddenSince !== null) {
      const hidden = now - this.hiddenSince;
      this.hiddenClosed += hidden;
      this.hiddenSince = null;
      this.lastActivity = now;  // time away is hidden time, not idle time
      this.event("visible", hidden / 1000);
    }
  }
  totals() {
    const now = performance.now();
    const on = this.started !== null;
    return {
      visit_s: this.base.visit_s + (on ? (now - this.started) / 1000 : 0),
      hidden_s: this.base.hidden_s + (this.hiddenClosed + (this.hiddenSince !== null ? now - this.hiddenSince : 0)) / 1000,
      idle_s: this.base.idle_s + (this.idleClosed + this.openIdle(now)) / 1000,
    };
  }
  snapshot() {
    const t = this.totals();
    const round = (x) => Math.round(Math.max(0, x) * 1000) / 1000;
    return { active_s: round(t.visit_s - t.hidden_s - t.idle_s), hidden_s: round(t.hidden_s), idle_s: round(t.idle_s) };
  }
  save() {
    if (this.started === null) return;
    try { localStorage.setItem(this.storeKey, JSON.stringify(this.totals())); } catch (e) { /* private mode */ }
  }
  forget() {
    // After SUBMIT the totals are in the database; stop keeping them in the browser.
    this.stop(false);
    this.started = null;
    try { localStorage.removeItem(this.storeKey); } catch (e) { /* ignore */ }
  }
  stop(keep = true) {
    if (keep) this.save();
    clearInterval(this.timer);
    for (const kind of ACTIVITY) document.removeEventListener(kind, this.onActivity, { capture: true });
    document.removeEventListener("visibilitychange", this.onVisibility);
    window.removeEventListener("pagehide", this.onPageHide);
  }
}

// The clock of the case on screen (this module is loaded once per page, so this is one per page).
let currentClock = null;

function clockFor(caseRef, idleThresholdS) {
  if (currentClock && currentClock.id === caseRef) return currentClock;
  if (currentClock) currentClock.stop();
  currentClock = null;
  // Any other clock on the page (of an earlier case) stops too, even one kept by another copy of this module.
  document.dispatchEvent(new CustomEvent("readerstudy:clock-switch", { detail: { case_ref: caseRef } }));
  if (caseRef !== null) currentClock = new ReadingClock(caseRef, idleThresholdS);
  return currentClock;
}

// The editor's questions: {case_ref, forget} in, the totals (or true once forgotten) back in detail.answer.
// Answered synchronously, during dispatchEvent, so the editor has the totals at the press.
document.addEventListener("readerstudy:clock", (event) => {
  const clock = currentClock;
  if (!clock || clock.id !== event.detail.case_ref) return;
  if (event.detail.forget) { clock.forget(); event.detail.answer = true; } else event.detail.answer = clock.snapshot();
});
document.addEventListener("readerstudy:clock-switch", (event) => {
  if (currentClock && currentClock.id !== event.detail.case_ref) { currentClock.stop(); currentClock = null; }
});

// ---- images: fetched once per page, decoded once, kept for the current and the next case ----
// Each view has a preview (8-bit JPEG in its opening window, a few hundred kB: on screen at once) and a full copy
// (lossless WebP carrying 16-bit values: window/level without another round trip). The store is the module's, so
// it outlives reruns and the move to the next case: the next case's images fetched ahead are here (and in the
// HTTP cache, which a reload still has).
const store = new Map();  // url -> Promise of a decoded image

function fetchBlob(url, low) {
  return fetch(url, { credentials: "same-origin", priority: low ? "low" : "high" }).then((response) => {
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.blob();
  });
}

async function decodePreview(url, low) {
  const bitmap = await createImageBitmap(await fetchBlob(url, low));
  return { kind: "preview", w: bitmap.width, h: bitmap.height, bitmap };
}

async function decodeFull(url, low) {
  // No colour management, no premultiplication: the channels must arrive exactly as encoded.
  const bitmap = await createImageBitmap(await fetchBlob(url, low), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const w = bitmap.width, h = bitmap.height;
  const scratch = document.createElement("canvas");
  scratch.width = w; scratch.height = h;
  const sctx = scratch.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
  sctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = sctx.getImageData(0, 0, w, h).data;
  const stored = new Uint16Array(w * h);
  for (let i = 0, j = 0; i < stored.length; i++, j += 4) stored[i] = (rgba[j] << 8) | rgba[j + 1];
  return { kind: "full", w, h, stored, canvas: scratch, ctx: sctx, out: sctx.createImageData(w, h) };
}

// One download at a time, in order of need: the views on screen (previews, then full copies), then this case's
// other views, then the next case's. On a slow link this puts the first image on screen soonest; a view the
// reader asks for (priority 0) does not wait behind a large download.
const PRIORITY = { asked: 0, preview: 1, full: 2, rest: 3, next: 5 };
const waiting = [];
let busy = 0, order = 0;

function request(url, full, priority) {
  let entry = store.get(url);
  if (!entry) {
    entry = { url, full, priority, started: false, done: false, seq: order++ };
    entry.promise = new Promise((resolve, reject) => { entry.resolve = resolve; entry.reject = reject; });
    entry.promise.then(() => { entry.done = true; }, () => { if (store.get(url) === entry) store.delete(url); });
    store.set(url, entry);
    waiting.push(entry);
  } else if (!entry.started && priority < entry.priority) {
    entry.priority = priority;
  }
  pump();
  return entry.promise;
}

function pump() {
  waiting.sort((x, y) => x.priority - y.priority || x.seq - y.seq);
  while (waiting.length && (busy < 1 || (waiting[0].priority === PRIORITY.asked && busy < 3))) {
    const entry = waiting.shift();
    entry.started = true;
    busy++;
    (entry.full ? decodeFull : decodePreview)(entry.url, entry.priority >= PRIORITY.next)
      .then(entry.resolve, entry.reject)
      .finally(() => { busy--; pump(); });
  }
}

function loaded(url) {
  const entry = store.get(url);
  return !!(entry && entry.done);
}

// Keep only what the current and next cases need (a 2500 x 3000 film decodes to ~20 MB).
function keepOnly(urls) {
  for (const url of [...store.keys()]) if (!urls.has(url)) store.delete(url);
  for (let i = waiting.length - 1; i >= 0; i--) if (!urls.has(waiting[i].url)) waiting.splice(i, 1);
}

let lastPrefetch = null;  // {case_ref, urls}: the next case's images, as the page last named them

// ---- the hanging protocol: which views stand side by side ----
const FRONTAL = new Set(["PA", "AP"]);
const LATERAL = new Set(["LATERAL", "LL", "LAT", "RL"]);

function hangingStages(images, wanted) {
  const current = images.filter((i) => !i.prior);
  const priors = images.filter((i) => i.prior);
  const frontal = current.find((i) => FRONTAL.has(i.view)) || current[0] || images[0];
  const lateral = current.find((i) => LATERAL.has(i.view));
  const prior = frontal && (priors.find((i) => i.view === frontal.view) || priors[0]);
  const stages = [];
  for (const name of wanted) {
    if (name === "frontal_lateral" && frontal && lateral) stages.push({ name, ids: [frontal.id, lateral.id] });
    if (name === "current_prior" && frontal && prior) stages.push({ name, ids: [frontal.id, prior.id] });
    if (name === "single" && images.length) stages.push({ name, ids: [frontal.id] });
  }
  if (!stages.length && images.length) stages.push({ name: "single", ids: [frontal.id] });
  return stages;
}

const DESK_KEY = "readerstudy-desk";  // the reader's layout (task panel width, hidden or not): one for all cases
function deskSettings() {
  try { return { share: 62, hidden: false, ...JSON.parse(localStorage.getItem(DESK_KEY) || "{}") }; }
  catch (error) { return { share: 62, hidden: false }; }
}
function saveDesk(settings) {
  try { localStorage.setItem(DESK_KEY, JSON.stringify(settings)); } catch (error) { /* private mode */ }
}
function applyDesk(settings) {
  document.documentElement.style.setProperty("--rs-image-share", String(settings.share));
  document.documentElement.classList.toggle("rs-panel-hidden", !!settings.hidden);
}

// ---- one viewport: an image, its window, zoom and pan, its measurements ----
class Port {
  constructor(viewer, index) {
    this.viewer = viewer;
    this.index = index;
    this.el = document.createElement("div");
    this.el.className = "rs-port";
    this.el.tabIndex = 0;
    this.el.setAttribute("role", "img");
    this.canvas = document.createElement("canvas");
    this.label = document.createElement("span");
    this.label.className = "rs-port-label";
    this.el.append(this.canvas, this.label);
    this.ctx = this.canvas.getContext("2d");
    this.image = null;     // the image's data from the page
    this.shown = null;     // what is drawn: a decoded preview or full copy
    this.view = null;
    this.marks = new Map(); // image id -> measurements [{x1, y1, x2, y2}] in image pixels
    this.loupe = null;
  }
  async show(image, asked = false) {
    this.image = image;
    this.label.textContent = image.label;
    this.el.setAttribute("aria-label", `${image.label} image`);
    this.el.dataset.imageId = String(image.id);
    this.view = this.viewer.openingView(image);
    this.shown = null;
    this.el.dataset.fidelity = "loading";
    const token = (this.token = {});
    // The full copy may be here already (the next case fetched ahead, or this view seen before): then it is
    // drawn at once; else the preview first, and the full copy when it arrives.
    const haveFull = loaded(image.url);
    const preview = haveFull ? null : request(image.preview_url, false, asked ? PRIORITY.asked : PRIORITY.preview);
    const full = request(image.url, true, asked ? PRIORITY.asked : PRIORITY.full);
    if (preview) {
      try {
        const decoded = await preview;
        if (this.token !== token || this.shown) return;
        this.shown = decoded;
        this.el.dataset.fidelity = "preview";
        this.paint();
        this.viewer.drawn(this);
      } catch (error) { /* the full copy may still come */ }
    }
    try {
      const decoded = await full;
      if (this.token !== token) return;
      this.shown = decoded;
      this.el.dataset.fidelity = "full";
      this.rewindow();
      this.viewer.drawn(this);
    } catch (error) {
      if (this.token === token && !this.shown) this.viewer.say(`Could not load ${image.label}: ${error.message}`);
    }
  }
  rewindow() {
    const e = this.shown;
    if (!e || e.kind !== "full") { this.paint(); return; }
    // Window through a 65,536-entry table over the stored values: one lookup per pixel.
    const { offset, gain, invert: mono1 } = this.image;
    const low = this.view.wc - 0.5 - (this.view.ww - 1) / 2;
    const span = Math.max(this.view.ww - 1, 1e-6);
    const flip = mono1 !== this.view.invert;
    const lut = this.viewer.lut;
    for (let s = 0; s < 65536; s++) {
      let v = ((s / gain + offset) - low) * 255 / span;
      v = v < 0 ? 0 : v > 255 ? 255 : v;
      lut[s] = flip ? 255 - v : v;
    }
    const px = e.out.data, stored = e.stored;
    for (let i = 0, j = 0; i < stored.length; i++, j += 4) {
      const g = lut[stored[i]];
      px[j] = g; px[j + 1] = g; px[j + 2] = g; px[j + 3] = 255;
    }
    e.ctx.putImageData(e.out, 0, 0);
    this.windowed = this.view;
    this.paint();
  }
  size() {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.el.clientWidth * ratio)), h = Math.max(1, Math.round(this.el.clientHeight * ratio));
    if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
  }
  fit() {
    const e = this.shown || { w: this.image ? this.image.width : 1, h: this.image ? this.image.height : 1 };
    return Math.min(this.canvas.width / e.w, this.canvas.height / e.h);
  }
  // Screen (CSS px within the port) <-> image pixels of the display copy.
  toImage(x, y) {
    const ratio = window.devicePixelRatio || 1, e = this.shown, scale = this.fit() * this.view.zoom;
    const ox = this.canvas.width / 2 + this.view.panX * ratio - (e.w * scale) / 2;
    const oy = this.canvas.height / 2 + this.view.panY * ratio - (e.h * scale) / 2;
    return [(x * ratio - ox) / scale * (this.image.width / e.w), (y * ratio - oy) / scale * (this.image.height / e.h)];
  }
  toCanvas(ix, iy) {
    const ratio = window.devicePixelRatio || 1, e = this.shown, scale = this.fit() * this.view.zoom;
    const ox = this.canvas.width / 2 + this.view.panX * ratio - (e.w * scale) / 2;
    const oy = this.canvas.height / 2 + this.view.panY * ratio - (e.h * scale) / 2;
    return [ox + ix * (e.w / this.image.width) * scale, oy + iy * (e.h / this.image.height) * scale];
  }
  paint() {
    this.size();
    const c = this.canvas, ctx = this.ctx, e = this.shown;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, c.width, c.height);
    if (!e) return;
    const ratio = window.devicePixelRatio || 1;
    const scale = this.fit() * this.view.zoom;
    const source = e.kind === "full" ? e.canvas : e.bitmap;
    ctx.imageSmoothingEnabled = scale < 2;
    ctx.imageSmoothingQuality = "high";
    const x = c.width / 2 + this.view.panX * ratio - (e.w * scale) / 2;
    const y = c.height / 2 + this.view.panY * ratio - (e.h * scale) / 2;
    // A preview is drawn in its own window; a later window change shows on the full copy.
    ctx.filter = e.kind === "preview" && this.view.invert ? "invert(1)" : "none";
    ctx.drawImage(source, x, y, e.w * scale, e.h * scale);
    ctx.filter = "none";
    this.paintMarks(ratio);
    if (this.loupe) this.paintLoupe(source, e, ratio, scale, x, y);
  }
  paintMarks(ratio) {
    const ctx = this.ctx, marks = this.marks.get(this.image.id) || [];
    ctx.lineWidth = 2 * ratio;
    ctx.font = `${13 * ratio}px system-ui, sans-serif`;
    for (const m of marks) {
      const [ax, ay] = this.toCanvas(m.x1, m.y1), [bx, by] = this.toCanvas(m.x2, m.y2);
      ctx.strokeStyle = "#ffd400";
      ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke();
      for (const [px, py] of [[ax, ay], [bx, by]]) { ctx.beginPath(); ctx.arc(px, py, 3 * ratio, 0, 2 * Math.PI); ctx.stroke(); }
      const text = this.viewer.distanceText(this.image, m);
      const tx = (ax + bx) / 2 + 8 * ratio, ty = (ay + by) / 2 - 8 * ratio;
      const width = ctx.measureText(text).width;
      ctx.fillStyle = "rgba(0,0,0,0.7)";
      ctx.fillRect(tx - 3 * ratio, ty - 14 * ratio, width + 6 * ratio, 18 * ratio);
      ctx.fillStyle = "#ffd400";
      ctx.fillText(text, tx, ty);
    }
  }
  paintLoupe(source, e, ratio, scale, x, y) {
    // A circle of the image at three times the current scale, centred on the pointer.
    const ctx = this.ctx, r = 90 * ratio, factor = 3;
    const cx = this.loupe.x * ratio, cy = this.loupe.y * ratio;
    ctx.save();
    ctx.beginPath(); ctx.arc(cx, cy, r, 0, 2 * Math.PI); ctx.clip();
    ctx.fillStyle = "#000"; ctx.fillRect(cx - r, cy - r, 2 * r, 2 * r);
    ctx.imageSmoothingEnabled = scale * factor < 2;
    ctx.drawImage(source, cx - (cx - x) * factor, cy - (cy - y) * factor, e.w * scale * factor, e.h * scale * factor);
    ctx.restore();
    ctx.strokeStyle = "#ffd400"; ctx.lineWidth = 2 * ratio;
    ctx.beginPath(); ctx.arc(cx, cy, r, 0, 2 * Math.PI); ctx.stroke();
  }
}

// ---- the viewer: ports, tools, presets, keys ----
const TOOLS = { w: "wl", p: "pan", z: "zoom", m: "measure", g: "magnify" };

class Viewer {
  constructor(root, data) {
    this.root = root;
    this.data = data;
    this.q = (sel) => root.querySelector(sel);
    this.stage = this.q(".rs-stage");
    this.status = this.q(".rs-status");
    this.tabs = this.q(".rs-tabs");
    this.presetSelect = this.q(".rs-preset");
    this.help = this.q(".rs-help");
    this.lut = new Uint8ClampedArray(65536);
    this.mode = "wl";
    this.linked = true;
    this.shownReported = false;
    this.ports = [new Port(this, 0), new Port(this, 1)];
    this.stage.replaceChildren(...this.ports.map((p) => p.el));
    this.active = this.ports[0];
    this.stages = hangingStages(data.images, data.hanging || ["single"]);
    this.stageIndex = 0;
    this.desk = deskSettings();
    applyDesk(this.desk);
    this.buildTabs();
    this.bind();
    this.resizeObserver = new ResizeObserver(() => this.layoutSize());
    this.resizeObserver.observe(this.stage);
    this.onWindowResize = () => this.layoutSize();
    window.addEventListener("resize", this.onWindowResize);
    keys.viewer = this;
    // What the current and the next case need stays in the store; the rest goes. The same case drawn again (the
    // page re-mounts the viewer after SUBMIT) keeps what was fetched ahead for it.
    if ((data.prefetch || []).length || !lastPrefetch || lastPrefetch.case_ref !== data.case_ref) {
      lastPrefetch = { case_ref: data.case_ref, urls: data.prefetch || [] };
    }
    const wanted = new Set(data.images.flatMap((i) => [i.url, i.preview_url]));
    for (const url of lastPrefetch.urls) wanted.add(url);
    keepOnly(wanted);
    if (data.images.length) { this.hang(0); this.loadRest(); }
    else this.say("This case has no image.");
    this.layoutSize();
  }
  image(id) { return this.data.images.find((i) => i.id === id); }
  openingView(image) {
    return { wc: image.window_center, ww: image.window_width, invert: false, zoom: 1, panX: 0, panY: 0 };
  }
  say(text) { this.status.textContent = text; }
  buildTabs() {
    this.tabs.replaceChildren();
    for (const image of this.data.images) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = image.label;
      button.dataset.imageId = image.id;
      button.title = `Show ${image.label} in the active view (V: next view)`;
      button.addEventListener("click", () => this.put(this.active, image.id));
      this.tabs.appendChild(button);
    }
  }
  async hang(index) {
    const stage = this.stages[index];
    if (!stage) return;
    this.stageIndex = index;
    this.setLayout(stage.ids.length);
    const shows = stage.ids.map((id, i) => this.ports[i].show(this.image(id), index > 0));
    this.setActive(this.ports[0]);
    await Promise.allSettled(shows);
  }
  loadRest() {
    // The other views of this case, then the next case's images, in the background (the queue keeps the order).
    for (const image of this.data.images) {
      if (!loaded(image.url)) request(image.preview_url, false, PRIORITY.rest);
      request(image.url, true, PRIORITY.rest);
    }
    for (const url of lastPrefetch.urls) request(url, !url.endsWith("/preview"), PRIORITY.next);
  }
  setLayout(n) {
    this.layout = n;
    this.root.dataset.layout = String(n);
    this.ports[1].el.hidden = n < 2;
    const button = this.q(".rs-layout");
    button.setAttribute("aria-pressed", String(n === 2));
    if (n < 2 && this.active === this.ports[1]) this.setActive(this.ports[0]);
    requestAnimationFrame(() => this.ports.forEach((p) => p.image && p.paint()));
  }
  toggleLayout() {
    if (this.layout === 2) { this.setLayout(1); this.updateStatus(); return; }
    const first = this.ports[0].image;
    const other = this.data.images.find((i) => first && i.id !== first.id);
    if (!other) return;
    this.setLayout(2);
    if (!this.ports[1].image || this.ports[1].image.id === first.id) this.ports[1].show(other, true);
    else this.ports[1].paint();
  }
  put(port, id) {
    if (port.image && port.image.id === id) return;
    port.show(this.image(id), true);
    this.setActive(port);
  }
  cycleView(step) {
    const ids = this.data.images.map((i) => i.id);
    const at = ids.indexOf(this.active.image ? this.active.image.id : ids[0]);
    this.put(this.active, ids[(at + step + ids.length) % ids.length]);
  }
  setActive(port) {
    this.active = port;
    this.ports.forEach((p) => p.el.classList.toggle("active", p === port));
    this.tabs.querySelectorAll("button").forEach((b) =>
      b.classList.toggle("active", port.image && Number(b.dataset.imageId) === port.image.id));
    this.fillPresets();
    this.updateStatus();
  }
  fillPresets() {
    const image = this.active.image;
    this.presetSelect.replaceChildren();
    for (const [i, preset] of ((image && image.presets) || []).entries()) {
      const option = document.createElement("option");
      option.value = String(i);
      option.textContent = `${i < 9 ? i + 1 + " · " : ""}${preset.label}`;
      this.presetSelect.appendChild(option);
    }
    this.markPreset();
  }
  markPreset() {
    const image = this.active.image, view = this.active.view;
    const at = image && view ? (image.presets || []).findIndex((p) => p.center === view.wc && p.width === view.ww) : -1;
    this.presetSelect.value = at >= 0 ? String(at) : "";
  }
  preset(index) {
    const port = this.active, image = port.image, preset = image && (image.presets || [])[index];
    if (!preset) return;
    port.view.wc = preset.center; port.view.ww = preset.width;
    port.rewindow();
    this.markPreset();
    this.updateStatus();
  }
  // Zoom and pan of one port, and of the other when linked (window and level stay each image's own).
  changed(port, redraw = true) {
    if (this.linked && this.layout === 2) {
      const other = this.ports[1 - port.index];
      if (other.view && other.image) {
        other.view.zoom = port.view.zoom; other.view.panX = port.view.panX; other.view.panY = port.view.panY;
        other.paint();
      }
    }
    if (redraw) port.paint();
    this.updateStatus();
  }
  zoomBy(port, factor, mx = 0, my = 0) {
    const zoom = Math.min(16, Math.max(0.25, port.view.zoom * factor));
    const k = zoom / port.view.zoom;
    port.view.panX = mx - (mx - port.view.panX) * k;
    port.view.panY = my - (my - port.view.panY) * k;
    port.view.zoom = zoom;
    this.changed(port);
  }
  reset(port = this.active) {
    if (!port.image) return;
    port.view = this.openingView(port.image);
    port.rewindow();
    this.changed(port, false);
    this.markPreset();
  }
  invert() {
    const port = this.active;
    if (!port.image) return;
    port.view.invert = !port.view.invert;
    this.q(".rs-invert").setAttribute("aria-pressed", String(port.view.invert));
    port.rewindow();
    this.updateStatus();
  }
  setMode(mode) {
    this.mode = mode;
    this.root.querySelectorAll(".rs-mode").forEach((b) => {
      b.classList.toggle("active", b.dataset.mode === mode);
      b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
    });
    this.updateStatus();
  }
  distanceText(image, m) {
    const dx = m.x2 - m.x1, dy = m.y2 - m.y1;
    if (image.spacing_mm) {
      const [row, col] = image.spacing_mm;
      const mm = Math.hypot(dx * col, dy * row);
      return `${mm.toFixed(1)} mm${image.spacing_source === "ImagerPixelSpacing" ? " (at detector)" : ""}`;
    }
    // Pixels of the file, not of the display copy: what another viewer would report.
    return `${Math.round(Math.hypot(dx, dy))} px (no pixel spacing in the file)`;
  }
  updateStatus() {
    const port = this.active, image = port.image, view = port.view;
    if (!image || !view) return;
    const fidelity = port.el.dataset.fidelity === "full" ? "" : " · preview (full quality loading…)";
    const marks = port.marks.get(image.id) || [];
    const last = marks.length ? ` (last ${this.distanceText(image, marks[marks.length - 1])})` : "";
    this.say(`${image.label} · W ${Math.round(view.ww)} L ${Math.round(view.wc)} · ${Math.round(view.zoom * 100)}%`
      + (view.invert ? " · inverted" : "") + (this.layout === 2 && this.linked ? " · linked" : "")
      + (marks.length ? ` · ${marks.length} measurement${marks.length > 1 ? "s" : ""}${last}` : "")
      + (this.mode === "measure" && !image.spacing_mm ? " · no pixel spacing: distances in pixels" : "") + fidelity);
  }
  drawn(port) {
    if (port === this.active) this.updateStatus();
    if (port.index === 0 && port.el.dataset.fidelity === "full" && !this.root.dataset.fullAt) {
      this.root.dataset.full = "1";
      this.root.dataset.fullAt = String(Math.round(performance.timeOrigin + performance.now()));
      performance.mark("readerstudy:full-fidelity");
    }
    // The clock starts when the case's first image (the first viewport's, preview or full) is on screen.
    if (port.index === 0 && !this.shownReported && this.data.clock !== false) {
      this.shownReported = true;
      requestAnimationFrame(() => requestAnimationFrame(() => this.reportShown()));
    }
  }
  async reportShown() {
    const shownAt = performance.now();
    performance.mark("readerstudy:first-image");
    if (currentClock) currentClock.start();
    this.root.dataset.shown = "1";
    // When the image was drawn, by this page's clock (ms since 1970): what the server's clock start should be.
    this.root.dataset.shownAt = String(Math.round(performance.timeOrigin + shownAt));
    const response = await beacon(`/api/reading/${this.data.case_ref}/shown`, {}, shownAt);
    if (response && response.ok) this.root.dataset.clock = "started";
  }
  layoutSize() {
    // As tall as the window allows: from the stage's top to the window's bottom, less the status line.
    const top = this.stage.getBoundingClientRect().top;
    const below = this.status.getBoundingClientRect().height + 10;
    const height = Math.max(240, Math.floor(window.innerHeight - top - below));
    this.stage.style.height = `${height}px`;
    this.ports.forEach((p) => p.image && p.paint());
    const host = this.hostColumn();
    this.q(".rs-splitter").hidden = !host || this.root.classList.contains("rs-focused");
  }
  hostColumn() {
    const host = this.root.getRootNode().host;
    return host ? host.closest('[data-testid="stHorizontalBlock"]') : null;
  }
  setShare(share) {
    this.desk.share = Math.round(Math.min(85, Math.max(35, share)));
    this.q(".rs-splitter").setAttribute("aria-valuenow", String(this.desk.share));
    applyDesk(this.desk);
    saveDesk(this.desk);
  }
  togglePanel() {
    this.desk.hidden = !this.desk.hidden;
    this.panelButton();
    applyDesk(this.desk);
    saveDesk(this.desk);
    requestAnimationFrame(() => this.layoutSize());
  }
  panelButton() {
    const button = this.q(".rs-panel");
    button.textContent = this.desk.hidden ? "Show task" : "Hide task";
    button.setAttribute("aria-pressed", String(!!this.desk.hidden));
  }
  toggleFocus(on = !this.root.classList.contains("rs-focused")) {
    this.root.classList.toggle("rs-focused", on);
    document.documentElement.classList.toggle("rs-focus", on);
    this.q(".rs-focus-button").setAttribute("aria-pressed", String(on));
    if (on && this.root.requestFullscreen && !document.fullscreenElement) this.root.requestFullscreen().catch(() => {});
    if (!on && document.fullscreenElement) document.exitFullscreen().catch(() => {});
    requestAnimationFrame(() => this.layoutSize());
  }
  toggleHelp(on = this.help.hidden) {
    this.help.hidden = !on;
    if (on) { this.helpReturn = document.activeElement; this.q(".rs-help-close").focus(); }
    else if (this.helpReturn && this.helpReturn.focus) this.helpReturn.focus();
  }
  bind() {
    this.root.querySelectorAll(".rs-mode").forEach((b) => b.addEventListener("click", () => this.setMode(b.dataset.mode)));
    this.q(".rs-invert").addEventListener("click", () => this.invert());
    this.q(".rs-reset").addEventListener("click", () => this.reset());
    this.q(".rs-layout").addEventListener("click", () => this.toggleLayout());
    this.q(".rs-link").addEventListener("click", () => this.toggleLink());
    this.q(".rs-panel").addEventListener("click", () => this.togglePanel());
    this.q(".rs-focus-button").addEventListener("click", () => this.toggleFocus());
    this.q(".rs-help-button").addEventListener("click", () => this.toggleHelp(true));
    this.q(".rs-help-close").addEventListener("click", () => this.toggleHelp(false));
    this.help.addEventListener("click", (e) => { if (e.target === this.help) this.toggleHelp(false); });
    this.presetSelect.addEventListener("change", () => this.preset(Number(this.presetSelect.value)));
    this.panelButton();
    this.onFullscreen = () => { if (!document.fullscreenElement && this.root.classList.contains("rs-focused")) this.toggleFocus(false); };
    document.addEventListener("fullscreenchange", this.onFullscreen);
    const splitter = this.q(".rs-splitter");
    splitter.setAttribute("aria-valuenow", String(this.desk.share));
    splitter.addEventListener("pointerdown", (e) => {
      const row = this.hostColumn();
      if (!row) return;
      splitter.setPointerCapture(e.pointerId);
      splitter.classList.add("dragging");
      const box = row.getBoundingClientRect();
      const move = (m) => this.setShare(((m.clientX - box.left) / box.width) * 100);
      const up = () => { splitter.classList.remove("dragging"); splitter.removeEventListener("pointermove", move); };
      splitter.addEventListener("pointermove", move);
      splitter.addEventListener("pointerup", up, { once: true });
    });
    splitter.addEventListener("keydown", (e) => {
      if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
        e.preventDefault(); e.stopPropagation();
        this.setShare(this.desk.share + (e.key === "ArrowRight" ? 3 : -3));
      }
    });
    for (const port of this.ports) this.bindPort(port);
  }
  toggleLink() {
    this.linked = !this.linked;
    this.q(".rs-link").setAttribute("aria-pressed", String(this.linked));
    if (this.linked) this.changed(this.active, false);
    this.updateStatus();
  }
  bindPort(port) {
    const c = port.canvas;
    port.el.addEventListener("focus", () => this.setActive(port));
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("pointerdown", (e) => {
      if (!port.image || !port.shown) return;
      this.setActive(port);
      c.setPointerCapture(e.pointerId);
      const rect = c.getBoundingClientRect();
      const x = e.clientX - rect.left, y = e.clientY - rect.top;
      // Left drag does the chosen tool; right or middle drag (or Shift) always pans.
      const tool = e.button === 0 && !e.shiftKey ? this.mode : "pan";
      this.drag = { port, tool, x: e.clientX, y: e.clientY, wc: port.view.wc, ww: port.view.ww,
                    px: port.view.panX, py: port.view.panY, zoom: port.view.zoom };
      if (tool === "measure") {
        const [ix, iy] = port.toImage(x, y);
        const marks = port.marks.get(port.image.id) || [];
        this.drag.mark = { x1: ix, y1: iy, x2: ix, y2: iy };
        marks.push(this.drag.mark);
        port.marks.set(port.image.id, marks);
      }
      if (tool === "magnify") { port.loupe = { x, y }; port.paint(); }
    });
    c.addEventListener("pointermove", (e) => {
      const d = this.drag;
      if (!d || d.port !== port) return;
      const dx = e.clientX - d.x, dy = e.clientY - d.y;
      const rect = c.getBoundingClientRect();
      if (d.tool === "pan") {
        port.view.panX = d.px + dx; port.view.panY = d.py + dy; this.changed(port);
      } else if (d.tool === "zoom") {
        port.view.zoom = Math.min(16, Math.max(0.25, d.zoom * Math.exp(-dy * 0.005))); this.changed(port);
      } else if (d.tool === "measure") {
        [d.mark.x2, d.mark.y2] = port.toImage(e.clientX - rect.left, e.clientY - rect.top); port.paint();
      } else if (d.tool === "magnify") {
        port.loupe = { x: e.clientX - rect.left, y: e.clientY - rect.top }; port.paint();
      } else {
        // Drag right widens the window, drag down raises the level: about one window width per 400 px.
        const step = Math.max(d.ww, 1) / 400;
        port.view.ww = Math.max(1, d.ww + dx * step);
        port.view.wc = d.wc + dy * step;
        if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = null; port.rewindow(); this.markPreset(); this.updateStatus(); });
      }
    });
    const end = () => {
      const d = this.drag;
      this.drag = null;
      if (!d || d.port !== port) return;
      if (d.tool === "measure" && Math.hypot(d.mark.x2 - d.mark.x1, d.mark.y2 - d.mark.y1) < 2) {
        port.marks.get(port.image.id).pop();  // a click, not a measurement
      }
      if (d.tool === "magnify") port.loupe = null;
      port.paint();
      this.updateStatus();
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
    c.addEventListener("wheel", (e) => {
      if (!port.image || !port.shown) return;
      e.preventDefault();
      const rect = c.getBoundingClientRect();
      this.setActive(port);
      this.zoomBy(port, Math.exp(-e.deltaY * 0.0015), e.clientX - rect.left - rect.width / 2, e.clientY - rect.top - rect.height / 2);
    }, { passive: false });
    c.addEventListener("dblclick", () => this.reset(port));
  }
  key(e) {
    // The viewer's single-key shortcuts (docs/readers.md); the caller has ruled out text fields and modifiers.
    const k = e.key, port = this.active;
    if (k === "?") return this.toggleHelp();
    if (!this.help.hidden) return k === "Escape" ? this.toggleHelp(false) : undefined;
    if (k === "Escape") {
      if (this.root.classList.contains("rs-focused")) this.toggleFocus(false);
      return;
    }
    const lower = k.length === 1 ? k.toLowerCase() : k;
    if (TOOLS[lower] && !e.shiftKey) return this.setMode(TOOLS[lower]);
    if (/^[1-9]$/.test(k)) return this.preset(Number(k) - 1);
    if (!port.image || !port.view) return false;
    const pan = e.shiftKey ? 120 : 30;
    switch (lower) {
      case "i": return e.shiftKey ? false : this.invert();
      case "r": return this.reset();
      case "+": case "=": return this.zoomBy(port, 1.25);
      case "-": case "_": return this.zoomBy(port, 0.8);
      case "ArrowLeft": port.view.panX += pan; return this.changed(port);
      case "ArrowRight": port.view.panX -= pan; return this.changed(port);
      case "ArrowUp": port.view.panY += pan; return this.changed(port);
      case "ArrowDown": port.view.panY -= pan; return this.changed(port);
      case "v": return this.cycleView(e.shiftKey ? -1 : 1);
      case "s": return this.toggleLayout();
      case "h": return this.hang((this.stageIndex + 1) % this.stages.length);
      case "l": return this.toggleLink();
      case "x": port.marks.set(port.image.id, []); port.paint(); return this.updateStatus();
      case "Delete": case "Backspace": (port.marks.get(port.image.id) || []).pop(); port.paint(); return this.updateStatus();
      case "f": return this.toggleFocus();
      case "t": return this.togglePanel();
      default: return false;
    }
  }
  destroy() {
    this.resizeObserver.disconnect();
    window.removeEventListener("resize", this.onWindowResize);
    document.removeEventListener("fullscreenchange", this.onFullscreen);
    if (keys.viewer === this) keys.viewer = null;
    document.documentElement.classList.remove("rs-focus");
  }
}

// ---- the page's keyboard: one listener, whatever is on screen ----
// Single keys act only when no text field has the focus (typing "i" in the report must not invert the image);
// Ctrl+Enter is the one chord that acts from the report box too (the editor handles it there). Keys meant for
// the page's Streamlit parts (the instructions, the draft) reach them through the DOM, never a global.
const keys = { viewer: null };

function editable(target) {
  if (!target || !target.tagName) return false;
  const tag = target.tagName.toLowerCase();
  return tag === "textarea" || tag === "select" || target.isContentEditable
    || (tag === "input" && !["radio", "checkbox", "button", "submit"].includes((target.type || "").toLowerCase()));
}

function pageKey(e) {
  if (e.isComposing) return;
  const target = e.composedPath()[0];
  if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
    if (editable(target)) return;  // the report box's own handler submits
    const asked = { case_ref: keys.viewer && keys.viewer.data.case_ref, handled: false };
    document.dispatchEvent(new CustomEvent("readerstudy:submit", { detail: asked }));
    if (!asked.handled && !e.repeat) {
      // No editor (the case is submitted): Ctrl+Enter is Save and next.
      const save = [...document.querySelectorAll("[data-testid='stFormSubmitButton'] button")]
        .find((b) => b.innerText.trim().startsWith("Save and next"));
      if (save) { save.click(); asked.handled = true; }
    }
    if (asked.handled) e.preventDefault();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (editable(target)) {
    if (e.key === "Escape") target.blur();
    return;
  }
  if (e.key === "e" || e.key === "E") {
    const asked = { handled: false };
    document.dispatchEvent(new CustomEvent("readerstudy:focus-editor", { detail: asked }));
    if (asked.handled) e.preventDefault();
    return;
  }
  if (e.key === "d" || e.key === "D") {
    document.documentElement.classList.toggle("rs-draft-hidden");
    return;
  }
  if (e.key === "I" && e.shiftKey) {
    const summary = document.querySelector(".st-key-rs-task [data-testid='stExpander'] summary");
    if (summary) { summary.click(); summary.focus(); e.preventDefault(); }
    return;
  }
  if (keys.viewer && keys.viewer.root.isConnected && keys.viewer.key(e) !== false) e.preventDefault();
}
// Captured on the window: some of Streamlit's widgets (the radio buttons) keep their keys from bubbling up.
window.addEventListener("keydown", pageKey, true);

export default function (component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector(".rs-viewer");
  if (!root || !data) return;
  clockFor(data.clock === false ? null : data.case_ref, data.idle_threshold_s);
  if (root.__viewer && root.__viewer.data.case_ref === data.case_ref) return;
  if (root.__viewer) root.__viewer.destroy();
  root.__viewer = new Viewer(root, data);
  root.dataset.case = data.case_ref;
  return () => { if (!root.isConnected && root.__viewer) { root.__viewer.destroy(); root.__viewer = null; } };
}
