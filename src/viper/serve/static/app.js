// viper serve's page: submit a video, follow its progress, then play it over its emotion trace. Plain JS, no build.
"use strict";

const COLORS = { neutral: "#7f7f7f", happy: "#e6a100", sad: "#1f77b4", angry: "#d62728", fearful: "#9467bd",
  disgust: "#2ca02c", surprised: "#ff7f0e" };
const PERSON_COLORS = ["#00c853", "#2962ff", "#d50000", "#ffab00", "#aa00ff", "#00b8d4"];
const MAX_SIDE = 1280; // viper decodes frames at most this large: face boxes are in those pixels
const $ = (id) => document.getElementById(id);
const state = { job: null, trace: null, person: null };

// A token given as page.html#token=T is kept for this tab and sent as `Authorization: Bearer T`.
const hashToken = new URLSearchParams(location.hash.slice(1)).get("token");
if (hashToken) { sessionStorage.setItem("viper-token", hashToken); history.replaceState(null, "", location.pathname); }
const headers = () => {
  const token = sessionStorage.getItem("viper-token");
  return token ? { Authorization: `Bearer ${token}` } : {};
};

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.detail || `${response.status} ${response.statusText}`);
  }
  return response;
}

function say(text, error = false) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

function submit(file) {
  // XMLHttpRequest rather than fetch: it reports the upload's progress.
  const form = new FormData();
  form.append("file", file);
  if ($("window").value) form.append("window", $("window").value);
  const request = new XMLHttpRequest();
  request.open("POST", "/api/jobs");
  for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
  request.upload.onprogress = (e) => { if (e.lengthComputable) show_progress(0.2 * e.loaded / e.total, "uploading"); };
  request.onload = () => {
    const body = JSON.parse(request.responseText || "{}");
    if (request.status !== 201) { say(body.detail || `error ${request.status}`, true); $("progress").hidden = true; return; }
    follow(body.id, URL.createObjectURL(file));
  };
  request.onerror = () => say("the server could not be reached", true);
  say(`sending ${file.name}`);
  request.send(form);
}

function show_progress(value, stage) { $("progress").hidden = false; $("progress").value = value; say(stage); }

async function follow(id, videoUrl) {
  // Server-sent events read through fetch, so the token travels in a header (EventSource cannot send one).
  const response = await api(`/api/jobs/${id}/events`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
      const event = (block.match(/^event: (.*)$/m) || [])[1];
      const data = (block.match(/^data: (.*)$/m) || [])[1];
      if (!data) continue;
      const job = JSON.parse(data);
      if (event === "progress") show_progress(0.2 + 0.8 * job.progress, `${job.name}: ${job.stage}`);
      if (event === "done") { await shown(job, videoUrl); refresh_jobs(); return; }
    }
  }
}

async function open_job(id) {
  const job = await (await api(`/api/jobs/${id}`)).json();
  if (job.status !== "done" && job.status !== "failed") return follow(id, null);
  return shown(job, null);
}

async function shown(job, videoUrl) {
  $("progress").hidden = true;
  if (job.status === "failed") { say(job.error, true); $("result").hidden = true; return; }
  say(`${job.name}: done`);
  state.job = job;
  state.trace = await (await api(`/api/jobs/${job.id}/trace`)).json();
  const people = [...new Set(job.records.map((r) => r.person ?? 0))];
  state.person = people[0];
  $("title").textContent = job.name;
  $("result").hidden = false;
  if (videoUrl || job.video_kept) {
    $("video").src = videoUrl || URL.createObjectURL(await (await api(`/api/jobs/${job.id}/video`)).blob());
  } else {  // an old upload deleted under --keep-uploads-mb: the scores and trace remain
    $("video").removeAttribute("src");
    say(`${job.name}: done; its video is no longer kept on the server`);
  }
  show_scores(job.records);
  show_legend();
  draw_trace();
  draw_frame();
}

function top_emotion(scores) { return Object.keys(scores).reduce((a, b) => (scores[a] >= scores[b] ? a : b)); }

