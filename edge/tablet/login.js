// Staff tablet login: the tablet's broker account typed into a form (never in the address), kept on the device.
"use strict";

window.TabletLogin = (() => {
  const KEY = "edge-emotion-tablet-login";
  const $ = (id) => document.getElementById(id);
  let connect = null;
  let used = null; // the account of the current connection attempt (none: anonymous)
  let broker = ""; // the broker this page connects to: a kept login is only ever sent to the broker it was made for
  let t = (k) => k;

  function stored() {
    for (const store of [window.localStorage, window.sessionStorage]) {
      try {
        const v = JSON.parse(store.getItem(KEY) || "null");
        if (v && typeof v.username === "string" && typeof v.password === "string") return v;
      } catch (err) { /* unreadable: ignored */ }
    }
    return null;
  }
  function forget() {
    [window.localStorage, window.sessionStorage].forEach((s) => { try { s.removeItem(KEY); } catch (err) { /* */ } });
  }
  function show(error) {
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-error").hidden = !error;
    $("login-error").textContent = error || "";
    $("signout").hidden = true;
    $("login-user").focus();
  }
  function submit(ev) {
    ev.preventDefault();
    const creds = { username: $("login-user").value.trim(), password: $("login-password").value, broker };
    if (!creds.username || !creds.password) return;
    forget();
    const store = $("login-remember").checked ? window.localStorage : window.sessionStorage;
    try { store.setItem(KEY, JSON.stringify(creds)); } catch (err) { console.warn("tablet: login not kept", err); }
    $("login-password").value = "";
    go(creds);
  }
  function go(creds) {
    $("login").hidden = true;
    $("main").hidden = false;
    $("signout").hidden = !creds.username;
    used = creds.username ? creds : null;
    connect(creds);
  }
  // The broker refused the account (or needs one): stop retrying and ask; an error only when one was tried.
  function refused(client) {
    client.end(true);
    if (used) forget();
    show(used ? t("login_refused") : "");
  }
  // The broker URL without its user and password when it has either, else "" (nothing to remove).
  function userInfo(url) {
    if (!url) return "";
    try {
      const u = new URL(url);
      if (!u.username && !u.password) return "";
      u.username = "";
      u.password = "";
      return u.toString();
    } catch (err) {
      return /\/\/[^/]*@/.test(url) ? url.replace(/\/\/[^/]*@/, "//") : "";
    }
  }
  function start(cfg, translate, connectFn) {
    connect = connectFn;
    t = translate;
    $("login-form").addEventListener("submit", submit);
    $("signout").addEventListener("click", () => { forget(); location.reload(); });
    // Credentials in the address end up in history, proxy logs and screenshots: refused, removed from the address.
    const params = new URLSearchParams(location.search);
    const withCreds = userInfo(params.get("broker")); // wss://user:password@host: mqtt.js would sign in with them
    if (params.has("password") || params.has("username") || withCreds) {
      params.delete("password");
      params.delete("username");
      if (withCreds) {
        params.set("broker", withCreds);
        cfg.broker = withCreds; // the page connects (after sign-in) to the same broker, without them
      }
      history.replaceState(null, "", `${location.pathname}?${params}`);
      broker = String(cfg.broker || "");
      show(t("login_url_refused"));
      return;
    }
    broker = String(cfg.broker || "");
    const kept = stored();
    // A link with another ?broker= must not carry the kept password there: that login is not offered to it.
    if (kept && kept.broker !== broker) {
      show(kept.broker === undefined ? "" : t("login_other_broker")); // a login kept before brokers were recorded
      return;
    }
    go(kept || {});
  }
  return { start, refused };
})();
