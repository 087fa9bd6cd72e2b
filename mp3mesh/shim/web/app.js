// The mp3mesh page: the REST surface of the edge that served it (same origin); one library,
// tus-js-client, for resumable uploads. Log in or sign up, upload a video (tus at /files/,
// resumed after a reload when the same file is chosen again), follow the job on
// GET /v1/jobs/{id}:watch (one JSON line per change, the converter's real percent), list
// the jobs, download an MP3, log out. The token lives in localStorage; any 401 on a call
// that carried it signs the page out with the server's reason ("token has expired...").
"use strict";

const TOKEN_KEY = "mp3mesh.token";
// Each PATCH of a resumable upload carries this much; a cut one keeps what arrived.
const UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024;
const EMAIL_KEY = "mp3mesh.email";
const $ = (id) => document.getElementById(id);
const jobs = new Map();
const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function messageOf(status, text) {
  try {
    const body = JSON.parse(text);
    if (body && body.message) return body.message;
  } catch (_) {
    // not JSON: fall through to the status line
  }
  return status ? `the server answered ${status}` : "the server cannot be reached";
}

async function api(path, { method = "GET", body, auth = true } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) headers.Authorization = `Bearer ${token()}`;
  let reply;
  try {
    reply = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (_) {
    throw new ApiError(0, "the server cannot be reached; try again");
  }
  if (!reply.ok) throw new ApiError(reply.status, messageOf(reply.status, await reply.text()));
  return reply;
}

// --- what the page shows ------------------------------------------------------------------

function notice(message, kind = "error") {
  const box = $("notice");
  box.textContent = message;
  box.className = kind;
  box.hidden = !message;
}

function show(signedIn) {
  for (const form of document.forms) form.reset(); // no password stays on the page
  $("tagline").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  $("signed-out").hidden = signedIn;
  $("who").hidden = !signedIn;
  $("who-email").textContent = signedIn ? localStorage.getItem(EMAIL_KEY) || "" : "";
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401 && token()) {
    signOut(error.message);
  } else {
    notice(error.message);
  }
}

function statusName(job) {
  return (job.status || "").replace("JOB_STATUS_", "").toLowerCase();
}

