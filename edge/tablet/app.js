// Staff tablet: subscribes to one site's kiosks over MQTT-over-WebSockets and shows counters and alerts.
// Plain ES2020, no framework. Every payload is untrusted: parsed defensively, shown with textContent only.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const num = (v, d) => (v !== null && v !== "" && Number.isFinite(Number(v)) ? Number(v) : d);
  const pickLang = (v) => {
    const l = (v || navigator.language || "en").toLowerCase();
    return l.startsWith("zh") ? "zh-CN" : "en";
  };
  const cfg = {
    broker: params.get("broker") || `ws://${location.hostname || "127.0.0.1"}:9001`,
    site: params.get("site") || "",
    prefix: (params.get("prefix") || "edge-emotion").replace(/^\/+|\/+$/g, ""),
    lang: pickLang(params.get("lang")),
    username: params.get("username") || undefined,
    password: params.get("password") || undefined,
    staleS: num(params.get("stale"), 10), // an emotion reading older than this (s) is "no recent reading"
    watch: num(params.get("watch"), 0.4), // escalation thresholds of the state dot
    alert: num(params.get("alert"), 0.7),
  };
  const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
  const KINDS = new Set(["status", "emotion", "alert", "visit"]);
  const LEVELS = new Set(["watch", "alert", "recovered"]);
  const STRINGS = window.TABLET_I18N[cfg.lang] || window.TABLET_I18N.en;
  const $ = (id) => document.getElementById(id);
  // kiosk id -> {id, name, online, statusTs, degraded, paused, pauseSend, emoTs, emoAt, escalation, visit, el}
  const kiosks = new Map();
  const alerts = new Map(); // kiosk + "/" + alert_id -> {kiosk, id, level, ts, p, ack, el}
  const seen = new Map(); // event_id -> arrival ms (QoS 1 may deliver twice)
  const body = document.body;
  let client = null;
  let audioCtx = null;

  function t(key, vars = {}) {
    const s = STRINGS[key] ?? window.TABLET_I18N.en[key] ?? key;
    return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
  }
  const timeOf = (ms, seconds = true) => new Date(ms).toLocaleTimeString(cfg.lang,
    { hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}), hour12: false });
  const bump = (key) => { body.dataset[key] = String(Number(body.dataset[key] || 0) + 1); };

  function applyI18n() {
    document.documentElement.lang = cfg.lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  }

  function setConn(state) {
    $("conn").dataset.state = state;
    $("conn-text").textContent = t(`conn_${state}`);
  }

  // ---- sound: a short WebAudio beep, no file; browsers need one tap before audio may play ----
  function audio() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!audioCtx && Ctx) audioCtx = new Ctx();
    return audioCtx;
  }
  function refreshSoundButton() {
    const ctx = audio();
    $("sound").hidden = !ctx || ctx.state === "running";
  }
  function beep(level) {
    bump("beeps");
    try {
      const ctx = audio();
      if (!ctx) return;
      if (ctx.state === "suspended") ctx.resume().catch(() => {});
      const tones = level === "alert" ? [880, 660, 880] : [660];
      tones.forEach((f, i) => {
        const at = ctx.currentTime + 0.02 + i * 0.2;
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = "sine";
        osc.frequency.value = f;
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.35, at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.16);
        osc.connect(gain).connect(ctx.destination);
        osc.start(at);
        osc.stop(at + 0.18);
      });
    } catch (err) {
      console.warn("tablet: beep failed", err);
    }
  }

  // ---- counters ----
  function kiosk(id, name) {
    let k = kiosks.get(id);
    if (!k) {
      const el = $("tile-tpl").content.firstElementChild.cloneNode(true);
      el.dataset.kiosk = id;
      k = { id, name: "", online: "unknown", statusTs: 0, degraded: [], paused: false, pauseSend: "", emoTs: 0,
        emoAt: 0, escalation: 0, visit: null, el };
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
  function tileState(k, now) {
    if (k.online === "offline") return "offline";
    if (k.paused) return "paused";
    if (k.emoAt && now - k.emoAt <= cfg.staleS * 1000) {
      return k.escalation >= cfg.alert ? "alert" : k.escalation >= cfg.watch ? "watch" : "calm";
    }
    return k.visit ? "stale" : "idle";
  }
  function renderTile(k, now = Date.now()) {
    const el = k.el;
    const state = tileState(k, now);
    el.dataset.online = k.online;
    el.dataset.state = state;
    const open = [...alerts.values()].filter((a) => a.kiosk === k.id && a.level !== "recovered" && a.ack !== "done");
    el.dataset.alerting = open.some((a) => a.level === "alert") ? "alert" : open.length ? "watch" : "";
    el.querySelector(".tile-name").textContent = k.name || k.id;
    el.querySelector(".presence").textContent = k.online === "unknown" ? "" : t(k.online);
    el.querySelector(".tile-state").textContent = state === "offline" ? "" : t(`state_${state}`);
    const fresh = ["calm", "watch", "alert"].includes(state);
    el.querySelector(".meter-fill").style.width = `${fresh ? Math.round(k.escalation * 100) : 0}%`;
    let note = "";
    if (k.online === "offline" && k.statusTs) note = t("offline_since", { time: timeOf(k.statusTs, false) });
    else if (k.degraded.length) note = t("degraded", { what: k.degraded.join(", ") });
    el.querySelector(".tile-note").textContent = note;
    el.dataset.paused = String(k.paused);
    const pause = el.querySelector(".pause");
    pause.hidden = k.online !== "online";
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
    k.online = p.state;
    k.statusTs = retained ? ts : Date.now();
    k.degraded = Array.isArray(p.degraded) ? p.degraded.filter((d) => typeof d === "string").slice(0, 4) : [];
    k.paused = p.state === "online" && p.paused === true;
    if (p.state === "offline") k.emoAt = 0;
    renderTile(k);
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

  // ---- alerts ----
  function onAlert(id, p, ts) {
    const hint = p.hint && typeof p.hint.text === "string" ? p.hint.text : "";
    if (typeof p.alert_id !== "string" || !p.alert_id || !LEVELS.has(p.level) || !hint) return false;
    const key = `${id}/${p.alert_id}`;
    const k = kiosk(id, p.counter_name);
    let a = alerts.get(key);
    if (a && ts < a.ts) return true;
    if (!a && p.level === "recovered") return true; // recovery of an alert not shown (or dismissed) here
    const isNew = !a || (a.level === "watch" && p.level === "alert") || (a.level === "recovered" && p.level !== a.level);
    if (!a) {
      const el = $("card-tpl").content.firstElementChild.cloneNode(true);
      a = { kiosk: id, id: p.alert_id, key, level: p.level, ts, p, ack: "", el };
      el.dataset.alertId = p.alert_id;
      el.dataset.kiosk = id;
      el.querySelector(".ack").addEventListener("click", () => acknowledge(a));
      el.querySelector(".dismiss").addEventListener("click", () => dismiss(a));
      el.addEventListener("animationend", () => el.classList.remove("fresh"));
      alerts.set(key, a);
      $("cards").prepend(el);
      trimCards();
    }
    if (isNew && p.level !== "recovered") {
      a.ack = "";
      a.el.classList.remove("fresh");
      void a.el.offsetWidth; // restart the highlight animation
      a.el.classList.add("fresh");
      beep(p.level);
      requestAnimationFrame(() => { a.el.dataset.shownAt = String(Date.now()); });
    }
    Object.assign(a, { level: p.level, ts, p });
    renderCard(a);
    renderTile(k);
    return true;
  }
  // Open alerts first, then open watches, then acknowledged, then recovered; newest first within each.
  const rank = (a) => (a.level === "recovered" ? 3 : a.ack === "done" ? 2 : a.level === "alert" ? 0 : 1);
  function sortCards() {
    const want = [...alerts.values()].sort((x, y) => rank(x) - rank(y) || y.ts - x.ts).map((a) => a.el);
    const box = $("cards");
    if (want.some((el, i) => box.children[i] !== el)) want.forEach((el) => box.appendChild(el));
  }
  function renderCard(a) {
    const el = a.el;
    const p = a.p;
    const k = kiosks.get(a.kiosk);
    el.dataset.level = a.level;
    el.dataset.ack = a.ack;
    el.querySelector(".level").textContent = t(`level_${a.level}`);
    el.querySelector(".card-counter").textContent = p.counter_name || (k && k.name) || a.kiosk;
    el.querySelector(".card-time").textContent = timeOf(a.ts);
    el.querySelector(".card-time").dateTime = new Date(a.ts).toISOString();
    el.querySelector(".hint").textContent = p.hint.text;
    const ev = p.evidence || {};
    const mods = (Array.isArray(ev.modalities) ? ev.modalities : []).map((m) => t(`mod_${m}`)).join(" + ");
    const evText = Number.isFinite(ev.escalation) && Number.isFinite(ev.duration_s)
      ? t("evidence", { esc: Math.round(ev.escalation * 100), dur: Math.round(ev.duration_s), mods }) : "";
    el.querySelector(".reason").textContent = [t(`reason_${p.reason}`), evText].filter(Boolean).join(" · ");
    const ack = el.querySelector(".ack");
    ack.hidden = a.level === "recovered" && a.ack !== "done";
    ack.disabled = a.ack === "sending" || a.ack === "done";
    ack.textContent = t(a.ack ? `ack_${a.ack}` : "ack");
    el.querySelector(".dismiss").hidden = !(a.level === "recovered" || a.ack === "done");
    el.querySelector(".dismiss").textContent = t("dismiss");
    $("no-alerts").hidden = alerts.size > 0;
    sortCards();
  }
  function acknowledge(a) {
    if (!client || a.ack === "sending" || a.ack === "done") return;
    a.ack = "sending";
    renderCard(a);
    const topic = `${cfg.prefix}/${cfg.site}/${a.kiosk}/ack`;
    client.publish(topic, JSON.stringify({ alert_id: a.id, by: "tablet" }), { qos: 1 }, (err) => {
      if (err) console.warn("tablet: ack not sent", err);
      a.ack = err ? "failed" : "done";
      renderCard(a);
      const k = kiosks.get(a.kiosk);
      if (k) renderTile(k);
    });
  }
  function dismiss(a) {
    a.el.remove();
    alerts.delete(a.key);
    $("no-alerts").hidden = alerts.size > 0;
    const k = kiosks.get(a.kiosk);
    if (k) renderTile(k);
  }
  function trimCards() {
    const done = [...alerts.values()].filter((a) => a.level === "recovered" || a.ack === "done");
    done.sort((x, y) => x.ts - y.ts).slice(0, Math.max(0, alerts.size - 30)).forEach(dismiss);
  }

  // ---- MQTT ----
  const HANDLERS = { status: onStatus, emotion: onEmotion, visit: onVisit, alert: onAlert };
  const decoder = new TextDecoder();
  function handle(topic, payload, retained) {
    const base = `${cfg.prefix}/${cfg.site}/`;
    if (!topic.startsWith(base)) return false;
    const [id, kind, ...rest] = topic.slice(base.length).split("/");
    if (rest.length || !ID_RE.test(id) || !KINDS.has(kind)) return false;
    const text = decoder.decode(payload);
    if (!text) return true; // a cleared retained message
    const p = JSON.parse(text);
    if (!p || typeof p !== "object" || p.schema !== `edge-emotion/${kind}/1` || p.kiosk_id !== id
      || p.site_id !== cfg.site || typeof p.event_id !== "string") return false;
    const ts = Date.parse(p.ts);
    if (!Number.isFinite(ts)) return false;
    if (seen.has(p.event_id)) return true;
    seen.set(p.event_id, Date.now());
    return HANDLERS[kind](id, p, ts, retained);
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
  function connect() {
    const filters = ["status", "emotion", "alert", "visit"].map((k) => `${cfg.prefix}/${cfg.site}/+/${k}`);
    setConn("connecting");
    client = window.mqtt.connect(cfg.broker, {
      clientId: `tablet-${Math.random().toString(16).slice(2, 10)}`, clean: true, keepalive: 20,
      reconnectPeriod: 3000, connectTimeout: 8000, username: cfg.username, password: cfg.password,
    });
    client.on("connect", () => {
      client.subscribe(filters, { qos: 1 }, (err) => {
        if (err) console.warn("tablet: subscribe failed", err);
        setConn(err ? "offline" : "online");
      });
    });
    client.on("reconnect", () => setConn("connecting"));
    client.on("close", () => setConn("offline"));
    client.on("error", (err) => console.warn("tablet: mqtt error", err && err.message));
    client.on("message", onMessage);
  }

  function tick() {
    const now = Date.now();
    $("clock").textContent = timeOf(now, false);
    kiosks.forEach((k) => renderTile(k, now));
    seen.forEach((at, id) => { if (now - at > 10 * 60 * 1000) seen.delete(id); });
  }

  function start() {
    applyI18n();
    $("site").textContent = cfg.site;
    $("no-alerts").hidden = false;
    $("sound").addEventListener("click", () => {
      const ctx = audio();
      if (ctx) ctx.resume().then(refreshSoundButton, () => {});
    });
    document.addEventListener("pointerdown", () => { if (audioCtx) audioCtx.resume().then(refreshSoundButton, () => {}); });
    refreshSoundButton();
    tick();
    setInterval(tick, 1000);
    if (!ID_RE.test(cfg.site) || !cfg.prefix || /[+#]/.test(cfg.prefix)) {
      $("main").hidden = true;
      $("setup").hidden = false;
      $("setup-example").textContent = `${location.origin}${location.pathname}?broker=ws://HOST:9001&site=SITE&lang=${cfg.lang}`;
      setConn("offline");
      return;
    }
    if (!window.mqtt) {
      console.error("tablet: vendor/mqtt.min.js is missing (run scripts/vendor-tablet)");
      setConn("offline");
      return;
    }
    connect();
  }

  start();
})();
