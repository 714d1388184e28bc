// Report editor with autosave and the SUBMIT button (Streamlit components v2 module).
// The text is autosaved every few seconds and when the page is left, straight to the server. SUBMIT sends the
// text with the client's reading-clock totals straight to the server too, at the press (retried while the
// server cannot be reached, with the press's age), so the clock stops at the press and nothing typed in the
// last instant is lost. Only then does the page rerun (a trigger) to show the questions. A refused submit
// says why in the editor, which stays usable with the text as typed.

// The viewer keeps the reading clock; this asks it, by a DOM event, for the case's totals (or to forget them
// once they are stored). null when no clock runs for the case.
function askClock(caseRef, forget) {
  const detail = { case_ref: caseRef, forget, answer: null };
  document.dispatchEvent(new CustomEvent("readerstudy:clock", { detail }));
  return detail.answer;
}

class Editor {
  constructor(root, data, setTriggerValue) {
    this.root = root;
    this.data = data;
    this.setTriggerValue = setTriggerValue;
    this.text = root.querySelector(".rs-text");
    this.saved = root.querySelector(".rs-saved");
    this.button = root.querySelector(".rs-submit");
    this.withText = data.mode !== "none";
    root.classList.toggle("no-text", !this.withText);
    this.text.value = data.text || "";
    this.text.readOnly = false;  // the template starts read-only, so nothing is typed before the draft is in
    this.text.placeholder = data.placeholder || "";
    this.lastSaved = this.text.value;
    this.locked = false;
    this.button.disabled = false;
    this.button.textContent = data.submit_label || "Submit";
    this.onInput = () => { this.saved.textContent = "Not saved yet…"; };
    this.onBlur = () => this.save();
    this.onHide = () => { if (document.hidden) this.save(true); };
    this.onPageHide = () => this.save(true);
    this.onSubmit = () => this.submit();
    this.text.addEventListener("input", this.onInput);
    this.text.addEventListener("blur", this.onBlur);
    document.addEventListener("visibilitychange", this.onHide);
    window.addEventListener("pagehide", this.onPageHide);
    this.button.addEventListener("click", this.onSubmit);
    this.timer = setInterval(() => this.save(), Math.max(1, data.autosave_s || 3) * 1000);
  }
  async save(leaving = false) {
    if (!this.withText || this.locked) return;
    // One save at a time, so an older text can never land after a newer one.
    if (this.inFlight && !leaving) { this.again = true; return; }
    const value = this.text.value;
    if (value === this.lastSaved) return;
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
    if (this.locked) return;
    if (this.withText && !this.text.value.trim()) {
      this.saved.textContent = "The report is empty; write the findings before submitting.";
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
      ? `Not submitted: ${answer.error || `the server answered ${response.status}`}. Your text is kept.`
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
    clearInterval(this.timer);
    clearInterval(this.nextTimer);
    document.removeEventListener("visibilitychange", this.onHide);
    window.removeEventListener("pagehide", this.onPageHide);
    this.text.removeEventListener("input", this.onInput);
    this.text.removeEventListener("blur", this.onBlur);
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
