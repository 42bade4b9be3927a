// Create: the prompt, every control, references (picker, drop, paste), and a running job with
// its stage, seconds, streamed previews and Cancel. Generation without references is JSON to
// /v1/images/generations; with references (and an optional mask) it is multipart to
// /v1/images/edits. Both ask for `stream: true` and two partial previews; the service names
// the job in the `x-codex-imagen-job` header, which Cancel deletes.

import { request, failed, del, el } from "./api.js";

const $ = (id) => document.getElementById(id);
const refs = []; // { file, url }
let mask = null; // Blob of the mask for the first reference
let running = null; // { id, controller, timer }
let fromEditor = false; // the references and mask came from the mask editor
let onFinished = () => {};

export function init({ finished }) {
  onFinished = finished;
  const form = $("create-form");
  form.addEventListener("submit", (e) => { e.preventDefault(); generate(); });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); generate(); }
  });
  $("ref-input").addEventListener("change", (e) => {
    for (const file of e.target.files) addReference(file);
    e.target.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    for (const file of e.dataTransfer.files) if (file.type.startsWith("image/")) addReference(file);
  });
  document.addEventListener("paste", (e) => {
    for (const item of e.clipboardData ? e.clipboardData.items : []) {
      if (item.kind === "file" && item.type.startsWith("image/")) {
        const file = item.getAsFile();
        if (file) { e.preventDefault(); addReference(file); }
      }
    }
  });
  $("cancel").addEventListener("click", cancel);
  $("mask-remove").addEventListener("click", () => { mask = null; renderRefs(); });
}

export function addReference(file) {
  refs.push({ file, url: URL.createObjectURL(file) });
  renderRefs();
}

/** From the mask editor: the image as the only reference, its mask, and the prompt. */
export function startEdit({ file, maskBlob, prompt }) {
  for (const r of refs.splice(0)) URL.revokeObjectURL(r.url);
  refs.push({ file, url: URL.createObjectURL(file) });
  mask = maskBlob;
  fromEditor = true;
  $("prompt").value = prompt;
  renderRefs();
  generate();
}

function renderRefs() {
  const list = $("refs");
  list.replaceChildren();
  refs.forEach((r, i) => {
    const remove = el("button", { type: "button", text: "Remove", "aria-label": `Remove reference ${i + 1}` });
    remove.addEventListener("click", () => {
      URL.revokeObjectURL(r.url);
      refs.splice(i, 1);
      if (i === 0) mask = null;
      renderRefs();
    });
    list.append(el("li", {}, el("img", { src: r.url, alt: `Reference ${i + 1}: ${r.file.name}` }), remove));
  });
  $("mask-note").hidden = !(mask && refs.length);
}

function controls() {
  const value = (id) => $(id).value;
  const n = Math.min(10, Math.max(1, parseInt(value("count"), 10) || 1));
  return {
    size: value("size"),
    quality: value("quality"),
    output_format: value("format"),
    background: value("background"),
    model: value("model"),
    n,
  };
}

function setStage(text) {
  $("job-stage").textContent = text;
}

function showError(message) {
  const node = $("job-error");
  node.textContent = message;
  node.hidden = false;
}