function bytes(n) {
  const units = ["B", "kB", "MB", "GB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function mp3Name(job) {
  return `${(job.filename || job.id).replace(/\.[^.]*$/, "")}.mp3`;
}

function setBar(name, percent) {
  const value = Math.max(0, Math.min(100, Math.round(percent)));
  $(`${name}-progress`).value = value;
  $(`${name}-text`).textContent = `${value}%`;
}

function pill(job) {
  const span = document.createElement("span");
  const name = statusName(job);
  span.className = `status ${name}`;
  span.textContent = name === "processing" ? `processing ${job.progressPercent}%` : name;
  return span;
}

function cell(row, content, className = "") {
  const td = row.insertCell();
  if (className) td.className = className;
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

function renderJobs() {
  const body = $("jobs").tBodies[0];
  body.replaceChildren();
  const sorted = [...jobs.values()].sort((a, b) => Date.parse(b.createTime || 0) - Date.parse(a.createTime || 0));
  for (const job of sorted) {
    const row = body.insertRow();
    row.dataset.job = job.id;
    cell(row, job.filename || job.id);
    cell(row, pill(job));
    cell(row, job.createTime ? when.format(new Date(job.createTime)) : "", "when");
    cell(row, job.mp3FileId ? `${bytes(job.mp3SizeBytes)}, ${Number(job.durationSeconds).toFixed(1)} s` : "", "size");
    if (statusName(job) === "succeeded") {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Download";
      button.addEventListener("click", () => download(job).catch(failed));
      const play = document.createElement("button");
      play.type = "button";
      play.className = "quiet";
      play.textContent = "Play";
      play.addEventListener("click", () => listen(job).catch(failed));
      const actions = cell(row, button);
      actions.append(" ", play);
    } else {
      cell(row, job.error || "", "why");
    }
    cell(row, controls(job), "controls");
  }
  $("jobs").hidden = jobs.size === 0;
  $("no-jobs").hidden = jobs.size > 0;
}

// The owner's controls of a job: what its state allows, and its details.
function controls(job) {
  const name = statusName(job);
  const box = document.createElement("span");
  const add = (label, action, className = "quiet") => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = className;
    button.textContent = label;
    button.dataset.action = label.toLowerCase();
    button.addEventListener("click", () => action(job).catch(failed));
    box.append(button, " ");
  };
  if (name === "queued" || name === "processing") add("Cancel", cancelJob);
  if (name === "failed" || name === "cancelled") add("Retry", retryJob);
  add("Details", showDetails);
  add("Delete", deleteJob);
  return box;
}

async function cancelJob(job) {
  const reply = await (await api(`/v1/jobs/${encodeURIComponent(job.id)}:cancel`, { method: "POST", body: {} })).json();
  jobs.set(reply.job.id, reply.job);
  renderJobs();
}

async function retryJob(job) {
  const reply = await (await api(`/v1/jobs/${encodeURIComponent(job.id)}:retry`, { method: "POST", body: {} })).json();
  showCurrent(reply.job);
  $("current").hidden = false;
  $("current-file").textContent = reply.job.filename;
  await watch(reply.job.id);
}

async function deleteJob(job) {
  if (!window.confirm(`Delete ${job.filename || job.id} with its video and MP3?`)) return;
  await api(`/v1/jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" });
  jobs.delete(job.id);
  renderJobs();
  if ($("details").dataset.job === job.id) $("details").hidden = true;
}

// How the job was done: GetJob's full view, in the details panel.
async function showDetails(job) {
  const full = (await (await api(`/v1/jobs/${encodeURIComponent(job.id)}?view=JOB_VIEW_FULL`)).json()).job;
  const details = full.details || {};
  const panel = $("details");
  panel.dataset.job = job.id;
  $("details-file").textContent = full.filename || full.id;
  const list = $("details-list");
  list.replaceChildren();
  const row = (term, value) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  };
  row("Status", `${statusName(full)}${full.error ? `: ${full.error}` : ""}`);
  const probe = details.probe;
  if (probe && probe.container) {
    row("Input", `${probe.container}, ${Number(probe.durationSeconds).toFixed(2)} s`);
    for (const s of probe.streams || []) {
      const parts = [s.codec, s.sampleRateHz ? `${s.sampleRateHz} Hz` : "", s.channelLayout || ""].filter(Boolean);
      row(`Stream #${s.index}`, `${s.type}: ${parts.join(", ")}`);
    }
  }
  if ((details.ffmpegArgs || []).length) row("ffmpeg", details.ffmpegArgs.join(" "));
  const t = details.stageTimes || {};
  const stages = ["queued", "fetch", "convert", "store", "announce"].map((n) => `${n} ${Number(t[`${n}Seconds`] || 0).toFixed(2)} s`);
  row("Stages", stages.join(", "));
  for (const a of details.attemptHistory || []) {
    const started = a.startTime ? when.format(new Date(a.startTime)) : "";
    row(`Attempt ${a.number}`, `${started}${a.converter ? ` on ${a.converter}` : ""}: ${a.outcome}${a.reason ? ` (${a.reason})` : ""}`);
  }
  panel.hidden = false;
}

function showCurrent(job) {
  jobs.set(job.id, job);
  renderJobs();
  const name = statusName(job);
  $("current").className = name;
  const status = $("current-status");
  status.className = `status ${name}`;
  status.textContent = name;
  setBar("convert", name === "succeeded" ? 100 : job.progressPercent || 0);
  $("current-error").hidden = !job.error;
  $("current-error").textContent = job.error || "";
  const button = $("current-download");
  button.hidden = name !== "succeeded";
  button.onclick = () => download(job).catch(failed);
}

// --- what the page does -------------------------------------------------------------------

async function logIn(email, password) {
  const reply = await api("/v1/sessions", { method: "POST", body: { email, password }, auth: false });
  const session = await reply.json();
  localStorage.setItem(TOKEN_KEY, session.token);
  localStorage.setItem(EMAIL_KEY, email);
  notice("");
  await enter();
}

