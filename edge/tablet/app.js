// Staff tablet: subscribes to one site's kiosks over MQTT-over-WebSockets and shows counters and alerts.
// Plain ES2020, no framework. Every payload is untrusted: parsed defensively, shown with textContent only.
// The kiosk decides every level (watch/alert/recovered, care): the tablet shows it and never re-derives one.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const num = (v, d) => (v !== null && v !== "" && Number.isFinite(Number(v)) ? Number(v) : d);
  const pickLang = (v) => {
    const l = (v || navigator.language || "en").toLowerCase();
    return l.startsWith("zh") ? "zh-CN" : "en";
  };
  const cfg = {
    broker: params.get("broker") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname || "127.0.0.1"}:9001`,
    site: params.get("site") || "",
    prefix: (params.get("prefix") || "edge-emotion").replace(/^\/+|\/+$/g, ""),
    lang: pickLang(params.get("lang")),
    staleS: num(params.get("stale"), 10), // an emotion reading older than this (s) is "no recent reading"
    healthS: num(params.get("health"), 25), // no health for this long (s) = no signal, unless configstate says
  };
  const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
  const KINDS = ["status", "emotion", "alert", "visit", "current", "health", "configstate", "cue"];
  const LEVELS = new Set(["watch", "alert", "recovered"]);
  const CUES = new Set(["care", "positive"]);
  const STRINGS = window.TABLET_I18N[cfg.lang] || window.TABLET_I18N.en;
  const HINTS = (window.TABLET_HINTS || {})[cfg.lang] || {};
  const $ = (id) => document.getElementById(id);
  const kiosks = new Map(); // kiosk id -> tile state (see kiosk())
  const alerts = new Map(); // kiosk + "/" + alert_id -> {kiosk, id, key, level, ts, p, ack, ended, el}
  const seen = new Map(); // event_id -> arrival ms (QoS 1 may deliver twice)
  const conn = { state: "connecting", lostAt: 0 };
  const body = document.body;
  let client = null;

  function t(key, vars = {}) {
    const s = STRINGS[key] ?? window.TABLET_I18N.en[key] ?? key;
    return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
  }
  const timeOf = (ms, seconds = true) => new Date(ms).toLocaleTimeString(cfg.lang,
    { hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}), hour12: false });
  const bump = (key) => { body.dataset[key] = String(Number(body.dataset[key] || 0) + 1); };
  // The hint in this tablet's language from its key; the kiosk's text for a site override in this language, or
  // for a key this tablet does not know.
  const hintText = (h) => (h.custom && h.lang === cfg.lang ? h.text : HINTS[h.key] || h.text);
  const hintLang = (h) => (h.custom && h.lang === cfg.lang ? h.lang : HINTS[h.key] ? cfg.lang : h.lang);

  function applyI18n() {
    document.documentElement.lang = cfg.lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  }
  function setConn(state) {
    if (state !== "online" && conn.state === "online") conn.lostAt = Date.now();
    if (state !== "online" && !conn.lostAt) conn.lostAt = Date.now();
    conn.state = state;
    $("conn").dataset.state = state;
    $("conn-text").textContent = t(`conn_${state}`);
    kiosks.forEach((k) => renderTile(k));
  }
  function beep(level) {
    bump("beeps");
    body.dataset.lastBeep = level;
    try { window.TabletSound.beep(level); } catch (err) { console.warn("tablet: beep failed", err); }
  }

  // ---- counters ----
  function kiosk(id, name) {
    let k = kiosks.get(id);
    if (!k) {
      const el = $("tile-tpl").content.firstElementChild.cloneNode(true);
      el.dataset.kiosk = id;
      k = { id, name: "", online: "unknown", statusTs: 0, signAt: 0, healthS: 0, degraded: [], paused: false,
        pauseSend: "", emoTs: 0, emoAt: 0, escalation: 0, visit: null, currentTs: 0, cue: null, el };
      el.querySelector(".pause").addEventListener("click", () => togglePause(k));
      kiosks.set(id, k);
    }
    if (typeof name === "string" && name.trim() && name !== k.name) {
      k.name = name.trim();
      sortTiles();
    } else if (!k.el.isConnected) sortTiles();
    return k;
  }
  function sortTiles() {
    const list = [...kiosks.values()].sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id, cfg.lang));
    list.forEach((k) => $("tiles").appendChild(k.el));
    $("no-counters").hidden = list.length > 0;
  }
  const openAlerts = (id) => [...alerts.values()].filter((a) => a.kiosk === id && a.level !== "recovered" && !a.ended);
  // Presence: what this tablet can vouch for. Broker lost: unknown; a kiosk silent too long: no signal.
  function presence(k, now) {
    if (conn.state !== "online") return conn.lostAt ? "unknown" : "connecting";
    if (k.online !== "online") return k.online;
    const limit = (k.healthS ? 1.5 * k.healthS + 1 : cfg.healthS) * 1000;
    return now - k.signAt > limit ? "stale" : "online";
  }
  function tileState(k, pres, now) {
    if (pres === "unknown" || pres === "connecting") return "unknown";
    if (pres === "offline") return "offline";
    if (k.paused) return "paused";
    const open = openAlerts(k.id);
    if (open.length) return open.some((a) => a.level === "alert") ? "alert" : "watch";
    if (pres === "stale") return "stale";
    if (k.cue && k.cue.visit === k.visit) return k.cue.kind;
    if (k.emoAt && now - k.emoAt <= cfg.staleS * 1000) return "calm";
    return k.visit ? "stale" : "idle";
  }
  function renderTile(k, now = Date.now()) {
    const el = k.el;
    const pres = presence(k, now);
    const state = tileState(k, pres, now);
    el.dataset.online = pres;
    el.dataset.state = state;
    const unacked = openAlerts(k.id).filter((a) => a.ack !== "done");
    el.dataset.alerting = unacked.some((a) => a.level === "alert") ? "alert" : unacked.length ? "watch" : "";
    el.querySelector(".tile-name").textContent = k.name || k.id;
    const since = (ms) => timeOf(ms, false);
    el.querySelector(".presence").textContent = pres === "unknown" ? t("unknown_since", { time: since(conn.lostAt) })
      : pres === "stale" ? t("no_signal_since", { time: since(k.signAt) }) : pres === "connecting" ? "" : t(pres);
    el.querySelector(".tile-state").textContent = ["offline", "unknown"].includes(state) ? "" : t(`state_${state}`);
    const fresh = k.emoAt && now - k.emoAt <= cfg.staleS * 1000 && !["offline", "unknown", "paused"].includes(state);
    el.querySelector(".meter-fill").style.width = `${fresh ? Math.round(k.escalation * 100) : 0}%`;
    let note = "";
    if (pres === "unknown") note = t(conn.state === "online" ? "no_status_note" : "broker_lost_note");
    else if (pres === "offline" && k.statusTs) note = t("offline_since", { time: since(k.statusTs) });
    else if (pres === "stale") note = t("no_signal_note");
    else if (k.degraded.length) note = t("degraded", { what: k.degraded.join(", ") });
    el.querySelector(".tile-note").textContent = note;
    const cue = el.querySelector(".tile-cue");
    cue.textContent = CUES.has(state) ? hintText(k.cue.hint) : "";
    cue.lang = CUES.has(state) ? hintLang(k.cue.hint) : cfg.lang;
    el.dataset.paused = String(k.paused);
    const pause = el.querySelector(".pause");
    pause.hidden = pres !== "online";
    pause.disabled = k.pauseSend === "sending";
    pause.dataset.sending = k.pauseSend;
    pause.textContent = t(k.pauseSend ? `pause_${k.pauseSend}` : k.paused ? "resume" : "pause");
    pause.title = t("pause_title");
  }
  // Staff pause / opt-out: the kiosk applies it and says so in its retained status (`paused`), which this shows.
  function togglePause(k) {
    if (!client || k.pauseSend === "sending") return;
    k.pauseSend = "sending";
    renderTile(k);
    const topic = `${cfg.prefix}/${cfg.site}/${k.id}/pause`;
    const action = k.paused ? "resume" : "pause";
    client.publish(topic, JSON.stringify({ action, by: "tablet" }), { qos: 1 }, (err) => {
      if (err) console.warn("tablet: pause command not sent", err);
      k.pauseSend = err ? "failed" : "";
      renderTile(k);
    });
  }

  function onStatus(id, p, ts, retained) {
    if (!["online", "offline"].includes(p.state)) return false;
    const k = kiosk(id, p.counter_name);
    // The newest arrival wins, not the newest ts: the last will was made at connect time, before `online`.
    // A live `offline` counts from now; a retained one from its ts (best known).
    // A live `online` is a (re)start: its clock may have been stepped back (no real-time clock, NTP), so the
    // ordering by the kiosk's own ts starts afresh instead of dropping everything until it passes the old maximum.
    if (p.state === "online" && !retained) Object.assign(k, { currentTs: 0, emoTs: 0, newestTs: ts });
    k.online = p.state;
    k.statusTs = retained ? ts : Date.now();
    k.signAt = Date.now();
    k.degraded = Array.isArray(p.degraded) ? p.degraded.filter((d) => typeof d === "string").slice(0, 4) : [];
    k.paused = p.state === "online" && p.paused === true;
    k.ackLevels = p.ack_levels === true; // it takes an ack's `level`; older kiosks refuse the field
    if (p.state === "offline") {
      // Its retained `current` may be a crash's last word: no episode or cue of an offline kiosk stays open
      k.emoAt = 0;
      k.cue = null;
      openAlerts(id).forEach((a) => { Object.assign(a, { ended: true, offline: true }); renderCard(a); });
    }
    renderTile(k);
    return true;
  }
  function onHealth(id) {
    const k = kiosk(id);
    k.signAt = Date.now();
    renderTile(k);
    return true;
  }
  function onConfigstate(id, p) {
    const s = Number(p.config && p.config.mqtt && p.config.mqtt.health_interval_s);
    if (!(s > 0)) return false;
    kiosk(id).healthS = s;
    return true;
  }
  function onEmotion(id, p, ts) {
    const e = Number(p.escalation);
    if (typeof p.escalation !== "number" || !(e >= 0 && e <= 1)) return false;
    const k = kiosk(id);
    if (ts < k.emoTs) return true;
    Object.assign(k, { emoTs: ts, emoAt: Date.now(), escalation: e, visit: p.visit_id || k.visit });
    renderTile(k);
    return true;
  }
  function onVisit(id, p) {
    if (!["start", "end"].includes(p.phase) || typeof p.visit_id !== "string") return false;
    const k = kiosk(id);
    if (p.phase === "start") k.visit = p.visit_id;
    else if (!k.visit || k.visit === p.visit_id) Object.assign(k, { visit: null, emoAt: 0 });
    renderTile(k);
    return true;
  }
  // The kiosk's retained present state: what a tablet that connects late must show; it also carries acks made on
  // other tablets (the kiosk recorded them) and closes cards of episodes that ended while this tablet was away.
  function onCurrent(id, p, ts) {
    if (typeof p.paused !== "boolean" || !("episode" in p)) return false;
    const k = kiosk(id, p.counter_name);
    if (ts < k.currentTs) return true;
    k.currentTs = ts;
    k.paused = p.paused;
    k.visit = typeof p.visit_id === "string" ? p.visit_id : null;
    const off = k.online === "offline"; // a crashed kiosk's retained state, read after its offline status
    const ep = off ? null : p.episode;
    if (ep && (typeof ep.alert_id !== "string" || !LEVELS.has(ep.level) || !ep.hint)) return false;
    openAlerts(id).filter((a) => !ep || a.id !== ep.alert_id).forEach((a) => {
      Object.assign(a, { ended: true, offline: off });
      renderCard(a);
    });
    if (ep) {
      const since = Date.parse(ep.since);
      upsertAlert(id, { ...ep, counter_name: p.counter_name }, Number.isFinite(since) ? since : ts, ep.acknowledged,
        true);
    }
    const c = off ? null : p.cue;
    k.cue = c && c.visit_id === k.visit && CUES.has(c.kind) && c.hint ? { id: c.cue_id, kind: c.kind, visit: k.visit,
      hint: c.hint } : null;
    renderTile(k);
    return true;
  }
  // Care and good-moment cues: quieter than alerts, on the counter's tile only (no card); care has one soft tone.
  function onCue(id, p) {
    if (!CUES.has(p.kind) || typeof p.visit_id !== "string" || !p.hint || typeof p.hint.text !== "string") return false;
    const k = kiosk(id, p.counter_name);
    const isNew = !k.cue || k.cue.id !== p.cue_id;
    k.cue = { id: p.cue_id, kind: p.kind, visit: p.visit_id, hint: p.hint };
    k.visit = p.visit_id;
    if (isNew && p.kind === "care") beep("care");
    renderTile(k);
    return true;
  }

  // ---- alerts (cards.js) ----
  const publish = (topic, payload, done) => {
    if (!client) return false;
    client.publish(topic, payload, { qos: 1 }, done);
    return true;
  };
  const { upsertAlert, renderCard } = window.TabletCards({ alerts, kiosks, kiosk, renderTile, t, timeOf, hintText,
    hintLang, beep, publish, cfg });
  function onAlert(id, p, ts) {
    if (typeof p.alert_id !== "string" || !p.alert_id || !LEVELS.has(p.level) || !p.hint
      || typeof p.hint.text !== "string") return false;
    upsertAlert(id, p, ts, false);
    return true;
  }
  // ---- MQTT ----
  const HANDLERS = { status: onStatus, emotion: onEmotion, visit: onVisit, alert: onAlert, current: onCurrent,
    health: onHealth, configstate: onConfigstate, cue: onCue };
  const decoder = new TextDecoder();
  function handle(topic, payload, retained) {
    const base = `${cfg.prefix}/${cfg.site}/`;
    if (!topic.startsWith(base)) return false;
    const [id, kind, ...rest] = topic.slice(base.length).split("/");
    if (rest.length || !ID_RE.test(id) || !KINDS.includes(kind)) return false;
    const text = decoder.decode(payload);
    if (!text) return true; // a cleared retained message
    const p = JSON.parse(text);
    if (!p || typeof p !== "object" || p.schema !== `edge-emotion/${kind}/1` || p.kiosk_id !== id
      || p.site_id !== cfg.site || typeof p.event_id !== "string") return false;
    const ts = Date.parse(p.ts);
    if (!Number.isFinite(ts)) return false;
    // Retained states come again after every reconnect and must apply again; events are shown once.
    if (seen.has(p.event_id) && !retained) return true;
    seen.set(p.event_id, Date.now());
    const ok = HANDLERS[kind](id, p, ts, retained);
    const k = kiosks.get(id);
    if (ok && k && !(ts <= (k.newestTs || 0))) k.newestTs = ts; // after the handler: an event is not its own replay
    return ok;
  }
  function onMessage(topic, payload, packet) {
    let ok = false;
    try {
      ok = handle(topic, payload, Boolean(packet && packet.retain));
    } catch (err) {
      console.warn("tablet: bad message on", topic, err);
    }
    if (!ok) bump("ignored");
    else bump("handled");
  }
  function connect(creds) {
    const filters = KINDS.map((k) => `${cfg.prefix}/${cfg.site}/+/${k}`);
    setConn("connecting");
    client = window.mqtt.connect(cfg.broker, {
      clientId: `tablet-${Math.random().toString(16).slice(2, 10)}`, clean: true, keepalive: 20,
      reconnectPeriod: 3000, connectTimeout: 8000, username: creds.username, password: creds.password,
    });
    client.on("connect", () => {
      kiosks.forEach((k) => { k.online = "unknown"; }); // until each retained status arrives again
      client.subscribe(filters, { qos: 1 }, (err) => {
        if (err) console.warn("tablet: subscribe failed", err);
        setConn(err ? "offline" : "online");
      });
    });
    client.on("reconnect", () => setConn("connecting"));
    client.on("close", () => setConn("offline"));
    client.on("error", (err) => {
      console.warn("tablet: mqtt error", err && err.message);
      if (err && [4, 5, 134, 135].includes(err.code)) window.TabletLogin.refused(client);
    });
    client.on("message", onMessage);
  }

  function tick() {
    const now = Date.now();
    $("clock").textContent = timeOf(now, false);
    kiosks.forEach((k) => renderTile(k, now));
    seen.forEach((at, id) => { if (now - at > 10 * 60 * 1000) seen.delete(id); });
  }

  function unconfigured() {
    const missing = [];
    if (!ID_RE.test(cfg.site)) missing.push(t("setup_missing_site"));
    if (!cfg.prefix || /[+#]/.test(cfg.prefix)) missing.push(t("setup_bad_prefix"));
    return missing;
  }

  function start() {
    applyI18n();
    $("site").textContent = cfg.site;
    $("no-alerts").hidden = false;
    const refreshSound = () => { $("sound").hidden = !window.TabletSound.audio() || window.TabletSound.running(); };
    const resume = () => { const c = window.TabletSound.audio(); if (c) c.resume().then(refreshSound, () => {}); };
    $("sound").addEventListener("click", resume);
    document.addEventListener("pointerdown", resume);
    // the browser may suspend audio later (an interruption, a backgrounded tab): the button comes back then
    const sound = window.TabletSound.audio();
    if (sound && sound.addEventListener) sound.addEventListener("statechange", refreshSound);
    refreshSound();
    tick();
    setInterval(() => { tick(); refreshSound(); }, 1000);
    const missing = unconfigured();
    if (missing.length) {
      $("main").hidden = true;
      $("setup").hidden = false;
      $("setup-missing").textContent = missing.join(" ");
      $("setup-example").textContent = `${location.origin}${location.pathname}?site=SITE&broker=wss://BROKER:9001&lang=${cfg.lang}`;
      conn.state = "unconfigured";
      $("conn").dataset.state = "unconfigured";
      $("conn-text").textContent = t("conn_unconfigured");
      return;
    }
    if (!window.mqtt) {
      console.error("tablet: vendor/mqtt.min.js is missing (run scripts/vendor-tablet)");
      setConn("offline");
      return;
    }
    window.TabletLogin.start(cfg, t, connect);
  }

  window.TabletApp = { kiosk, renderTile, beep, hintText, hintLang, t, timeOf, cfg };
  start();
})();
