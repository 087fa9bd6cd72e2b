// Gives the page's <audio> player the bearer token. A media element cannot send an
// Authorization header, and the MP3 download needs one; this worker adds it to the
// player's requests for /v1/mp3s/<id> (Range included, so seeking fetches only what it
// needs, answered 206). The token is the one the page keeps in localStorage, handed over
// by the page (postMessage) and kept in a cache, since a worker may be stopped and
// started again between requests. Served at /sw.js so its scope is the whole origin.
const STORE = "mp3mesh-player";
const TOKEN_URL = "/sw-token";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("message", (event) => {
  const token = (event.data && event.data.token) || "";
  event.waitUntil(
    caches.open(STORE).then(async (cache) => {
      if (token) await cache.put(TOKEN_URL, new Response(token));
      else await cache.delete(TOKEN_URL);
      if (event.source) event.source.postMessage({ tokenSet: Boolean(token) });
    }),
  );
});

async function withToken(request) {
  const stored = await (await caches.open(STORE)).match(TOKEN_URL);
  const headers = new Headers();
  const range = request.headers.get("range");
  if (range) headers.set("range", range);
  if (stored) headers.set("authorization", `Bearer ${await stored.text()}`);
  return fetch(request.url, { headers, mode: "same-origin", credentials: "omit", cache: "no-store" });
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin === self.location.origin && url.pathname.startsWith("/v1/mp3s/") && event.request.method === "GET") {
    event.respondWith(withToken(event.request));
  }
});
