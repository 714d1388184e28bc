// Shared by the viewer and the editor (prepended to each module): reports of moments that the reading clock
// depends on, sent the moment they happen and retried while the server cannot be reached (a restart). Each
// attempt says how long ago, by this page's monotonic clock, the moment was (age_s), so the server dates it
// to the moment itself, not to whenever a request finally got through.
const BEACON_HEADERS = { "Content-Type": "application/json", "X-Readerstudy-Client": "1" };

async function beacon(path, body, since) {
  for (let attempt = 0; attempt < 60; attempt++) {
    const ageS = Math.max(0, (performance.now() - since) / 1000);
    try {
      const response = await fetch(path, {
        method: "POST", headers: BEACON_HEADERS, credentials: "same-origin", keepalive: true,
        body: JSON.stringify({ ...body, age_s: Math.round(ageS * 1000) / 1000 }),
      });
      // Answered: done (a refusal such as 404 or 409 would be the same on a retry). 5xx: the server is starting.
      if (response.status < 500) return response;
    } catch (error) { /* unreachable: try again */ }
    await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 250 * 2 ** attempt)));
  }
  return null;
}

function randomId() {
  // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

