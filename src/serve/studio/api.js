// The one way the page talks to the service: same-origin fetch, JSON or multipart bodies, the
// token (when the service has one) as `Authorization: Bearer` from local storage — never in a
// URL. A 401 asks for the token once and retries.

const TOKEN_KEY = "codex-imagen.token";
let tokenWaiters = null;

export function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}

function askToken() {
  if (tokenWaiters) return tokenWaiters.promise;
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  tokenWaiters = { promise, resolve };
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  input.value = "";
  const done = (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    try { localStorage.setItem(TOKEN_KEY, value); } catch { /* private mode: this page only */ }
    form.removeEventListener("submit", done);
    dialog.close();
    const waiters = tokenWaiters;
    tokenWaiters = null;
    waiters.resolve(value);
  };
  form.addEventListener("submit", done);
  dialog.addEventListener("cancel", (e) => e.preventDefault(), { once: true });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return promise;
}

/** An error whose message is the service's own text. */
export class ApiError extends Error {
  constructor(status, body) {
    const err = body && body.error ? body.error : {};
    super(err.message || `The service answered ${status}.`);
    this.status = status;
    this.code = err.code || null;
  }
}

/** fetch(path) with the token; a 401 asks for the token and tries again. */
export async function request(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    const t = token();
    if (t) headers.set("Authorization", `Bearer ${t}`);
    const response = await fetch(path, { ...options, headers, credentials: "omit" });
    if (response.status !== 401) return response;
    await askToken();
  }
}

async function failed(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  return new ApiError(response.status, body);
}

export async function getJson(path) {
  const response = await request(path);
  if (!response.ok) throw await failed(response);
  return response.json();
}

export async function sendJson(method, path, value) {
  const response = await request(path, {
    method,
    headers: { "Content-Type": "application/json" },
    body: value === undefined ? undefined : JSON.stringify(value),
  });
  if (!response.ok) throw await failed(response);
  return response.json();
}

export async function del(path) {
  const response = await request(path, { method: "DELETE" });
  if (!response.ok) throw await failed(response);
  return response.json();
}

export async function blob(path) {
  const response = await request(path);
  if (!response.ok) throw await failed(response);
  return response.blob();
}

export { failed };

/** An element with text (never HTML) and attributes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