function signOut(message, kind = "error") {
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(EMAIL_KEY);
  jobs.clear();
  renderJobs();
  $("current").hidden = true;
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  $("player-box").hidden = true;
  if (playerWorker) playerWorker.postMessage({ token: "" });
  show(false);
  notice(message, kind);
}

// Revoke the token (AuthService/Logout), then forget it here even if the server could not
// be asked: the user asked to be logged out of this browser.
async function logOut() {
  try {
    await api("/v1/sessions/current", { method: "DELETE" });
  } catch (_) {
    // nothing to revoke, or no way to: the token is forgotten below all the same
  }
  signOut("You are logged out.", "ok");
}

async function enter() {
  const me = await (await api("/v1/users/me")).json();
  localStorage.setItem(EMAIL_KEY, me.user.email);
  show(true);
  await Promise.all([loadJobs(), loadPresets()]);
}

async function loadJobs() {
  const page = await (await api("/v1/jobs?pageSize=50")).json();
  jobs.clear();
  for (const job of page.jobs) jobs.set(job.id, job);
  renderJobs();
}

// The LAME constant bitrates and VBR qualities the gateway takes (mp3mesh/core/options.py).
const BITRATES = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const VBR_QUALITIES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const OPTION_NAMES = ["preset", "bitrate_kbps", "vbr_quality", "channels", "sample_rate_hz", "start", "end",
  "loudness_lufs", "title", "artist", "album", "cover_at"];

function addOptions(select, values, label = (v) => String(v)) {
  for (const value of values) {
    const option = document.createElement("option");
    option.value = String(value);
    option.textContent = label(value);
    select.append(option);
  }
}

async function loadPresets() {
  const select = $("preset");
  if (select.options.length > 1) return;
  const { presets } = await (await api("/v1/presets")).json();
  addOptions(select, presets.map((p) => p.name));
  presets.forEach((p, i) => { select.options[i + 1].title = p.description; });
}

// The options form's non-empty controls, by their REST names: the upload's tus metadata
// (the gateway checks them when the upload is created, before a byte is stored).
function optionMetadata(form) {
  const data = new FormData(form);
  const metadata = {};
  for (const name of OPTION_NAMES) {
    const value = String(data.get(name) || "").trim();
    if (value) metadata[name] = value;
  }
  return metadata;
}

// What a job was asked to do, as "preset=podcast-mono-64 bitrateKbps=128". Only what is
// set: both edges also write the unset fields without presence ("" and 0); vbrQuality and
// loudnessLufs are written only when set, so a VBR quality of 0 is shown.
function optionsText(options) {
  return Object.entries(options || {})
    .filter(([k, v]) => v !== "" && (v !== 0 || k === "vbrQuality"))
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

// Resumable upload over tus (/files/, docs/uploads.md) with tus-js-client (/static/tus.min.js,
// vendored from npm). The upload's URL is remembered per file (tus-js-client's fingerprint
// in localStorage): choosing the same file again after a reload or a cut connection goes
// on from the offset the server has, if the options chosen are the same (the server took
// the upload's options when it was created). Resolves with the id of the job the last byte
// created. ``options``: the conversion options, sent as upload metadata.
function upload(file, options) {
  const metadata = { ...options, filename: file.name, filetype: file.type || "application/octet-stream" };
  const sameMetadata = (stored) =>
    Object.keys({ ...stored, ...metadata }).every((key) => (stored || {})[key] === metadata[key]);
  return new Promise((resolve, reject) => {
    let jobId = "";
    const transfer = new tus.Upload(file, {
      endpoint: "/files/",
      chunkSize: UPLOAD_CHUNK_BYTES,
      retryDelays: [0, 1000, 3000, 5000],
      removeFingerprintOnSuccess: true,
      metadata,
      headers: { Authorization: `Bearer ${token()}` },
      onAfterResponse: (_, response) => {
        jobId = response.getHeader("Mp3mesh-Job-Id") || jobId;
      },
      onProgress: (sent, total) => setBar("upload", (100 * sent) / total),
      onError: (error) => {
        const response = error.originalResponse;
        const status = response ? response.getStatus() : 0;
        const text = response ? response.getBody() : "";
        reject(new ApiError(status, status ? messageOf(status, text) : "the upload was cut off; choose the file again to go on"));
      },
      onSuccess: () => resolve(jobId),
    });
    transfer.findPreviousUploads().then((previous) => {
      const same = previous.find((p) => sameMetadata(p.metadata));
      if (same) {
        transfer.resumeFromPreviousUpload(same);
        $("current-status").textContent = "resuming upload";
      }
      transfer.start();
    }, reject);
  });
}

async function watch(jobId) {
  const reply = await api(`/v1/jobs/${encodeURIComponent(jobId)}:watch`);
  const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0 || (done && buffer.trim())) {
      const line = (end >= 0 ? buffer.slice(0, end) : buffer).trim();
      buffer = end >= 0 ? buffer.slice(end + 1) : "";
      if (!line) continue;
      const message = JSON.parse(line);
      if (!message.job) throw new ApiError(500, message.message || "the watch stream broke off");
      showCurrent(message.job);
    }
    if (done) return;
  }
}

