// Staff tablet sound: a short WebAudio beep per new alert level (no file); browsers need one tap before audio plays.
"use strict";

window.TabletSound = (() => {
  let ctx = null;
  const TONES = { alert: [880, 660, 880], watch: [660], care: [523] }; // care: one low, soft tone
  const GAIN = { alert: 0.35, watch: 0.3, care: 0.12 };
  function audio() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!ctx && Ctx) ctx = new Ctx();
    return ctx;
  }
  function beep(level) {
    const c = audio();
    if (!c) return;
    if (c.state === "suspended") c.resume().catch(() => {});
    (TONES[level] || TONES.watch).forEach((f, i) => {
      const at = c.currentTime + 0.02 + i * 0.2;
      const osc = c.createOscillator();
      const gain = c.createGain();
      osc.type = "sine";
      osc.frequency.value = f;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(GAIN[level] || 0.3, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.16);
      osc.connect(gain).connect(c.destination);
      osc.start(at);
      osc.stop(at + 0.18);
    });
  }
  return { audio, beep, running: () => Boolean(ctx && ctx.state === "running") };
})();
