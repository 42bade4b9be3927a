// The mask editor: the image with a painting layer the image's own size (brush with a size
// slider, erase, clear). Apply turns the painting into OpenAI's mask — a PNG the size of the
// image whose painted pixels are fully transparent and the rest opaque — and starts an edit
// with the image, the mask and the prompt.

const $ = (id) => document.getElementById(id);
let current = null; // { row, file, url }
let erasing = false;
let onApply = () => {};

export function init(hooks) {
  onApply = hooks.apply;
  const canvas = $("editor-canvas");
  let last = null;
  const point = (e) => {
    const rect = canvas.getBoundingClientRect();
    return {
      x: (e.clientX - rect.left) * (canvas.width / rect.width),
      y: (e.clientY - rect.top) * (canvas.height / rect.height),
      scale: canvas.width / rect.width,
    };
  };
  const paint = (from, to) => {
    const ctx = canvas.getContext("2d");
    ctx.globalCompositeOperation = erasing ? "destination-out" : "source-over";
    ctx.strokeStyle = "rgb(255 0 96)";
    ctx.fillStyle = "rgb(255 0 96)";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = Number($("brush").value) * to.scale;
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(to.x, to.y, ctx.lineWidth / 2, 0, Math.PI * 2);
    ctx.fill();
  };
  canvas.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    last = point(e);
    paint(last, last);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = point(e);
    paint(last, p);
    last = p;
  });
  const stop = () => { last = null; };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("erase").addEventListener("click", () => {
    erasing = !erasing;
    $("erase").setAttribute("aria-pressed", String(erasing));
  });
  $("clear").addEventListener("click", () => {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  });
  $("editor-close").addEventListener("click", () => $("editor").close());
  $("editor").addEventListener("close", () => {
    if (current) URL.revokeObjectURL(current.url);
    current = null;
  });
  $("apply").addEventListener("click", applyMask);
}

export function open(row, file) {
  const url = URL.createObjectURL(file);
  current = { row, file, url };
  erasing = false;
  $("erase").setAttribute("aria-pressed", "false");
  const img = $("editor-image");
  const canvas = $("editor-canvas");
  img.alt = row.prompt;
  img.onload = null;
  img.addEventListener("load", () => {
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
  }, { once: true });
  img.src = url;
  $("edit-prompt").value = "";
  $("editor").showModal();
  $("edit-prompt").focus();
}

/** The painting as a mask: painted pixels alpha 0, the rest opaque black. */
export function maskBlob(canvas) {
  const { width, height } = canvas;
  const painted = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const out = document.createElement("canvas");
  out.width = width;
  out.height = height;
  const ctx = out.getContext("2d");
  const mask = ctx.createImageData(width, height);
  for (let i = 0; i < painted.length; i += 4) {
    mask.data[i + 3] = painted[i + 3] > 0 ? 0 : 255;
  }
  ctx.putImageData(mask, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

async function applyMask() {
  if (!current) return;
  const prompt = $("edit-prompt").value.trim();
  if (!prompt) {
    $("edit-prompt").focus();
    $("edit-prompt").setAttribute("aria-invalid", "true");
    return;
  }
  $("edit-prompt").removeAttribute("aria-invalid");
  const blob = await maskBlob($("editor-canvas"));
  const { file } = current;
  $("editor").close();
  onApply({ file, maskBlob: blob, prompt });
}
