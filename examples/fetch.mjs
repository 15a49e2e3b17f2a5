// Print the summaries of the five newest pushes (Node 18+, no dependencies).
// Usage: TRACKER_URL=http://127.0.0.1:8080 TRACKER_API_KEY=gpt_... node examples/fetch.mjs
const base = process.env.TRACKER_URL ?? 'http://127.0.0.1:8080';
const key = process.env.TRACKER_API_KEY;
if (!key) throw new Error('set TRACKER_API_KEY to a project key');

const res = await fetch(`${base}/api/v1/pushes?limit=5`, {
  headers: { Authorization: `Bearer ${key}` }
});
if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
const { pushes } = await res.json();
pushes.forEach(p => console.log(p.summary));