function show_scores(records) {
  // One table per person (per window, the mean over windows), the top emotion in bold; click one to trace it.
  const byPerson = new Map();
  for (const record of records) {
    const key = record.person ?? 0;
    if (!byPerson.has(key)) byPerson.set(key, []);
    byPerson.get(key).push(record);
  }
  const people = $("people");
  people.replaceChildren();
  for (const [person, rows] of byPerson) {
    const scores = {};
    for (const emotion of Object.keys(rows[0].scores)) {
      scores[emotion] = rows.reduce((sum, r) => sum + r.scores[emotion], 0) / rows.length;
    }
    const top = top_emotion(scores);
    const table = document.createElement("table");
    table.className = "scores" + (person === state.person ? " chosen" : "");
    table.dataset.person = person;
    table.innerHTML = `<caption>${person ? `person ${person}` : "scores"}: <b class="top-emotion">${top}</b></caption>` +
      Object.entries(scores).map(([e, v]) => `<tr class="${e === top ? "top" : ""}"><td>${e}</td><td>${v.toFixed(3)}</td></tr>`).join("");
    table.onclick = () => { state.person = person; show_scores(records); draw_trace(); };
    people.append(table);
  }
  const first = records[0].coverage;
  $("coverage").textContent = `faces on ${first.face}/${first.frames} frames, audio on ${first.audio}/${first.frames}` +
    (first.people != null ? `, ${first.people} ${first.people === 1 ? "person" : "people"} seen` : "") +
    (records[0].window != null ? `, ${new Set(records.map((r) => r.window)).size} windows` : "");
  $("warnings").replaceChildren(...[...new Set(records.flatMap((r) => r.warnings))].map((text) => {
    const item = document.createElement("li"); item.textContent = text; return item;
  }));
}

function show_legend() {
  $("legend").innerHTML = state.trace.emotions.map((e) => `<span><i style="background:${COLORS[e] || "#444"}"></i>${e}</span>`).join("");
}

function rows_of(person) { return state.trace.frames.filter((f) => f.person === person); }

function span() {
  const video = $("video");
  const last = state.trace.frames.reduce((m, f) => Math.max(m, f.time), 0);
  return Math.max(isFinite(video.duration) ? video.duration : 0, last, 1e-3);
}

function draw_trace() {
  // The general model's probability of each emotion on each sampled frame of the chosen person; gaps without a face.
  const canvas = $("trace"), g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, total = span();
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#eee";
  for (const y of [0.25, 0.5, 0.75]) { g.beginPath(); g.moveTo(0, h - y * h); g.lineTo(w, h - y * h); g.stroke(); }
  const rows = rows_of(state.person);
  for (const emotion of state.trace.emotions) {
    g.strokeStyle = COLORS[emotion] || "#444"; g.lineWidth = 2; g.beginPath();
    let drawing = false;
    for (const row of rows) {
      const value = row.values[emotion];
      if (value == null) { drawing = false; continue; }
      const x = (row.time / total) * w, y = h - value * (h - 4) - 2;
      if (drawing) g.lineTo(x, y); else g.moveTo(x, y);
      drawing = true;
    }
    g.stroke();
  }
  move_cursor();
}

function move_cursor() {
  const wrap = $("trace-wrap"), video = $("video");
  const x = (video.currentTime / span()) * wrap.clientWidth;
  $("cursor").style.left = `${Math.min(x, wrap.clientWidth - 2)}px`;
  $("cursor").dataset.time = video.currentTime.toFixed(3);
}

function draw_frame() {
  // Each person's face box on the sampled frame nearest the current time, scaled from decoded to shown pixels.
  const video = $("video"), canvas = $("boxes");
  canvas.width = video.clientWidth; canvas.height = video.clientHeight;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.trace || !video.videoWidth) return;
  const decoded = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  const scale = video.clientWidth / (video.videoWidth * decoded);
  const people = [...new Set(state.trace.frames.map((f) => f.person))];
  let drawn = 0;
  for (const person of people) {
    const rows = rows_of(person);
    if (!rows.length) continue;
    const row = rows.reduce((a, b) => (Math.abs(b.time - video.currentTime) < Math.abs(a.time - video.currentTime) ? b : a));
    if (!row.box) continue;
    const [x0, y0, x1, y1] = row.box.map((v) => v * scale);
    g.strokeStyle = PERSON_COLORS[(person || 1) - 1] || "#fff";
    g.lineWidth = person === state.person ? 3 : 1.5;
    g.strokeRect(x0, y0, x1 - x0, y1 - y0);
    drawn += 1;
  }
  canvas.dataset.boxes = drawn;
}

function tick() { if (state.trace) { move_cursor(); draw_frame(); } requestAnimationFrame(tick); }

