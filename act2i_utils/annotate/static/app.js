// act2i annotator: one image at a time; every answer is saved before the next image shows.
"use strict";
const token = document.querySelector('meta[name="act2i-token"]').content;
const tags = window.ACT2I_TAGS;
const $ = (id) => document.getElementById(id);
let current = null;
let shownAt = 0;
let busy = false;

function buildTags() {
  tags.forEach((tag, i) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = tag;
    box.id = "tag-" + (i + 1);
    label.append(box, ` ${i + 1} ${tag}`);
    $("tags").append(label);
  });
}

async function call(method, url, body) {
  const options = { method, headers: { "X-Act2i-Token": token }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function show(state) {
  const pct = state.total ? (100 * state.done) / state.total : 100;
  $("bar").style.width = pct + "%";
  $("progress").setAttribute("aria-valuenow", state.done);
  $("progress").setAttribute("aria-valuemax", state.total);
  $("count").textContent = `${state.done} / ${state.total}`;
  $("message").textContent = "";
  current = state.finished ? null : state;
  $("finished").querySelector("p").textContent = state.total
    ? "All your images are judged. Thank you!" : "No images are assigned to you yet.";
  $("study").hidden = state.finished;
  $("finished").hidden = !state.finished;
  if (!current) return;
  $("prompt").textContent = state.prompt;
  document.querySelectorAll("#tags input").forEach((box) => (box.checked = false));
  $("comment").value = "";
  $("image").src = "/img/" + encodeURIComponent(state.image_id);
}

async function run(action) {
  if (busy) return;
  busy = true;
  document.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    show(await action());
  } catch (err) {
    $("message").textContent = err.message;
  } finally {
    busy = false;
    document.querySelectorAll("button").forEach((b) => (b.disabled = false));
  }
}

function answer(label) {
  if (!current) return;
  const chosen = [...document.querySelectorAll("#tags input:checked")].map((b) => b.value);
  const seconds = Math.max(0, (performance.now() - shownAt) / 1000);
  run(() => call("POST", "/api/answer", {
    image_id: current.image_id, label, tags: chosen, comment: $("comment").value, seconds,
  }));
}

const undo = () => run(() => call("POST", "/api/undo", {}));

$("image").addEventListener("load", () => (shownAt = performance.now()));
$("accept").addEventListener("click", () => answer("accept"));
$("reject").addEventListener("click", () => answer("reject"));
$("undo").addEventListener("click", undo);
$("undo-final").addEventListener("click", undo);
document.addEventListener("keydown", (event) => {
  if (event.target === $("comment")) {
    if (event.key === "Escape") $("comment").blur();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (key === "a") answer("accept");
  else if (key === "r") answer("reject");
  else if (key === "u") undo();
  else if (key === "c") { event.preventDefault(); $("comment").focus(); }
  else if (/^[1-9]$/.test(key) && $("tag-" + key)) $("tag-" + key).click();
});

buildTags();
run(() => call("GET", "/api/next"));
