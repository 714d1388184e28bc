// Report editor with autosave and the SUBMIT button (Streamlit components v2 module).
// The text is autosaved every few seconds and when the page is left, straight to the server. SUBMIT sends the
// text with the client's reading-clock totals straight to the server too, at the press (retried while the
// server cannot be reached, with the press's age), so the clock stops at the press and nothing typed in the
// last instant is lost. Only then does the page rerun (a trigger) to show the questions. A refused submit
// says why in the editor, which stays usable with the text exactly as typed: nothing here ever replaces what
// the reader has in the box, except a tab taking over from another tab of the same case (below).
//
// One tab per case edits: the case is held with a Web Lock named after it. A second tab of the same browser on
// the same case is told at once and stays read-only until it is the only one (the lock passes to it when the
// other tab closes or leaves the case); it then takes the text the server has, which the other tab autosaved. The
// closing tab's last save may still be on its way (a keepalive request outlives its page), so the tab taking over
// looks again after TAKEOVER_RECHECK_MS and takes a newer text, while nothing has been typed in it since.

// The viewer keeps the reading clock; this asks it, by a DOM event, for the case's totals (or to forget them
// once they are stored). null when no clock runs for the case.
function askClock(caseRef, forget) {
  const detail = { case_ref: caseRef, forget, answer: null };
  document.dispatchEvent(new CustomEvent("readerstudy:clock", { detail }));
  return detail.answer;
}

const TAKEOVER_RECHECK_MS = [1000, 3000];
const OTHER_TAB = "This case is open in another tab of this browser. This tab is read-only until that one is closed "
  + "or has left the case; your text there is saved as usual.";

