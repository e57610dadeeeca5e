// The agent panel: renders the station's snapshot (GET /status, then the SSE stream GET /events) and sends the
// agent's commands. Plain DOM, no framework, no build step. Every word comes from /panel/messages (the catalogue in
// kioskd/messages.py) or from the fr/en texts the API's JSON carries; data is only ever set as text, never as HTML.
"use strict";

const P = {
  lang: localStorage.getItem("kioskd-panel-lang") === "en" ? "en" : "fr",
  words: {},
  state: null,
  receivedAt: 0,
  scanning: null,
  receipt: undefined,
  scans: [],
  jobs: [],
  history: [],
  error: null,
  busy: false,
  source: null,
  online: false,
  seen: { session: null, scans: -1, prints: -1, mode: null, printer: "" },
  media: { busy: false, result: null, chosen: new Set() },  // the stick tile's copy in flight, last answer, ticks
};
const HISTORY_HOURS = 12;
const KNOWN_PARTS = ["station", "power", "modem", "displays", "scanner", "printer", "audio", "camera", "media"];
const HIDDEN_PARTS = ["vehicle", "session", "notices"];

// ---------------------------------------------------------------------------------------------------- words
function t(key, params) {
  const m = P.words[key];
  if (!m) return key;
  let text = m[P.lang] || m.fr;
  for (const [name, value] of Object.entries(params || {})) text = text.split("{" + name + "}").join(String(value));
  return text;
}
function has(key) { return Object.prototype.hasOwnProperty.call(P.words, key); }
function label(field) { return has("panel.field." + field) ? t("panel.field." + field) : field.replace(/_/g, " "); }
function yesNo(v) { return v === null || v === undefined ? "?" : t(v ? "word.yes" : "word.no"); }
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const minutes = Math.floor(seconds / 60);
  return minutes >= 60 ? `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")}` : `${minutes} min`;
}
function size(bytes) {
  return bytes >= 1e6 ? t("panel.size.mb", { n: (bytes / 1e6).toFixed(1) }) : t("panel.size.kb", { n: Math.round(bytes / 1e3) });
}
function clock(wall) { return new Date(wall * 1000).toLocaleTimeString(P.lang === "fr" ? "fr-FR" : "en-GB"); }

// ---------------------------------------------------------------------------------------------------- DOM
function $(id) { return document.getElementById(id); }
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) if (child !== null && child !== undefined) node.append(child);
  return node;
}
function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}
function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

