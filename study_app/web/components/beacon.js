// Shared by the viewer and the editor (prepended to each module): requests that report a moment the reading
// clock depends on (the first image drawn, the SUBMIT press), sent when it happens and retried while the
// server cannot be reached or answers 5xx (a restart, a database busy for a moment). Each attempt says how
// long ago, by this page's monotonic clock, the moment was (age_s), so the server dates the moment itself,
// not whenever a request finally got through. The server accepts ages up to 900 s.
const BEACON_HEADERS = { "Content-Type": "application/json", "X-Readerstudy-Client": "1" };
const BEACON_MAX_AGE_S = 850;

async function beacon(path, body, since, onRetry) {
  for (let attempt = 0; ; attempt++) {
    const ageS = Math.max(0, (performance.now() - since) / 1000);
    if (ageS > BEACON_MAX_AGE_S) return null;
    let problem = "the server cannot be reached";
    try {
      const payload = JSON.stringify({ ...body, age_s: Math.round(ageS * 1000) / 1000 });
      const response = await fetch(path, {
        method: "POST", headers: BEACON_HEADERS, credentials: "same-origin", body: payload,
        // keepalive lets a request outlive a closing page (browsers cap it at 64 kB in flight).
        keepalive: payload.length < 60000,
      });
      // Answered: done (a refusal such as 404, 409 or 422 would be the same on a retry).
      if (response.status < 500) return response;
      const answer = await response.json().catch(() => ({}));
      problem = answer.error || `the server answered ${response.status}`;
    } catch (error) { /* unreachable: try again */ }
    if (onRetry) onRetry(problem, attempt);
    await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 250 * 2 ** attempt)));
  }
}

function randomId() {
  // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

