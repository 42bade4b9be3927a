// Gallery: every recorded image, newest first, a page at a time as the end of the list comes
// into view. Tiles show server thumbnails (≤ 512 px, made once and cached on disk), fetched
// with the token only when the tile nears the viewport — scrolling never loads a full image.

import { getJson, blob, el } from "./api.js";

const $ = (id) => document.getElementById(id);
const PAGE = 60;
let state = { next: null, done: false, loading: false, generation: 0 };
let onOpen = () => {};
const thumbUrls = new Map(); // id -> blob URL (kept: a tile re-rendered reuses it)

const tileObserver = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    tileObserver.unobserve(entry.target);
    loadThumb(entry.target);
  }
}, { rootMargin: "400px" });

export function thumbUrl(id) {
  if (thumbUrls.has(id)) return Promise.resolve(thumbUrls.get(id));
  return blob(`/v1/history/${id}/thumb`).then((b) => {
    const url = URL.createObjectURL(b);
    thumbUrls.set(id, url);
    return url;
  });
}

async function loadThumb(img) {
  const id = img.dataset.id;
  try {
    img.src = await thumbUrl(id);
  } catch {
    const box = img.closest("button");
    if (box) box.replaceChildren(el("span", { class: "missing", text: `Missing: ${img.alt}` }));
  }
}

export function init({ open }) {
  onOpen = open;
  let timer = null;
  $("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(reload, 250); });
  for (const id of ["filter-format", "filter-since", "filter-until"]) $(id).addEventListener("change", reload);
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) more();
  }, { rootMargin: "600px" }).observe($("grid-end"));
  reload();
}

function query() {
  const params = new URLSearchParams();
  const add = (key, id) => { const v = $(id).value.trim(); if (v) params.set(key, v); };
  add("q", "search");
  add("format", "filter-format");
  add("since", "filter-since");
  add("until", "filter-until");
  params.set("limit", String(PAGE));
  if (state.next) params.set("before", String(state.next));
  return params;
}

export function reload() {
  state = { next: null, done: false, loading: false, generation: state.generation + 1 };
  $("grid").replaceChildren();
  more();
}

async function more() {
  if (state.loading || state.done) return;
  state.loading = true;
  const generation = state.generation;
  $("grid-status").textContent = "Loading…";
  try {
    const page = await getJson(`/v1/history?${query()}`);
    if (generation !== state.generation) return;
    for (const row of page.data) $("grid").append(tile(row));
    state.next = page.next;
    state.done = !page.has_more;
    const count = $("grid").children.length;
    $("grid-status").textContent = count === 0 ? "No images yet." : state.done ? `${count} image${count === 1 ? "" : "s"}.` : "";
  } catch (err) {
    if (generation === state.generation) $("grid-status").textContent = err.message;
  } finally {
    if (generation === state.generation) state.loading = false;
  }
  // A short first page may leave the sentinel in view: keep going.
  if (!state.done && generation === state.generation) {
    const rect = $("grid-end").getBoundingClientRect();
    if (rect.top < window.innerHeight + 600) more();
  }
}

function tile(row) {
  const button = el("button", { type: "button", class: "tile", "data-id": row.id });
  if (row.missing) {
    button.append(el("span", { class: "missing", text: `Missing: ${row.prompt}` }));
    button.setAttribute("aria-label", `Missing image: ${row.prompt}`);
  } else {
    const img = el("img", { alt: row.prompt, "data-id": row.id, width: 140, height: 140 });
    button.append(img);
    tileObserver.observe(img);
  }
  button.addEventListener("click", () => onOpen(row.id));
  return el("li", {}, button);
}
