// Radiograph viewer and reading clock for one case (Streamlit components v2 module).
// Images arrive as lossless RGB PNGs carrying 16-bit values (R high byte, G low byte), so window/level
// is done here on a canvas without another round trip. The first drawn image starts the server clock;
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

// ---- viewer ----
class Viewer {
  constructor(root, data) {
    this.root = root;
    this.data = data;
    this.canvas = root.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.status = root.querySelector(".rs-status");
    this.tabs = root.querySelector(".rs-tabs");
    this.cache = new Map();   // image id -> {w, h, stored: Uint16Array, offset, gain, bitmap canvas}
    this.mode = "wl";
    this.current = null;
    this.shownReported = false;
    this.buildTabs();
    this.bind();
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(root.querySelector(".rs-stage"));
    if (data.images.length) this.select(data.images[0].id);
    else this.status.textContent = "This case has no image.";
  }
  buildTabs() {
    this.tabs.replaceChildren();
    for (const image of this.data.images) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = image.label;
      button.dataset.imageId = image.id;
      button.addEventListener("click", () => this.select(image.id));
      this.tabs.appendChild(button);
    }
  }
  bind() {
    const q = (sel) => this.root.querySelector(sel);
    q(".rs-invert").addEventListener("click", () => { if (this.current) { this.view.invert = !this.view.invert; this.redraw(true); } });
    q(".rs-reset").addEventListener("click", () => this.reset());
    const modeButtons = this.root.querySelectorAll(".rs-mode");
    modeButtons.forEach((b) => b.addEventListener("click", () => {
      this.mode = b.dataset.mode;
      modeButtons.forEach((o) => o.classList.toggle("active", o === b));
    }));
    const c = this.canvas;
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("pointerdown", (e) => {
      if (!this.current) return;
      c.setPointerCapture(e.pointerId);
      // Left drag does the chosen tool; right or middle drag always pans.
      this.drag = { x: e.clientX, y: e.clientY, tool: e.button === 0 && !e.shiftKey ? this.mode : "pan",
                    wc: this.view.wc, ww: this.view.ww, px: this.view.panX, py: this.view.panY };
    });
    c.addEventListener("pointermove", (e) => {
      if (!this.drag) return;
      const dx = e.clientX - this.drag.x, dy = e.clientY - this.drag.y;
      if (this.drag.tool === "pan") {
        this.view.panX = this.drag.px + dx; this.view.panY = this.drag.py + dy; this.paint();
      } else {
        // Drag right widens the window, drag down raises the level: about one window width per 400 px.
        const step = Math.max(this.drag.ww, 1) / 400;
        this.view.ww = Math.max(1, this.drag.ww + dx * step);
        this.view.wc = this.drag.wc + dy * step;
        this.redraw(true);
      }
    });
    const end = () => { this.drag = null; };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
    c.addEventListener("wheel", (e) => {
      if (!this.current) return;
      e.preventDefault();
      const rect = c.getBoundingClientRect();
      const mx = e.clientX - rect.left - rect.width / 2, my = e.clientY - rect.top - rect.height / 2;
      const factor = Math.exp(-e.deltaY * 0.0015);
      const zoom = Math.min(16, Math.max(0.25, this.view.zoom * factor));
      const k = zoom / this.view.zoom;
      this.view.panX = mx - (mx - this.view.panX) * k;
      this.view.panY = my - (my - this.view.panY) * k;
      this.view.zoom = zoom;
      this.paint();
    }, { passive: false });
    c.addEventListener("dblclick", () => this.reset());
  }
  async load(image) {
    if (this.cache.has(image.id)) return this.cache.get(image.id);
    const response = await fetch(image.url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`image ${image.label}: HTTP ${response.status}`);
    const bitmap = await createImageBitmap(await response.blob(), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const w = bitmap.width, h = bitmap.height;
    const scratch = document.createElement("canvas");
    scratch.width = w; scratch.height = h;
    const sctx = scratch.getContext("2d", { willReadFrequently: true, colorSpace: "srgb" });
    sctx.drawImage(bitmap, 0, 0);
    const rgba = sctx.getImageData(0, 0, w, h).data;
    const stored = new Uint16Array(w * h);
    for (let i = 0, j = 0; i < stored.length; i++, j += 4) stored[i] = (rgba[j] << 8) | rgba[j + 1];
    const out = sctx.createImageData(w, h);
    const entry = { image, w, h, stored, out, canvas: scratch, ctx: sctx };
    this.cache.set(image.id, entry);
    return entry;
  }
  async select(imageId) {
    const image = this.data.images.find((i) => i.id === imageId);
    this.tabs.querySelectorAll("button").forEach((b) => b.classList.toggle("active", Number(b.dataset.imageId) === imageId));
    this.status.textContent = `Loading ${image.label}…`;
    try {
      const entry = await this.load(image);
      this.current = entry;
      this.view = { wc: image.window_center, ww: image.window_width, invert: false, zoom: 1, panX: 0, panY: 0 };
      this.redraw(true);
    } catch (error) {
      this.status.textContent = `Could not load ${image.label}: ${error.message}`;
    }
  }
  reset() {
    if (!this.current) return;
    const image = this.current.image;
    this.view = { wc: image.window_center, ww: image.window_width, invert: false, zoom: 1, panX: 0, panY: 0 };
    this.redraw(true);
  }
  redraw(rewindow) {
    const e = this.current;
    if (!e) return;
    if (rewindow) {
      // Window through a 65,536-entry table over the stored values: one lookup per pixel.
      const { offset, gain, invert: mono1 } = e.image;
      const low = this.view.wc - 0.5 - (this.view.ww - 1) / 2;
      const span = Math.max(this.view.ww - 1, 1e-6);
      const flip = mono1 !== this.view.invert;
      if (!this.lut) this.lut = new Uint8ClampedArray(65536);
      for (let s = 0; s < 65536; s++) {
        let v = ((s / gain + offset) - low) * 255 / span;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        this.lut[s] = flip ? 255 - v : v;
      }
      const px = e.out.data, stored = e.stored, lut = this.lut;
      for (let i = 0, j = 0; i < stored.length; i++, j += 4) {
        const g = lut[stored[i]];
        px[j] = g; px[j + 1] = g; px[j + 2] = g; px[j + 3] = 255;
      }
      e.ctx.putImageData(e.out, 0, 0);
    }
    this.paint();
  }
  resize() {
    const stage = this.root.querySelector(".rs-stage");
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(stage.clientWidth * ratio));
    this.canvas.height = Math.max(1, Math.round(stage.clientHeight * ratio));
    this.paint();
  }
  paint() {
    const e = this.current, c = this.canvas, ctx = this.ctx;
    if (!e || !c.width) return;
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, c.width, c.height);
    const fit = Math.min(c.width / e.w, c.height / e.h) * this.view.zoom;
    ctx.imageSmoothingEnabled = this.view.zoom * Math.min(c.width / e.w, c.height / e.h) < 2;
    ctx.imageSmoothingQuality = "high";
    const x = c.width / 2 + this.view.panX * ratio - (e.w * fit) / 2;
    const y = c.height / 2 + this.view.panY * ratio - (e.h * fit) / 2;
    ctx.drawImage(e.canvas, x, y, e.w * fit, e.h * fit);
    this.status.textContent =
      `${e.image.label} · W ${Math.round(this.view.ww)} L ${Math.round(this.view.wc)} · ${Math.round(this.view.zoom * 100)}%` +
      (this.view.invert ? " · inverted" : "");
    if (!this.shownReported && this.data.clock !== false) {
      this.shownReported = true;
      // After the browser has put the pixels on screen, not merely decoded them.
      requestAnimationFrame(() => requestAnimationFrame(() => this.reportShown()));
    }
  }
  async reportShown() {
    const shownAt = performance.now();
    if (currentClock) currentClock.start();
    this.root.dataset.shown = "1";
    // When the image was drawn, by this page's clock (ms since 1970): what the server's clock start should be.
    this.root.dataset.shownAt = String(Math.round(performance.timeOrigin + shownAt));
    const response = await beacon(`/api/reading/${this.data.case_ref}/shown`, {}, shownAt);
    if (response && response.ok) this.root.dataset.clock = "started";
  }
  destroy() { this.resizeObserver.disconnect(); }
}

export default function (component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector(".rs-viewer");
  if (!root || !data) return;
  clockFor(data.clock === false ? null : data.case_ref, data.idle_threshold_s);
  if (root.__viewer && root.__viewer.data.case_ref === data.case_ref) return;
  if (root.__viewer) root.__viewer.destroy();
  root.__viewer = new Viewer(root, data);
  root.dataset.case = data.case_ref;
}
