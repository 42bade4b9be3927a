// The studio's entry: wires Create, Gallery, Details and the mask editor together, and keeps
// the header (account, quota meter, the no-credentials banner) fresh once a minute.

import { getJson, el } from "./api.js";
import * as create from "./create.js";
import * as gallery from "./gallery.js";
import * as details from "./details.js";
import * as mask from "./mask.js";

const $ = (id) => document.getElementById(id);

function meter(name, window) {
  if (!window) return null;
  const used = Math.max(0, Math.min(100, Number(window.used_percent) || 0));
  const resets = window.resets_at ? new Date(window.resets_at).toLocaleString() : "unknown";
  const label = `${name}: ${used}% used, resets ${resets}`;
  return el("div", { class: "meter" },
    el("span", { text: label }),
    el("progress", { max: 100, value: used, "aria-label": label }));
}

function windowName(window, fallback) {
  const s = window && window.window_seconds;
  if (s === 18000) return "5-hour";
  if (s === 604800) return "Weekly";
  if (s && s % 86400 === 0) return `${s / 86400}-day`;
  if (s && s % 3600 === 0) return `${s / 3600}-hour`;
  return fallback;
}

async function refreshStatus() {
  let status;
  try {
    status = await getJson("/v1/studio/status");
  } catch (err) {
    $("account").textContent = err.message;
    return;
  }
  const banner = $("banner");
  if (status.credentials && status.credentials.found === false) {
    banner.replaceChildren(
      el("strong", { text: "No credentials found. " }),
      el("span", { text: "Sign in with " }),
      el("code", { text: status.credentials.sign_in || "codex-imagen --login" }),
      el("span", { text: ", then reload this page." }),
      el("details", {},
        el("summary", { text: "Where the service looked" }),
        el("p", { class: "detail", text: status.credentials.message || "" })),
    );
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  const account = status.account;
  $("account").textContent = account
    ? `Signed in as ${account.email || account.account_id || "unknown account"}`
    : "Not signed in";
  const quota = $("quota");
  quota.replaceChildren();
  const u = status.usage;
  if (u) {
    const parts = [meter(windowName(u.primary, "Primary"), u.primary), meter(windowName(u.secondary, "Secondary"), u.secondary)].filter(Boolean);
    if (u.limit_reached) parts.unshift(el("strong", { class: "error", text: "Usage limit reached" }));
    quota.append(...parts);
  } else if (status.usage_error && status.credentials && status.credentials.found) {
    quota.append(el("span", { class: "muted", text: "Quota unavailable" }));
  }
}

function init() {
  create.init({ finished: () => { gallery.reload(); refreshStatus(); } });
  gallery.init({ open: (id) => details.open(id) });
  details.init({
    addReference: (file) => create.addReference(file),
    edit: (row, file) => mask.open(row, file),
    deleted: () => gallery.reload(),
  });
  mask.init({ apply: (edit) => create.startEdit(edit) });
  refreshStatus();
  setInterval(refreshStatus, 60000);
  document.body.dataset.ready = "true";
}

init();