async function convert(file) {
  notice("");
  $("current-options").hidden = true;
  $("current").hidden = false;
  $("current-file").textContent = file.name;
  $("current-status").textContent = "uploading";
  $("current-status").className = "status";
  $("current-error").hidden = true;
  $("current-download").hidden = true;
  setBar("upload", 0);
  setBar("convert", 0);
  const jobId = await upload(file, optionMetadata($("upload-form")));
  setBar("upload", 100);
  const { job } = await (await api(`/v1/jobs/${jobId}`)).json();
  const asked = optionsText(job.options);
  $("current-options").textContent = asked ? `Options: ${asked}` : "";
  $("current-options").hidden = !asked;
  showCurrent(job);
  await watch(jobId); // its first line is the job as it is now
}

// The player streams from /v1/mp3s/<id> with HTTP ranges; the service worker (sw.js)
// adds the token the <audio> element cannot send itself.
let playerWorker = null;

async function tellWorker(value) {
  if (!("serviceWorker" in navigator)) throw new Error("this browser cannot play here: no service workers");
  const registration = await navigator.serviceWorker.register("/sw.js");
  await navigator.serviceWorker.ready;
  if (!navigator.serviceWorker.controller) {
    await new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
  }
  const worker = registration.active;
  await new Promise((resolve) => {
    navigator.serviceWorker.addEventListener("message", resolve, { once: true });
    worker.postMessage({ token: value });
  });
  return worker;
}

async function listen(job) {
  playerWorker = await tellWorker(token());
  const player = $("player");
  $("player-name").textContent = mp3Name(job);
  $("player-box").hidden = false;
  player.src = `/v1/mp3s/${encodeURIComponent(job.mp3FileId)}`;
  player.dataset.job = job.id;
}

async function download(job) {
  const reply = await api(`/v1/mp3s/${encodeURIComponent(job.mp3FileId)}`);
  const url = URL.createObjectURL(await reply.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = mp3Name(job);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function busy(form, work) {
  return async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await work(new FormData(form));
    } catch (error) {
      failed(error);
    } finally {
      button.disabled = false;
    }
  };
}

function wire() {
  addOptions($("bitrate"), BITRATES);
  addOptions($("vbr"), VBR_QUALITIES, (q) => (q === 0 ? "0 (best)" : q === 9 ? "9 (smallest)" : String(q)));
  const login = $("login-form");
  login.addEventListener("submit", busy(login, (data) => logIn(data.get("email"), data.get("password"))));
  const signup = $("signup-form");
  signup.addEventListener(
    "submit",
    busy(signup, async (data) => {
      const account = { email: data.get("email"), password: data.get("password"), name: data.get("name") };
      await api("/v1/users", { method: "POST", body: account, auth: false });
      await logIn(account.email, account.password);
    }),
  );
  const uploadForm = $("upload-form");
  uploadForm.addEventListener("submit", busy(uploadForm, () => convert($("video").files[0])));
  $("refresh").addEventListener("click", () => loadJobs().catch(failed));
  $("logout").addEventListener("click", () => logOut());
  $("details-close").addEventListener("click", () => {
    $("details").hidden = true;
  });
}

wire();
if (token()) {
  enter().catch((error) => {
    show(false);
    failed(error);
  });
} else {
  show(false);
}
