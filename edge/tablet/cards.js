// Staff tablet alert cards: one card per episode (alert_id), updated in place, in the kiosk's level.
"use strict";

// ctx: {alerts, kiosks, kiosk, renderTile, t, timeOf, hintText, hintLang, beep, publish, cfg}
window.TabletCards = (ctx) => {
  const { alerts, kiosks, kiosk, renderTile, t, timeOf, hintText, hintLang, beep, cfg } = ctx;
  const dismissed = new Map(); // key -> level of acknowledged cards staff dismissed (at most 200)
  const REPLAY_MS = 120000; // an event this much older than the kiosk's newest message is a replay: no sound
  const ACK_GRACE_MS = 5000; // how long after the broker took an ack the kiosk's state may still lack it
  const $ = (id) => document.getElementById(id);

  // fromCurrent: the kiosk's retained present state (already ordered by its own ts): its level wins even though
  // `ts` (the episode's start) is older than the card's last event, and its `acknowledged` is the kiosk's record.
  function upsertAlert(id, p, ts, acknowledged, fromCurrent = false) {
    const key = `${id}/${p.alert_id}`;
    const k = kiosk(id, p.counter_name);
    let a = alerts.get(key);
    if (!a && p.level === "recovered") return; // recovery of an alert not shown (or dismissed) here
    // A card staff dismissed stays away while the kiosk reports the same level, acknowledged; it comes back when
    // the episode is raised to another level or the kiosk has no ack for it.
    const gone = dismissed.get(key);
    if (!a && gone !== undefined && gone === p.level && acknowledged) return;
    const isNew = !a || (a.level === "watch" && p.level === "alert") || (a.level === "recovered" && p.level !== a.level);
    // A reminder (same episode, still an alert, "repeat" hint) sounds again unless the kiosk recorded an ack.
    const reminder = Boolean(a) && !fromCurrent && a.level === "alert" && p.level === "alert" && ts > a.ts
      && Boolean(p.hint) && p.hint.key === "repeat" && !a.kioskAck;
    // Shown but never sounded: an episode of a kiosk that is offline, or an event replayed from the kiosk's outbox
    // after an outage (more than REPLAY_MS older than the newest message of that kiosk).
    const quiet = k.online === "offline" || ts < (k.newestTs || 0) - REPLAY_MS;
    if (!a) {
      const el = $("card-tpl").content.firstElementChild.cloneNode(true);
      a = { kiosk: id, id: p.alert_id, key, level: p.level, ts, p, ack: "", ended: false, el };
      el.dataset.alertId = p.alert_id;
      el.dataset.kiosk = id;
      el.querySelector(".ack").addEventListener("click", () => acknowledge(a));
      el.querySelector(".dismiss").addEventListener("click", () => dismiss(a));
      el.addEventListener("animationend", () => el.classList.remove("fresh"));
      alerts.set(key, a);
      $("cards").prepend(el);
      trimCards();
    } else if (ts < a.ts && !acknowledged && !fromCurrent) return;
    if ((isNew && p.level !== "recovered") || reminder) {
      if (isNew) a.ack = "";
      if (reminder) a.ack = ""; // the ack this tablet sent never reached the kiosk: ask again
      if (!acknowledged && !quiet) {
        a.el.classList.remove("fresh");
        void a.el.offsetWidth; // restart the highlight animation
        a.el.classList.add("fresh");
        beep(p.level);
      }
      requestAnimationFrame(() => { a.el.dataset.shownAt = String(Date.now()); });
    }
    if (acknowledged) Object.assign(a, { ack: "done", kioskAck: true });
    else if (fromCurrent && a.ack === "done" && (a.kioskAck || Date.now() - (a.ackAt || 0) > ACK_GRACE_MS)) {
      Object.assign(a, { ack: "", kioskAck: false }); // the kiosk has no ack for it: not acknowledged after all
    }
    Object.assign(a, { level: p.level, ts: Math.max(ts, a.ts), p, ended: false });
    renderCard(a);
    renderTile(k);
  }
  // Open alerts first, then open watches, then acknowledged, then recovered/ended; newest first within each.
  const rank = (a) => (a.level === "recovered" || a.ended ? 3 : a.ack === "done" ? 2 : a.level === "alert" ? 0 : 1);
  function sortCards() {
    const want = [...alerts.values()].sort((x, y) => rank(x) - rank(y) || y.ts - x.ts).map((a) => a.el);
    const box = $("cards");
    if (want.some((el, i) => box.children[i] !== el)) want.forEach((el) => box.appendChild(el));
  }
  function renderCard(a) {
    const el = a.el;
    const p = a.p;
    const k = kiosks.get(a.kiosk);
    const level = a.ended && a.level !== "recovered" ? "ended" : a.level;
    el.dataset.level = level;
    el.dataset.ack = a.ack;
    el.querySelector(".level").textContent = t(level === "ended" && a.offline ? "level_offline" : `level_${level}`);
    el.querySelector(".card-counter").textContent = p.counter_name || (k && k.name) || a.kiosk;
    el.querySelector(".card-time").textContent = timeOf(a.ts);
    el.querySelector(".card-time").dateTime = new Date(a.ts).toISOString();
    const hint = el.querySelector(".hint");
    hint.textContent = hintText(p.hint);
    hint.lang = hintLang(p.hint);
    const ev = p.evidence || {};
    const mods = (Array.isArray(ev.modalities) ? ev.modalities : []).map((m) => t(`mod_${m}`)).join(" + ");
    const evText = Number.isFinite(ev.escalation) && Number.isFinite(ev.duration_s)
      ? t("evidence", { esc: Math.round(ev.escalation * 100), dur: Math.round(ev.duration_s), mods }) : "";
    const why = level === "ended" ? t(a.offline ? "reason_offline" : "reason_ended") : t(`reason_${p.reason}`);
    el.querySelector(".reason").textContent = [why, evText].filter(Boolean).join(" · ");
    const ack = el.querySelector(".ack");
    const closed = level === "recovered" || level === "ended";
    ack.hidden = closed && a.ack !== "done";
    ack.disabled = a.ack === "sending" || a.ack === "done";
    ack.textContent = t(a.ack ? `ack_${a.ack}` : "ack");
    el.querySelector(".dismiss").hidden = !(closed || a.ack === "done");
    el.querySelector(".dismiss").textContent = t("dismiss");
    $("no-alerts").hidden = alerts.size > 0;
    sortCards();
  }
  function acknowledge(a) {
    if (a.ack === "sending" || a.ack === "done") return;
    const before = a.ack;
    a.ack = "sending";
    renderCard(a);
    const topic = `${cfg.prefix}/${cfg.site}/${a.kiosk}/ack`;
    const kio = kiosks.get(a.kiosk);
    const withLevel = Boolean(kio && kio.ackLevels) && ["watch", "alert"].includes(a.level);
    const sent = ctx.publish(topic, JSON.stringify({ alert_id: a.id, by: "tablet",
      ...(withLevel ? { level: a.level } : {}) }), (err) => {
      if (err) console.warn("tablet: ack not sent", err);
      if (a.ack === "sending") Object.assign(a, { ack: err ? "failed" : "done", ackAt: Date.now() });
      renderCard(a);
      const k = kiosks.get(a.kiosk);
      if (k) renderTile(k);
    });
    if (!sent) {
      a.ack = before; // not connected yet: nothing was sent
      renderCard(a);
    }
  }
  function dismiss(a) {
    a.el.remove();
    alerts.delete(a.key);
    if (a.ack === "done" && !a.ended && a.level !== "recovered") {
      dismissed.set(a.key, a.level);
      if (dismissed.size > 200) dismissed.delete(dismissed.keys().next().value); // oldest first: bounded
    }
    $("no-alerts").hidden = alerts.size > 0;
    const k = kiosks.get(a.kiosk);
    if (k) renderTile(k);
  }
  // Finished cards go first (beyond 30); open ones only past MAX_CARDS, oldest first: a flood of alert ids (a faulty
  // or hostile publisher) cannot grow the page without bound. Dropped open cards are counted in the console.
  const MAX_CARDS = 100;
  let dropped = 0;
  function trimCards() {
    const done = [...alerts.values()].filter((a) => a.level === "recovered" || a.ended || a.ack === "done");
    done.sort((x, y) => x.ts - y.ts).slice(0, Math.max(0, alerts.size - 30)).forEach(dismiss);
    if (alerts.size > MAX_CARDS) {
      const oldest = [...alerts.values()].sort((x, y) => x.ts - y.ts).slice(0, alerts.size - MAX_CARDS);
      oldest.forEach(dismiss);
      dropped += oldest.length;
      console.warn(`tablet: ${dropped} open alert card(s) dropped, more than ${MAX_CARDS} at once`);
    }
  }

  return { upsertAlert, renderCard };
};