class Editor {
  constructor(root, data, setTriggerValue) {
    this.root = root;
    this.data = data;
    this.setTriggerValue = setTriggerValue;
    this.text = root.querySelector(".rs-text");
    this.saved = root.querySelector(".rs-saved");
    this.count = root.querySelector(".rs-count");
    this.notice = root.querySelector(".rs-tab-notice");
    this.button = root.querySelector(".rs-submit");
    this.withText = data.mode !== "none";
    this.limit = data.limit || 20000;
    root.classList.toggle("no-text", !this.withText);
    this.text.value = data.text || "";
    this.text.placeholder = data.placeholder || "";
    this.lastSaved = this.text.value;
    this.locked = false;
    this.held = false;  // this tab holds the case (the only tab on it)
    this.button.textContent = data.submit_label || "Submit";
    this.onInput = () => { this.saved.textContent = "Not saved yet…"; this.counter(); };
    this.onBlur = () => this.save();
    this.onHide = () => { if (document.hidden) this.save(true); };
    this.onPageHide = () => this.save(true);
    this.onSubmit = () => this.submit();
    this.onKey = (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "Enter" && !e.repeat) { e.preventDefault(); this.submit(); }
      if (e.key === "Escape") this.text.blur();
    };
    this.onAskSubmit = (e) => {
      if (e.detail.case_ref && e.detail.case_ref !== this.data.case_ref) return;
      e.detail.handled = true;
      this.submit();
    };
    this.onAskFocus = (e) => { if (this.withText) { e.detail.handled = true; this.text.focus(); } };
    this.text.addEventListener("input", this.onInput);
    this.text.addEventListener("blur", this.onBlur);
    this.text.addEventListener("keydown", this.onKey);
    document.addEventListener("visibilitychange", this.onHide);
    document.addEventListener("readerstudy:submit", this.onAskSubmit);
    document.addEventListener("readerstudy:focus-editor", this.onAskFocus);
    window.addEventListener("pagehide", this.onPageHide);
    this.button.addEventListener("click", this.onSubmit);
    this.timer = setInterval(() => this.save(), Math.max(1, data.autosave_s || 3) * 1000);
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.onWindowResize = () => this.fit();
    window.addEventListener("resize", this.onWindowResize);
    const panel = this.panel();
    if (panel) this.resizeObserver.observe(panel);
    this.counter();
    this.hold();
    requestAnimationFrame(() => this.fit());
  }
  panel() {
    const host = this.root.getRootNode().host;
    return host ? host.closest(".st-key-rs-task") : null;
  }
  fit() {
    // The box takes the panel's height left below it, so Submit is on screen without scrolling.
    if (!this.withText) return;
    const panel = this.panel();
    const bottom = panel ? Math.min(panel.getBoundingClientRect().bottom, window.innerHeight) : window.innerHeight;
    const row = this.button.getBoundingClientRect().height + 14;
    const room = Math.floor(bottom - this.text.getBoundingClientRect().top - row);
    this.text.style.height = `${Math.max(120, Math.min(room, Math.round(window.innerHeight * 0.75)))}px`;
  }
  counter() {
    const n = this.text.value.length;
    this.count.textContent = `${n.toLocaleString("en-US")} / ${this.limit.toLocaleString("en-US")} characters`;
    this.count.classList.toggle("near", n > this.limit * 0.9 && n <= this.limit);
    this.count.classList.toggle("over", n > this.limit);
    if (n > this.limit) this.count.textContent += ` (${(n - this.limit).toLocaleString("en-US")} over the limit)`;
  }
  setEditable(on) {
    this.text.readOnly = !on;
    this.button.disabled = !on;
  }
  hold() {
    // Until this tab holds the case it is read-only (the template starts read-only too).
    this.setEditable(false);
    const name = `readerstudy-case-${this.data.case_ref}`;
    if (!(navigator.locks && navigator.locks.request)) {  // no Web Locks (an old browser): edit as before
      this.held = true;
      this.setEditable(true);
      return;
    }
    this.release = null;
    const released = new Promise((resolve) => { this.release = resolve; });
    let first = true;
    const take = (lock) => {
      if (!lock) return null;
      const wasWaiting = !first;
      this.held = true;
      this.notice.hidden = true;
      if (wasWaiting) this.takeOver();
      else { this.setEditable(true); this.root.dataset.tab = "holder"; }
      return released;  // held until this editor goes
    };
    navigator.locks.request(name, { ifAvailable: true }, take).then((got) => {
      if (this.held || this.gone) return;
      first = false;
      this.root.dataset.tab = "second";
      this.notice.textContent = OTHER_TAB;
      this.notice.hidden = false;
      this.saved.textContent = "";
      return navigator.locks.request(name, (lock) => (this.gone ? null : take(lock)));
    });
  }
  fetchText() {
    return fetch(`/api/reading/${this.data.case_ref}/text`,
                 { headers: BEACON_HEADERS, credentials: "same-origin", cache: "no-store" });
  }
  async takeOver() {
    // The other tab has gone: take the text the server has now (it autosaved there), then edit.
    try {
      const response = await this.fetchText();
      const answer = await response.json();
      if (!response.ok || answer.status !== "in_progress") {
        this.notice.textContent = "This case was submitted in another tab; the first submission stands.";
        this.notice.hidden = false;
        this.locked = true;
        this.setTriggerValue("submitted", { case_ref: this.data.case_ref, outcome: "already", nonce: Date.now() });
        return;
      }
      if (this.withText) { this.text.value = answer.text; this.lastSaved = answer.text; this.counter(); }
      this.saved.textContent = "This tab is the only one on the case now; you can edit.";
      this.setEditable(true);
      this.root.dataset.tab = "holder";
      if (this.withText) this.lookAgain(answer.text, TAKEOVER_RECHECK_MS);
    } catch (error) {
      this.saved.textContent = "Could not fetch the latest text; reload the page to edit here.";
    }
  }
  lookAgain(taken, delays) {
    // A closing tab's last save is a keepalive request that may reach the server after this tab fetched the text:
    // look again a little later, and take the newer text as long as nothing has been typed here since.
    for (const ms of delays) {
      setTimeout(async () => {
        if (this.gone || this.locked || this.text.value !== taken) return;
        try {
          const response = await this.fetchText();
          const answer = await response.json();
          if (!response.ok || answer.status !== "in_progress" || typeof answer.text !== "string") return;
          if (answer.text === taken || this.gone || this.locked || this.text.value !== taken) return;
          this.text.value = answer.text;
          this.lastSaved = answer.text;
          taken = answer.text;
          this.counter();
          this.saved.textContent = "Updated with the other tab's last save.";
        } catch (error) { /* the next look, or the reader's own typing, decides */ }
      }, ms);
    }
  }
  async save(leaving = false) {
    if (!this.withText || this.locked || !this.held) return;
    // One save at a time, so an older text can never land after a newer one.
    if (this.inFlight && !leaving) { this.again = true; return; }
    const value = this.text.value;
    if (value === this.lastSaved) return;
    if (value.length > this.limit) {
      // The server refuses it; the counter says so, and a refused Submit's message stays in view.
      if (!this.saved.textContent.startsWith("Not submitted")) {
        this.saved.textContent = "Not saved: the report is over the limit; shorten it to save.";
      }
      return;
    }
    this.lastSaved = value;
    const body = JSON.stringify({ text: value });
    this.inFlight = true;
    try {
      const response = await fetch(`/api/reading/${this.data.case_ref}/autosave`, {
        method: "POST", headers: BEACON_HEADERS, credentials: "same-origin", body,
        // keepalive lets the request outlive a closing page (browsers cap it at 64 kB in flight). Every save
        // uses it, not only the page-leave one: a periodic save still in flight when the tab closes already
        // counts as saved (lastSaved), so the page-leave save skips it and it must not die with the page.
        keepalive: body.length < 60000,
      });
      if (response.ok) {
        this.saved.textContent = `Saved ${new Date().toLocaleTimeString()}`;
      } else {
        const problem = await response.json().catch(() => ({}));
        this.saved.textContent = `Not saved: ${problem.error || response.status}`;
        if (response.status !== 409) this.lastSaved = null;  // try again on the next tick
      }
    } catch (error) {
      this.lastSaved = null;
      this.saved.textContent = "Not saved (connection lost); retrying…";
    } finally {
      this.inFlight = false;
      if (this.again) { this.again = false; this.save(); }
    }
  }
  submit() {
    const pressedAt = performance.now();
    if (this.locked || !this.held) return;
    if (this.withText && !this.text.value.trim()) {
      this.saved.textContent = "The report is empty; write the findings before submitting.";
      return;
    }
    if (this.withText && this.text.value.length > this.limit) {
      // Said here at once, nothing sent: the box keeps every character for the reader to shorten.
      this.saved.textContent = `Not submitted: the report is ${this.text.value.length.toLocaleString("en-US")} `
        + `characters long; the limit is ${this.limit.toLocaleString("en-US")}. Your text is kept.`;
      return;
    }
    this.locked = true;           // a double click sends one submit
    this.button.disabled = true;
    this.button.textContent = "Submitting…";
    this.text.readOnly = true;
    const clock = askClock(this.data.case_ref, false);
    const own = clock !== null;
    const body = { text: this.withText ? this.text.value : null, ...(clock || {}), press_id: randomId() };
    this.send(body, pressedAt, own);
  }
  async send(body, pressedAt, own) {
    const response = await beacon(`/api/reading/${this.data.case_ref}/submit`, body, pressedAt, (problem) => {
      this.saved.textContent = `Not submitted yet: ${problem}. Your text is kept; retrying…`;
    });
    if (response && response.ok) {
      // Stored: the clock's totals are in the database, the browser no longer keeps them.
      if (own) askClock(this.data.case_ref, true);
      this.root.dataset.submitted = "1";
      this.saved.textContent = "Submitted: the server has your report.";
      this.button.textContent = "Submitted";
      this.showNext("stored");
      return;
    }
    const answer = response ? await response.json().catch(() => ({})) : {};
    if (response && answer.kind === "AlreadySubmitted") {
      this.saved.textContent = `Not submitted from this tab: ${answer.error}.`;
      this.root.dataset.submitted = "other";
      this.showNext("already");
      return;
    }
    // Refused (or given up after many minutes): nothing was stored; the editor is usable again, text as typed.
    this.locked = false;
    this.button.disabled = false;
    this.button.textContent = this.data.submit_label || "Submit";
    this.text.readOnly = false;
    this.saved.textContent = response
      ? `Not submitted: ${answer.error || `the server answered ${response.status}`}.`
        + (this.withText ? " Your text is kept." : "")
      : "Not submitted: the server could not be reached for many minutes. Your text is kept; press Submit again.";
  }
  showNext(outcome) {
    // The page shows the questions (or the next case) on its next run. The request for it rides on the
    // websocket, which may be reconnecting (a server restart): ask again until the page has moved on.
    const ask = () => this.setTriggerValue("submitted", { case_ref: this.data.case_ref, outcome, nonce: Date.now() });
    ask();
    clearInterval(this.nextTimer);
    this.nextTimer = setInterval(ask, 3000);
  }
  destroy() {
    this.gone = true;
    if (this.release) this.release();  // the case passes to a tab waiting for it
    clearInterval(this.timer);
    clearInterval(this.nextTimer);
    this.resizeObserver.disconnect();
    window.removeEventListener("resize", this.onWindowResize);
    document.removeEventListener("visibilitychange", this.onHide);
    document.removeEventListener("readerstudy:submit", this.onAskSubmit);
    document.removeEventListener("readerstudy:focus-editor", this.onAskFocus);
    window.removeEventListener("pagehide", this.onPageHide);
    this.text.removeEventListener("input", this.onInput);
    this.text.removeEventListener("blur", this.onBlur);
    this.text.removeEventListener("keydown", this.onKey);
    this.button.removeEventListener("click", this.onSubmit);
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".rs-editor");
  if (!root || !data) return;
  // Unmounted (the page moved on to the questions or the next case): stop autosaving and asking for reruns.
  const cleanup = () => {
    if (root.__editor && !root.isConnected) { root.__editor.destroy(); root.__editor = null; }
  };
  // A rerun hands the same case again: keep what the reader is typing (and a submit in flight).
  if (root.__editor && root.__editor.data.case_ref === data.case_ref && root.__editor.data.mode === data.mode) {
    root.__editor.setTriggerValue = setTriggerValue;
    return cleanup;
  }
  if (root.__editor) root.__editor.destroy();
  root.__editor = new Editor(root, data, setTriggerValue);
  root.dataset.case = data.case_ref;
  return cleanup;
}