function download(name) {
  return async () => {
    const blob = await (await api(`/api/jobs/${state.job.id}/${name}`)).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${state.job.name.replace(/\.[^.]*$/, "")}-${name}`;
    link.click();
  };
}

async function refresh_jobs() {
  try {
    const { jobs } = await (await api("/api/jobs")).json();
    $("jobs").replaceChildren(...jobs.map((job) => {
      const item = document.createElement("li");
      item.textContent = job.name;
      const note = document.createElement("span"); note.className = "state";
      note.textContent = `${job.status}${job.status === "running" ? ` (${Math.round(job.progress * 100)} %)` : ""} · ` +
        new Date(job.created * 1000).toLocaleString();
      item.append(note);
      item.onclick = () => open_job(job.id).catch((e) => say(e.message, true));
      return item;
    }));
  } catch (error) { say(error.message, true); }
}

$("file").onchange = () => { if ($("file").files[0]) submit($("file").files[0]); };
const drop = $("drop");
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files[0]) submit(e.dataTransfer.files[0]); };
$("get-csv").onclick = download("frames.csv");
$("get-json").onclick = download("records.jsonl");
$("video").onloadedmetadata = () => { draw_trace(); draw_frame(); };
api("/api/health").then((r) => r.json()).then((h) => { $("model").textContent = `model: ${h.model}, faces: ${h.faces}`; })
  .catch((e) => say(e.message, true));
refresh_jobs();
requestAnimationFrame(tick);

// Live: camera frames (5 a second at most, one in flight) scored by the server, smoothed over its last 5 frames.
const live = { session: Math.random().toString(36).slice(2), history: [], scored: 0, since: 0 };

async function start_live() {
  const camera = $("camera");
  try {
    camera.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (error) { $("live-status").textContent = `no camera: ${error.message}`; return; }
  await camera.play();
  $("live").hidden = false; $("live-start").disabled = true; live.since = performance.now();
  const grab = document.createElement("canvas");
  for (;;) {
    const started = performance.now();
    const scale = Math.min(1, 640 / Math.max(camera.videoWidth, camera.videoHeight));
    grab.width = Math.round(camera.videoWidth * scale); grab.height = Math.round(camera.videoHeight * scale);
    grab.getContext("2d").drawImage(camera, 0, 0, grab.width, grab.height);
    const frame = await new Promise((done) => grab.toBlob(done, "image/jpeg", 0.85));
    try {
      const answer = await (await api(`/api/live?session=${live.session}`, { method: "POST", body: frame,
        headers: { "Content-Type": "image/jpeg" } })).json();
      show_live(answer);
    } catch (error) { $("live-status").textContent = error.message; }
    await new Promise((done) => setTimeout(done, Math.max(0, 200 - (performance.now() - started))));
  }
}

function show_live(answer) {
  live.scored += 1;
  const top = top_emotion(answer.smoothed);
  $("live-top").textContent = top;
  $("live-rate").textContent = `(${(live.scored / ((performance.now() - live.since) / 1000)).toFixed(1)} frames/s scored)`;
  $("live-probs").innerHTML = Object.entries(answer.smoothed).map(([e, v]) =>
    `<span style="color:${COLORS[e] || "#444"}">${e} ${v.toFixed(2)}</span>`).join("");
  const camera = $("camera"), boxes = $("live-boxes");
  boxes.width = camera.clientWidth; boxes.height = camera.clientHeight;
  const g = boxes.getContext("2d");
  g.clearRect(0, 0, boxes.width, boxes.height);
  if (answer.box) {
    const scale = camera.clientWidth / answer.width, [x0, y0, x1, y1] = answer.box.map((v) => v * scale);
    g.strokeStyle = PERSON_COLORS[0]; g.lineWidth = 3; g.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
  boxes.dataset.box = answer.box ? "1" : "0";
  live.history.push(answer.smoothed);
  if (live.history.length > 150) live.history.shift();  // the last 30 s or so
  const canvas = $("live-trace"), t = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  t.clearRect(0, 0, w, h);
  for (const emotion of Object.keys(answer.smoothed)) {
    t.strokeStyle = COLORS[emotion] || "#444"; t.lineWidth = 2; t.beginPath();
    live.history.forEach((scores, i) => {
      const x = (i / 149) * w, y = h - scores[emotion] * (h - 4) - 2;
      if (i) t.lineTo(x, y); else t.moveTo(x, y);
    });
    t.stroke();
  }
}

$("live-start").onclick = () => start_live();
