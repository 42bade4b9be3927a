// Details: one image large, everything its record says (prompt, revised prompt, asked vs. got,
// C2PA, references, created, account), its lineage (parent → children, as thumbnails that
// open theirs), and the actions: Download, Copy prompt, Use as reference, Edit, Delete (with
// a confirmation; deletes the files and the record). A missing file can only be forgotten.

import { getJson, blob, del, el } from "./api.js";
import { thumbUrl } from "./gallery.js";

const $ = (id) => document.getElementById(id);
let hooks = {};
let largeUrl = null;

export function init(h) {
  hooks = h;
  $("details-close").addEventListener("click", () => $("details").close());
  $("details").addEventListener("close", () => {
    if (largeUrl) URL.revokeObjectURL(largeUrl);
    largeUrl = null;
  });
}

function asked(requested) {
  const parts = [];
  for (const key of ["size", "quality", "format", "background", "image_model", "action"]) {
    if (requested && requested[key] !== undefined && requested[key] !== null) parts.push(`${key} ${requested[key]}`);
  }
  return parts.length ? parts.join(", ") : "defaults";
}

function got(row) {
  const size = row.width && row.height ? `${row.width}×${row.height}` : "size unknown";
  const alpha = row.has_alpha === null || row.has_alpha === undefined ? "alpha unknown" : row.has_alpha ? "with alpha" : "no alpha";
  return `${size}, ${row.format || "unknown format"}, ${alpha}`;
}

function lineageButton(row, label) {
  const img = el("img", { alt: row.prompt });
  thumbUrl(row.id).then((url) => { img.src = url; }).catch(() => {});
  const button = el("button", { type: "button", title: label }, img);
  button.addEventListener("click", () => open(row.id));
  return button;
}

export async function open(id) {
  const dialog = $("details");
  const body = $("details-body");
  let data;
  try {
    data = await getJson(`/v1/history/${id}`);
  } catch (err) {
    body.replaceChildren(el("p", { class: "error", text: err.message }));
    if (!dialog.open) dialog.showModal();
    return;
  }
  const row = data.image;
  if (largeUrl) URL.revokeObjectURL(largeUrl);
  largeUrl = null;
  const figure = el("div", {});
  if (row.missing) {
    figure.append(el("p", { class: "missing-box", text: `The file is missing: ${row.path}` }));
  } else {
    const img = el("img", { class: "large", alt: row.prompt });
    figure.append(img);
    blob(`/v1/history/${row.id}/image`).then((b) => {
      largeUrl = URL.createObjectURL(b);
      img.src = largeUrl;
    }).catch((err) => figure.replaceChildren(el("p", { class: "missing-box", text: err.message })));
  }

  const info = el("dl", {});
  const add = (term, value) => { if (value !== null && value !== undefined && value !== "") info.append(el("dt", { text: term }), el("dd", { text: value })); };
  add("Prompt", row.prompt);
  add("Revised prompt", row.revised_prompt || "none");
  add("Asked", asked(row.requested));
  add("Got", got(row));
  add("C2PA", row.c2pa ? "present" : "none");
  add("References", (row.references || []).map((r) => r.source).join("\n") || "none");
  add("Created", row.created ? new Date(row.created).toLocaleString() : "");
  add("Account", row.account || "unknown");
  add("Model", [row.model, row.backend].filter(Boolean).join(" · "));
  add("File", row.path);

  const lineage = el("div", { class: "lineage", role: "group", "aria-label": "Lineage" });
  if (data.parent) lineage.append(el("span", { text: "Parent" }), lineageButton(data.parent, "Parent"));
  if (data.children.length) {
    lineage.append(el("span", { text: "Children" }));
    for (const child of data.children) lineage.append(lineageButton(child, "Child"));
  }

  const actions = el("div", { class: "row" });
  const status = el("p", { class: "muted", "aria-live": "polite" });
  if (!row.missing) {
    actions.append(
      el("button", { type: "button", text: "Download", onclick: () => download(row) }),
      el("button", { type: "button", text: "Copy prompt", onclick: () => copy(row.prompt, status) }),
      el("button", { type: "button", text: "Use as reference", onclick: () => useAsReference(row) }),
      el("button", { type: "button", text: "Edit", onclick: () => edit(row) }),
      el("button", { type: "button", class: "danger", text: "Delete", onclick: () => confirmDelete(row, actions, "Delete this image and its files?") }),
    );
  } else {
    actions.append(
      el("button", { type: "button", text: "Copy prompt", onclick: () => copy(row.prompt, status) }),
      el("button", { type: "button", class: "danger", text: "Forget", onclick: () => confirmDelete(row, actions, "Forget this missing image?") }),
    );
  }

  const side = el("div", {}, info);
  if (lineage.children.length) side.append(el("h3", { text: "Lineage" }), lineage);
  side.append(actions, status);
  body.replaceChildren(figure, side);
  $("details-title").textContent = `Image ${row.id}`;
  if (!dialog.open) dialog.showModal();
  $("details-close").focus();
}

async function fileOf(row) {
  const b = await blob(`/v1/history/${row.id}/image`);
  const name = row.path.split(/[\\/]/).pop() || `image-${row.id}.${row.format || "png"}`;
  return new File([b], name, { type: b.type || "image/png" });
}

async function download(row) {
  const file = await fileOf(row);
  const url = URL.createObjectURL(file);
  const a = el("a", { href: url, download: file.name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function copy(text, status) {
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = "Prompt copied.";
  } catch {
    status.textContent = "The browser refused the clipboard; select the prompt above instead.";
  }
}

async function useAsReference(row) {
  hooks.addReference(await fileOf(row));
  $("details").close();
  document.getElementById("prompt").focus();
}

async function edit(row) {
  const file = await fileOf(row);
  $("details").close();
  hooks.edit(row, file);
}

function confirmDelete(row, actions, question) {
  const yes = el("button", { type: "button", class: "danger", text: "Yes, delete" });
  const no = el("button", { type: "button", text: "Keep" });
  const box = el("div", { class: "row", role: "alertdialog", "aria-label": question }, el("span", { text: question }), yes, no);
  actions.replaceWith(box);
  no.addEventListener("click", () => box.replaceWith(actions));
  yes.addEventListener("click", async () => {
    try {
      await del(`/v1/history/${row.id}`);
      $("details").close();
      hooks.deleted();
    } catch (err) {
      box.replaceChildren(el("p", { class: "error", text: err.message }));
    }
  });
  no.focus();
}