async function generate() {
  if (running) return;
  const prompt = $("prompt").value.trim();
  const job = $("job");
  job.hidden = false;
  $("previews").replaceChildren();
  $("job-error").hidden = true;
  if (!prompt) {
    setStage("");
    showError("Write a prompt first.");
    $("prompt").focus();
    return;
  }
  const c = controls();
  let response;
  const controller = new AbortController();
  const started = performance.now();
  let stage = "sending";
  running = { id: null, controller, timer: null };
  $("generate").disabled = true;
  $("cancel").disabled = false;
  $("job-title").textContent = "Running";
  const tick = () => setStage(`${stage} · ${((performance.now() - started) / 1000).toFixed(0)} s`);
  tick();
  running.timer = setInterval(tick, 500);
  try {
    if (refs.length) {
      const form = new FormData();
      form.append("prompt", prompt);
      for (const [k, v] of Object.entries(c)) form.append(k, String(v));
      form.append("stream", "true");
      form.append("partial_images", "2");
      refs.forEach((r, i) => form.append("image[]", r.file, r.file.name || `reference-${i + 1}.png`));
      if (mask) form.append("mask", mask, "mask.png");
      response = await request("/v1/images/edits", { method: "POST", body: form, signal: controller.signal });
    } else {
      response = await request("/v1/images/generations", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt, ...c, stream: true, partial_images: 2 }),
        signal: controller.signal,
      });
    }
    if (!response.ok) throw await failed(response);
    running.id = response.headers.get("x-codex-imagen-job");
    stage = "generating";
    tick();
    const mime = `image/${c.output_format}`;
    let error = null;
    let saved = 0;
    const unmet = [];
    await readEvents(response, (name, data) => {
      if (name.endsWith(".partial_image")) {
        stage = "receiving previews";
        showPreview(`data:${mime};base64,${data.b64_json}`, `Preview (partial ${data.partial_image_index + 1})`, true);
      } else if (name.endsWith(".completed")) {
        saved += 1;
        stage = "saved";
        unmet.push(...unmetRequest(c, data));
        showPreview(`data:image/${data.output_format || c.output_format};base64,${data.b64_json}`, prompt, false);
      } else if (name === "error") {
        error = data.error ? data.error.message : "The job failed.";
      }
    });
    if (unmet.length) showError([...new Set(unmet)].join("\n"));
    if (error) {
      showError([error, ...new Set(unmet)].join("\n"));
      $("job-title").textContent = saved ? "Finished with an error" : "Failed";
    } else {
      $("job-title").textContent = "Done";
      stage = `saved ${saved} image${saved === 1 ? "" : "s"}`;
      if (fromEditor) {
        // The edit is made: the form goes back to a fresh start.
        for (const r of refs.splice(0)) URL.revokeObjectURL(r.url);
        mask = null;
        renderRefs();
      }
    }
  } catch (err) {
    if (err.name === "AbortError") {
      $("job-title").textContent = "Cancelled";
      stage = "cancelled";
    } else {
      $("job-title").textContent = "Failed";
      showError(err.message);
    }
  } finally {
    clearInterval(running.timer);
    tick();
    fromEditor = false;
    running = null;
    $("generate").disabled = false;
    $("cancel").disabled = true;
    onFinished();
  }
}

/** The CLI's warning when the backend did not give what was asked: size, format, alpha. */
function unmetRequest(asked, got) {
  const out = [];
  if (asked.size !== "auto" && got.size && got.size !== asked.size) {
    out.push(`warning: requested ${asked.size}, the backend returned ${got.size}`);
  }
  if (got.output_format && got.output_format !== asked.output_format) {
    out.push(`warning: requested ${asked.output_format}, the backend returned ${got.output_format}`);
  }
  if (asked.background === "transparent" && got.background && got.background !== "transparent") {
    out.push("warning: requested a transparent background, the backend returned no alpha");
  }
  return out;
}

function showPreview(src, alt, partial) {
  const box = $("previews");
  // A newer preview, or the final image, replaces the previews shown so far.
  for (const p of box.querySelectorAll("img[data-partial]")) p.remove();
  box.append(el("img", { src, alt, "data-partial": partial ? "true" : null }));
}

/** Server-sent events from a fetch body: (event name, parsed data) for each frame. */
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      let data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data === "[DONE]") return;
      try { onEvent(name, JSON.parse(data)); } catch { /* a frame that is not JSON */ }
    }
  }
}

async function cancel() {
  if (!running) return;
  $("cancel").disabled = true;
  const { id, controller } = running;
  try {
    if (id) await del(`/v1/jobs/${encodeURIComponent(id)}`);
  } catch { /* already finished */ }
  controller.abort();
}