// ---------------------------------------------------------------------------------------------------- API
async function api(method, path, body) {
  const init = { method, headers: {}, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}
async function getJSON(path) {
  const response = await api("GET", path);
  if (response.status === 401) throw new Locked();
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}
class Locked extends Error {}

async function command(path, body) {
  P.busy = true;
  renderHeader();
  try {
    const response = await api("POST", path, body === undefined ? {} : body);
    const answer = await response.json().catch(() => ({}));
    P.error = response.ok ? null : (answer.error || { what: String(response.status) });
    return response.ok ? answer : null;
  } catch (exc) {
    P.error = { key: "panel.error.network" };
    return null;
  } finally {
    P.busy = false;
    renderError();
    renderHeader();
  }
}

// ---------------------------------------------------------------------------------------------------- header
function primaryAction(state) {
  const mode = state.station.state;
  const wipeFailed = state.notices.some((n) => n.topic === "wipe" && n.level === "error");
  if (mode === "off") return { key: "panel.action.start", path: "/start" };
  if (mode === "ready" || mode === "in_session") return { key: "panel.action.next", path: "/next" };
  if (mode === "wiping" && wipeFailed) return { key: "panel.action.retry_wipe", path: "/wipe/retry" };
  if (mode === "wiping" || mode === "starting" || mode === "shutting_down") return { key: "panel.action.busy" };
  return null;
}
function stateTitle(state) {
  const mode = state.station.state;
  if (mode === "in_session" && state.session) {
    const age = (state.session.age || 0) + (Date.now() - P.receivedAt) / 1000;
    return t("panel.state.in_session", { minutes: Math.max(0, Math.floor(age / 60)) });
  }
  if (mode === "wiping" && state.notices.some((n) => n.topic === "wipe" && n.level === "error")) {
    return t("panel.state.wipe_failed");
  }
  return t("panel.state." + mode);
}
function renderHeader() {
  const state = P.state;
  $("lang").textContent = t("panel.lang.other");
  $("lang").setAttribute("lang", P.lang === "fr" ? "en" : "fr");
  if (!state) return;
  const mode = state.station.state;
  $("state-title").textContent = stateTitle(state);
  $("state-title").dataset.state = mode;
  const detail = mode === "in_session" ? [] : [state.station[P.lang]];
  if (state.session) {
    detail.push(t("panel.session.counts", {
      scans: state.session.scans, prints: state.session.print_jobs, downloads: state.session.downloads,
    }));
  }
  if (state.station.sessions_today) detail.push(t("panel.sessions_today", { count: state.station.sessions_today }));
  $("state-detail").textContent = detail.join(" · ");
  const action = primaryAction(state);
  const primary = $("primary");
  primary.hidden = !action;
  if (action) {
    primary.textContent = P.busy ? t("panel.action.busy") : t(action.key);
    primary.disabled = P.busy || !action.path || !P.online;
    primary.dataset.path = action.path || "";
    primary.setAttribute("aria-busy", P.busy ? "true" : "false");
  }
  const endOfDay = $("end-of-day");
  endOfDay.hidden = !["ready", "in_session", "travelling"].includes(mode);
  endOfDay.textContent = t("panel.action.end_of_day");
  endOfDay.disabled = P.busy || !P.online;
  document.title = `${t("panel.title")} – ${stateTitle(state)}`;
}
function renderError() {
  const box = $("error");
  box.hidden = !P.error;
  if (!P.error) return;
  box.textContent = P.error.key === "panel.error.network" ? t(P.error.key) : (P.error[P.lang] || P.error.what);
}

// ---------------------------------------------------------------------------------------------------- tiles
// Each tile is built once (its controls keep the keyboard focus across updates); its body is redrawn.
const tiles = {};
function tile(id, titleText) {
  if (!tiles[id]) {
    const body = el("div", { class: "body" });
    const controls = el("div", { class: "controls", hidden: true });
    const heading = el("h2", { id: "tile-" + id + "-title", "data-main-text": true });
    const section = el("section", { class: "tile", id: "tile-" + id, "aria-labelledby": "tile-" + id + "-title" },
      heading, body, controls);
    $("tiles").append(section);
    tiles[id] = { section, heading, body, controls };
  }
  tiles[id].heading.textContent = titleText;
  return tiles[id];
}
function rows(pairs) {
  return el("dl", {}, pairs.filter((p) => p).map(([field, text, cls]) => [
    el("dt", { "data-main-text": true }, label(field)),
    el("dd", { "data-field": field, class: cls, "data-main-text": true }, text),
  ]));
}
// Fields the tile does not know yet (a modem's rsrp, a display layout, an LED pattern …) still show, as they are.
function extras(part, known) {
  return Object.entries(part || {})
    .filter(([key, value]) => !known.includes(key) && value !== null && value !== "" && typeof value !== "object")
    .map(([key, value]) => [key, typeof value === "boolean" ? yesNo(value)
      : typeof value === "number" && /(_at|_since)$/.test(key) ? clock(value) : String(value)]);
}
function scalarArrays(part, known) {
  return Object.entries(part || {})
    .filter(([key, value]) => !known.includes(key) && Array.isArray(value) && value.every((v) => typeof v !== "object"))
    .map(([key, value]) => [key, value.join(", ")]);
}

function renderPower(p) {
  const known = ["available", "shore", "ignition", "soc", "time_to_go", "voltage", "current", "power", "charging",
    "alarm", "detail", "critical", "silent"];  // critical, silent: their notices say it
  const box = tile("power", t("label.power"));
  const source = p.shore === null ? "?" : t(p.shore ? "panel.power.shore" : "panel.power.battery");
  const big = !p.available ? t("word.no_data") : (p.soc === null ? source : `${Math.round(p.soc)} %`);
  fill(box.body,
    el("p", { class: "big", "data-field": "headline", "data-main-text": true }, big),
    rows([
      ["source", source + (p.charging ? " · " + t("panel.power.charging") : ""), p.shore === false ? "bad" : "ok"],
      p.time_to_go !== null && !p.shore ? ["time_to_go", duration(p.time_to_go)] : null,
      p.voltage !== null ? ["voltage", `${p.voltage.toFixed(1)} V`] : null,
      p.power !== null ? ["power", `${p.power > 0 ? "+" : ""}${Math.round(p.power)} W`] : null,
      p.ignition ? ["ignition", t("word.ignition")] : null,
      ...extras(p, known),
    ]),
    powerChart(p),
    el("p", { class: "muted caption", "data-main-text": true },
      P.history.filter((s) => s.soc !== null).length < 2 ? t("panel.power.chart_empty") : t("panel.power.chart", { hours: HISTORY_HOURS })),
  );
  box.section.dataset.shore = String(p.shore);
}
function powerChart(p) {
  const points = P.history.filter((s) => s.soc !== null);
  const title = t("panel.power.chart", { hours: HISTORY_HOURS });
  const chart = svg("svg", { class: "chart", viewBox: "0 0 300 90", preserveAspectRatio: "none", role: "img",
    "aria-label": title });
  chart.append(svg("title", {}, document.createTextNode(title)));
  if (points.length < 2) return chart;
  const end = points[points.length - 1].at;
  const start = end - HISTORY_HOURS * 3600;
  const x = (at) => ((at - start) / (end - start)) * 300;
  const y = (soc) => 85 - (soc / 100) * 80;
  // shore periods shaded: a glance tells when the van was plugged in
  for (let i = 0; i < points.length - 1; i++) {
    if (points[i].shore) {
      chart.append(svg("rect", { class: "shore", x: x(points[i].at), y: 5, width: Math.max(0, x(points[i + 1].at) - x(points[i].at)), height: 80 }));
    }
  }
  chart.append(svg("line", { class: "axis", x1: 0, y1: 85, x2: 300, y2: 85 }));
  chart.append(svg("line", { class: "axis", x1: 0, y1: 5, x2: 300, y2: 5 }));
  const coords = points.map((s) => `${x(s.at).toFixed(1)},${y(s.soc).toFixed(1)}`);
  if (p.soc !== null && p.available) coords.push(`300,${y(p.soc).toFixed(1)}`);
  chart.append(svg("polyline", { class: "line", points: coords.join(" ") }));
  return chart;
}

function bars(signal) {
  const lit = signal === null ? 0 : Math.min(4, Math.ceil(signal / 25));
  return el("span", { class: "bars", "aria-hidden": "true" },
    [1, 2, 3, 4].map((i) => { const b = el("span", { class: i <= lit ? "on" : "" }); b.style.height = `${i * 25}%`; return b; }));
}
// With several uplinks (issue 21): one row each, in the profile's order, the one carrying the traffic marked.
function uplinkTable(m, c) {
  const uplinks = m.uplinks || [];
  if (uplinks.length < 2) return null;
  const probes = Object.fromEntries(((c && c.uplinks) || []).map((p) => [p.name, p]));
  const heads = ["name", "operator", "interface", "signal", "probe"]
    .map((k) => el("th", { scope: "col", "data-main-text": true }, t("panel.uplinks." + k)));
  const lines = uplinks.map((u) => {
    const outcome = (probes[u.name] || {}).outcome || "";
    const used = Boolean(c && c.uplink === u.name);
    const probe = u.standby ? t("uplink.standby", { slot: u.sim_slot })
      : t(has("uplink.probe." + outcome) ? "uplink.probe." + outcome : "uplink.probe.none");
    const radio = u.kind !== "gsm" ? u.kind : u.technology === "none" ? "–"
      : `${u.technology.toUpperCase()}${u.signal === null ? "" : ` ${u.signal} %`}`;
    return el("tr", { "data-uplink": u.name, "data-used": String(used), class: used ? "used" : "" },
      el("th", { scope: "row", "data-main-text": true }, used ? `${u.name} (${t("uplink.used")})` : u.name),
      el("td", { "data-main-text": true }, u.operator || "–"),
      el("td", { "data-main-text": true }, u.interface || "–"),
      el("td", { "data-main-text": true }, radio),
      el("td", { "data-field": "probe", "data-outcome": u.standby ? "standby" : outcome || "none",
        class: outcome === "ok" ? "ok" : u.standby || !outcome ? "" : "bad", "data-main-text": true }, probe));
  });
  return el("table", { class: "uplinks" },
    el("caption", { "data-main-text": true }, t("panel.uplinks.title")),
    el("thead", {}, el("tr", {}, heads)), el("tbody", {}, lines));
}

function renderModem(m, c) {
  const known = ["present", "registration", "technology", "signal", "operator", "connected", "internet", "detail",
    "uplinks", "sim_slot"];
  const box = tile("modem", t("label.modem"));
  if (!m.present) {
    fill(box.body, el("p", { class: "big", "data-main-text": true }, t("word.absent")));
    return;
  }
  const signal = el("dd", { "data-field": "signal", "data-main-text": true }, bars(m.signal), " ",
    m.signal === null ? "–" : `${m.signal} %`);
  fill(box.body,
    el("p", { class: "big", "data-main-text": true }, `${m.technology.toUpperCase()} · ${m.operator || "–"}`),
    rows([
      ["internet", yesNo(m.internet), m.internet === false ? "bad" : "ok"],
      ["registration", has("panel.registration." + m.registration) ? t("panel.registration." + m.registration) : m.registration],
      ...extras(m, known),
    ]),
    uplinkTable(m, c),
  );
  box.body.querySelector("dl").prepend(el("dt", { "data-main-text": true }, label("signal")), signal);
}

function renderDisplays(d, mode, h) {
  const known = ["outputs", "mirrored", "curtain", "powered", "agent_curtain"];
  const box = tile("displays", t("label.displays"));
  const view = !d.powered ? "off" : d.curtain ? "curtain" : "mirror";
  fill(box.body,
    el("p", { class: "big", "data-field": "curtain", "data-curtain": String(d.curtain), "data-main-text": true }, t("word." + view)),
    el("p", { "data-main-text": true }, t("panel.display." + view)),
    rows([
      ...d.outputs.map((o) => [
        "output-" + o.name,
        t(o.connected ? "panel.display.connected" : "panel.display.unplugged"),
        o.connected ? "ok" : "bad",
      ]),
      ...extras(d, known),
    ]),
  );
  // the outputs' labels are their roles, not the raw field names
  box.body.querySelectorAll("dt").forEach((dt, i) => {
    if (i < d.outputs.length) dt.textContent = `${t("panel.output." + d.outputs[i].role)} (${d.outputs[i].name})`;
  });
  if (!box.privacy) {
    box.privacy = el("button", { type: "button", class: "action", id: "privacy",
      onclick: () => command("/privacy", { on: null }) });
    box.controls.append(box.privacy);
    box.controls.hidden = false;
  }
  box.privacy.textContent = t(d.curtain ? "panel.privacy.show" : "panel.privacy.hide");
  box.privacy.setAttribute("aria-pressed", String(d.curtain));
  box.privacy.disabled = !P.online || ["off", "travelling", "shutting_down"].includes(mode);
  // hand-over: the citizen's controls ("Main au citoyen") and the confidential entry, French first
  h = h || { handover: false, confidential: false };
  if (!box.handover) {
    box.handover = el("button", { type: "button", class: "action", id: "handover",
      onclick: () => command("/handover", { on: null }) });
    box.confidential = el("button", { type: "button", class: "action", id: "confidential",
      onclick: () => command("/confidential", { on: null }) });
    box.controls.append(box.handover, box.confidential);
  }
  box.handover.textContent = t(h.handover ? "panel.handover.off" : "panel.handover.on");
  box.handover.setAttribute("aria-pressed", String(h.handover));
  box.confidential.textContent = t(h.confidential ? "panel.confidential.off" : "panel.confidential.on");
  box.confidential.setAttribute("aria-pressed", String(h.confidential));
  const noCitizen = !P.online || mode !== "in_session" || d.curtain;
  box.handover.disabled = noCitizen;
  box.confidential.disabled = noCitizen && !h.confidential;
  if (h.handover || h.confidential) {
    box.body.prepend(el("p", { class: "big", "data-field": "handover", "data-main-text": true },
      t(h.confidential ? "panel.handover.state.confidential" : "panel.handover.state.on")));
  }
}

function renderScanner(s, mode) {
  const known = ["present", "name", "status", "fault", "sources"];
  const box = tile("scanner", t("label.scanner"));
  const fault = s.fault ? (has("scanner." + s.fault) ? t("scanner." + s.fault) : s.fault) : null;
  fill(box.body,
    el("p", { class: "big " + (s.status === "fault" ? "bad" : ""), "data-field": "status", "data-main-text": true },
      has("panel.scanner." + s.status) ? t("panel.scanner." + s.status) : s.status),
    fault ? el("p", { class: "bad", "data-main-text": true }, fault) : null,
    rows([s.name ? ["name", s.name] : null, ...extras(s, known)]),
    scanList(),
  );
  if (!box.scan) {
    box.source = el("select", { id: "scan-source" });
    box.destination = el("select", { id: "scan-destination" });
    box.sourceLabel = el("label", {}, el("span"), box.source);
    box.destinationLabel = el("label", {}, el("span"), box.destination);
    box.scan = el("button", { type: "button", class: "action", id: "scan", onclick: scan });
    box.controls.append(box.sourceLabel, box.destinationLabel, box.scan);
    box.controls.hidden = false;
  }
  box.sourceLabel.firstChild.textContent = t("panel.scan.source");
  box.destinationLabel.firstChild.textContent = t("panel.scan.destination");
  fillSelect(box.source, (s.sources.length ? s.sources : ["flatbed"]).map((v) => [v, t("panel.scan." + v)]));
  box.sourceLabel.hidden = s.sources.length < 2;
  const destinations = P.scanning ? P.scanning.destinations : [];
  fillSelect(box.destination, destinations.map((d) => [d.name, t("panel.scan.budget", { name: d.name, size: size(d.max_bytes) })]),
    P.scanning ? P.scanning.default_destination : null);
  box.destinationLabel.hidden = destinations.length < 2;
  box.scan.textContent = t("panel.scan.button");
  box.scan.disabled = !P.online || P.scanBusy || mode !== "in_session" || s.status !== "idle";
}
function fillSelect(select, options, preferred) {
  const current = select.value || preferred;
  const signature = JSON.stringify(options);
  if (select.dataset.options === signature) return;
  select.dataset.options = signature;
  select.replaceChildren(...options.map(([value, text]) => el("option", { value }, text)));
  if (options.some(([value]) => value === current)) select.value = current;
}
function scanList() {
  if (!P.state || !P.state.session) return null;
  if (!P.scans.length) return el("p", { class: "muted", "data-field": "scans", "data-main-text": true }, t("panel.scan.none"));
  return el("ul", { class: "items", "data-field": "scans" }, P.scans.map((s) => el("li", {},
    el("img", { src: `/scans/${encodeURIComponent(s.file)}/thumbnail?b=${s.bytes}`, alt: t("panel.scan.page1", { file: s.file }), loading: "lazy" }),
    el("span", { "data-main-text": true }, `${s.file} · ${size(s.bytes)}`))));
}
async function scan() {
  const box = tiles.scanner;
  P.scanBusy = true;
  render();
  const source = box.source.value || "flatbed";
  await command("/scan", { source, multi: source === "adf" || source === "duplex", destination: box.destination.value || null });
  P.scanBusy = false;
  await refreshScans();
  render();
}

function renderPrinter(p) {
  const known = ["present", "name", "status", "reasons"];
  const box = tile("printer", t("label.printer"));
  const reasons = (p.reasons || []).map((r) => has("printer." + r) ? t("printer." + r) : r);
  fill(box.body,
    el("p", { class: "big " + (p.status === "stopped" || p.status === "unavailable" ? "bad" : ""), "data-field": "status", "data-main-text": true },
      has("panel.printer." + p.status) ? t("panel.printer." + p.status) : p.status),
    ...reasons.map((r) => el("p", { class: "bad", "data-main-text": true }, r)),
    rows([p.name ? ["name", p.name] : null, ...extras(p, known)]),
    jobList(),
  );
}
function jobList() {
  if (!P.state || !P.state.session) return null;
  if (!P.jobs.length) return el("p", { class: "muted", "data-field": "jobs", "data-main-text": true }, t("panel.jobs.none"));
  return el("ul", { class: "items", "data-field": "jobs" }, P.jobs.map((j) => el("li", { "data-main-text": true },
    `${t("panel.job.line", { id: j.id })} · ${has("panel.job." + j.state) ? t("panel.job." + j.state) : j.state}`)));
}

function renderAudio(a, c) {
  const box = tile("audio", t("panel.tile.audio"));
  fill(box.body, rows([
    a.present ? ["sink", a.sink || "–"] : ["sink", t("word.absent")],
    a.present && a.volume !== null ? ["volume", `${a.volume} %${a.muted ? " (" + t("word.no") + ")" : ""}`] : null,
    a.present ? ["mic", a.mic_muted ? t("word.mic_muted") : t("panel.audio.mic_on")] : null,
    ["camera", c.present ? `${c.name} · ${t(c.in_use ? "panel.camera.in_use" : "panel.camera.free")}` : t("word.absent")],
    ...extras(a, ["present", "sink", "source", "volume", "muted", "mic_muted", "streams"]),
    ...extras(c, ["present", "name", "in_use"]),
  ]));
}

function renderReceipt() {
  const box = tile("receipt", t("panel.tile.receipt"));
  const r = P.receipt;
  if (!r) {
    fill(box.body, el("p", { class: "muted", "data-main-text": true }, t("panel.receipt.none")));
    return;
  }
  const slowest = Math.max(0, ...r.handlers.map((h) => h.seconds));
  fill(box.body,
    el("p", { class: "big " + (r.verified ? "ok" : "bad"), "data-field": "verdict", "data-main-text": true },
      t(r.verified ? "panel.receipt.ok" : "panel.receipt.failed")),
    el("p", { "data-field": "receipt", "data-session": r.session, "data-main-text": true },
      t("panel.receipt.line", { session: r.session, time: clock(r.closed_at), handlers: r.handlers.length, seconds: slowest.toLocaleString(P.lang, { maximumFractionDigits: 2 }) })),
    el("p", { class: "muted", "data-main-text": true }, r.handlers.map((h) => `${h.name} ${h.ok ? "✓" : "✗"}`).join(" · ")),
  );
}

// The citizen's USB stick: its label, size and state as the API words them (never a name found on it); "Copier sur
// la clé" and "Éjecter la clé" only while a stick is mounted for the session. The scans ticked are copied, or all.
// The ticks live in the tile's controls, rebuilt only when the scans or the language change (they keep the focus).
function renderMedia(m, mode) {
  const box = tile("media", t("label.media"));
  const sticks = (m && m.sticks) || [];
  const mounted = sticks.find((s) => s.mounted === "ro" || s.mounted === "rw");
  const result = P.media.result;
  const open = Boolean(mode === "in_session" && P.state && P.state.session && mounted);
  fill(box.body,
    sticks.length
      ? sticks.map((s) => el("p", { class: "stick " + (s.fault ? "bad" : ""), "data-field": "stick",
        "data-mounted": s.mounted, "data-main-text": true }, s[P.lang] || s.fr))
      : el("p", { class: "muted", "data-field": "stick", "data-mounted": "none", "data-main-text": true }, t("panel.media.none")),
    result ? el("p", { class: result.ok ? "ok" : "bad", "data-field": "export", "data-ok": String(result.ok),
      "data-main-text": true, role: "status" }, result.message[P.lang] || result.message.fr) : null,
  );
  if (!box.export) {
    box.choice = el("div", { class: "choice-box" });
    box.export = el("button", { type: "button", class: "action", id: "media-export", onclick: mediaExport });
    box.eject = el("button", { type: "button", class: "secondary", id: "media-eject", onclick: mediaEject });
    box.controls.append(box.choice, box.export, box.eject);
  }
  box.controls.hidden = !open;
  const signature = JSON.stringify([P.lang, P.scans.map((s) => [s.file, s.bytes])]);
  if (box.choice.dataset.signature !== signature) {
    box.choice.dataset.signature = signature;
    fill(box.choice, mediaChoice());
  }
  mediaSummary();
  box.export.textContent = P.media.busy ? t("panel.media.busy") : t("panel.media.export");
  box.export.disabled = !P.online || P.media.busy || !P.scans.length || !mounted || mounted.mounted !== "ro";
  box.export.setAttribute("aria-busy", P.media.busy ? "true" : "false");
  box.eject.textContent = t("panel.media.eject");
  box.eject.disabled = !P.online || P.media.busy || !mounted || mounted.mounted !== "ro";
}
function mediaChoice() {
  if (!P.scans.length) return el("p", { class: "muted", "data-field": "media-scans", "data-main-text": true }, t("panel.media.no_scans"));
  return el("fieldset", { class: "choice", "data-field": "media-scans" },
    el("legend", { "data-main-text": true }, t("panel.media.choose")),
    P.scans.map((s) => el("label", { class: "pick" },
      el("input", { type: "checkbox", value: s.file, checked: P.media.chosen.has(s.file),
        onchange: (event) => {
          if (event.target.checked) P.media.chosen.add(s.file); else P.media.chosen.delete(s.file);
          mediaSummary();
        } }),
      el("span", { "data-main-text": true }, `${s.file} · ${size(s.bytes)}`))),
    el("p", { class: "muted", "data-field": "media-what", "data-main-text": true }));
}
function mediaSummary() {
  const what = tiles.media && tiles.media.choice.querySelector("[data-field=media-what]");
  if (!what) return;
  const chosen = P.scans.filter((s) => P.media.chosen.has(s.file)).length;
  what.textContent = t(chosen ? "panel.media.chosen" : "panel.media.all", { count: chosen || P.scans.length });
}
async function mediaExport() {
  const files = P.scans.map((s) => s.file).filter((name) => P.media.chosen.has(name));
  P.media.busy = true;
  P.media.result = null;
  render();
  const answer = await command("/media/export", files.length ? { files } : { all: true });
  P.media.busy = false;
  // a full, write-protected or pulled-out stick is an answer too (ok false, its words): shown in the tile
  if (answer && answer.message) P.media.result = { ok: Boolean(answer.ok), message: answer.message };
  if (answer && answer.ok) {
    P.media.chosen.clear();
    tiles.media.choice.dataset.signature = "";  // the ticks go with the copy
  }
  render();
}
async function mediaEject() {
  P.media.result = null;
  const answer = await command("/media/eject");
  if (answer && answer.message) P.media.result = { ok: Boolean(answer.ok), message: answer.message };
  render();
}

// A part of the state no tile knows yet (a later issue's device): shown as its fields, so nothing is hidden.
function renderGeneric(name, part) {
  const box = tile(name, has("label." + name) ? t("label." + name) : name);
  fill(box.body, rows([...extras(part, []), ...scalarArrays(part, [])]));
}

function renderNotices(notices) {
  $("notices").replaceChildren(...notices.map((n) =>
    el("li", { class: "notice " + n.level, "data-topic": n.topic, "data-main-text": true }, n[P.lang] || n.fr)));
}

function render() {
  renderHeader();
  renderError();
  const state = P.state;
  if (!state) return;
  const mode = state.station.state;
  renderNotices(state.notices);
  renderPower(state.power);
  renderModem(state.modem, state.connectivity);
  renderDisplays(state.displays, mode, state.handover);
  renderScanner(state.scanner, mode);
  renderPrinter(state.printer);
  renderAudio(state.audio, state.camera);
  renderMedia(state.media, mode);
  renderReceipt();
  for (const [name, part] of Object.entries(state)) {
    if (!KNOWN_PARTS.includes(name) && !HIDDEN_PARTS.includes(name) && part && typeof part === "object"
        && part.present !== false) {
      renderGeneric(name, part);
    }
  }
}

// ---------------------------------------------------------------------------------------------------- data
async function refreshScans() {
  P.scans = P.state && P.state.session ? await getJSON("/scans").catch(() => P.scans) : [];
}
async function refreshJobs() {
  P.jobs = P.state && P.state.session ? await getJSON("/jobs").catch(() => P.jobs) : [];
}
async function refreshReceipt() {
  const latest = await getJSON("/receipts?limit=1").catch(() => null);
  if (latest) P.receipt = latest[0] || null;
}
async function refreshHistory() {
  P.history = await getJSON(`/power/history?hours=${HISTORY_HOURS}`).catch(() => P.history);
}

// The lists the snapshot only counts are fetched when their count, the session or the printer moves.
async function onState(state) {
  const before = P.seen;
  P.state = state;
  P.receivedAt = Date.now();
  const session = state.session;
  const now = {
    session: session ? session.id : null,
    scans: session ? session.scans : -1,
    prints: session ? session.print_jobs : -1,
    mode: state.station.state,
    printer: JSON.stringify(state.printer),
  };
  P.seen = now;
  if (now.session !== before.session) P.media = { busy: false, result: null, chosen: new Set() };  // a new citizen
  $("main").hidden = false;
  render();
  const work = [];
  if (!P.scanning) work.push(getJSON("/scanning").then((v) => { P.scanning = v; }).catch(() => null));
  if (now.session !== before.session || now.scans !== before.scans) work.push(refreshScans());
  if (now.session !== before.session || now.prints !== before.prints || now.printer !== before.printer) work.push(refreshJobs());
  if (now.mode !== before.mode && (before.mode === "wiping" || now.mode === "wiping" || before.mode === null)) {
    work.push(refreshReceipt());
  }
  if (work.length) {
    await Promise.all(work);
    render();
  }
}

// ---------------------------------------------------------------------------------------------------- live
function setOnline(online) {
  P.online = online;
  const banner = $("banner");
  banner.hidden = online;
  banner.textContent = t("panel.connection.lost");
  document.body.dataset.connection = online ? "live" : "lost";
  render();
}
// EventSource cannot send an Authorization header: the stream is authorised by the panel's cookie.
function connect() {
  if (P.source) P.source.close();
  const source = new EventSource("/events");
  P.source = source;
  source.addEventListener("state", (event) => {
    if (document.body.dataset.connection !== "live") setOnline(true);
    onState(JSON.parse(event.data));
  });
  source.onerror = () => {
    if (P.source !== source) return;
    setOnline(false);
    if (source.readyState === EventSource.CLOSED) {
      // refused, not just cut (a new token after a reboot): say so, or try again in a moment
      setTimeout(async () => {
        if (P.source !== source) return;
        try {
          const answer = await api("GET", "/status");
          if (answer.status === 401) return locked();
        } catch (exc) { /* still down */ }
        connect();
      }, 2000);
    }
  };
}

function locked() {
  if (P.source) P.source.close();
  P.source = null;
  $("main").hidden = true;
  $("banner").hidden = true;
  $("primary").hidden = true;
  $("end-of-day").hidden = true;
  $("locked").hidden = false;
  $("state-title").textContent = t("panel.title");
  $("state-detail").textContent = "";
  $("locked-title").textContent = t("panel.locked.title");
  $("locked-text").textContent = t("panel.locked.text");
  document.body.dataset.connection = "locked";
}

function applyLanguage() {
  document.documentElement.lang = P.lang;
  $("confirm-text").textContent = t("panel.confirm.end_of_day");
  $("confirm-yes").textContent = t("panel.confirm.yes");
  $("confirm-no").textContent = t("panel.confirm.no");
  if (!$("locked").hidden) locked();
  $("banner").textContent = t("panel.connection.lost");
  render();
}

async function boot() {
  P.words = await (await fetch("/panel/messages", { cache: "no-store" })).json();
  $("lang").addEventListener("click", () => {
    P.lang = P.lang === "fr" ? "en" : "fr";
    localStorage.setItem("kioskd-panel-lang", P.lang);
    applyLanguage();
  });
  $("primary").addEventListener("click", () => {
    const path = $("primary").dataset.path;
    if (path) command(path);
  });
  $("end-of-day").addEventListener("click", () => $("confirm").showModal());
  $("confirm-no").addEventListener("click", () => $("confirm").close());
  $("confirm-yes").addEventListener("click", () => { $("confirm").close(); command("/end-of-day"); });
  applyLanguage();
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    // the token leaves the address bar and the history at once; the cookie carries it from now on
    history.replaceState(null, "", location.pathname);
    const answer = await fetch("/panel/login", { method: "POST", headers: { Authorization: "Bearer " + token } });
    if (!answer.ok) return locked();
  }
  try {
    const [state, scanning] = await Promise.all([getJSON("/status"), getJSON("/scanning"), refreshHistory(), refreshReceipt()]);
    P.scanning = scanning;
    $("main").hidden = false;
    P.online = true;
    await onState(state);
  } catch (exc) {
    if (exc instanceof Locked) return locked();
    setOnline(false);
  }
  connect();
  setInterval(() => { if (P.state && P.state.session) renderHeader(); }, 15000);  // the session's minutes
  setInterval(refreshHistory, 300000);
}

document.addEventListener("DOMContentLoaded", boot);
