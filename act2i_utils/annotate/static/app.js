// act2i annotator: one image at a time; every answer is saved before the next image shows.
// Requests go through server.js (call, ServerError).
"use strict";
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

function show(state) {
  const pct = state.total ? (100 * state.done) / state.total : 100;
  $("bar").style.width = pct + "%";
  $("progress").setAttribute("aria-valuenow", state.done);
  $("progress").setAttribute("aria-valuemax", state.total);
  $("progress").setAttribute("aria-valuetext", `${state.done} of ${state.total} images judged`);
  $("count").textContent = `${state.done} / ${state.total}`;
  $("message").textContent = state.notice || "";
  current = state.finished ? null : state;
  $("finished-text").textContent = state.total
    ? "All your images are judged. Thank you!" : "No images are assigned to you yet.";
  showCompletion(state);
  if (!current) return;
  $("prompt").textContent = state.prompt;
  document.querySelectorAll("#tags input").forEach((box) => (box.checked = false));
  $("comment").value = "";
  $("image").src = root + "/img/" + encodeURIComponent(state.image_id);
}

function setButtons(disabled) {
  document.querySelectorAll("button").forEach((b) => (b.disabled = disabled));
}

async function run(action) {
  if (busy) return;
  busy = true;
  const focused = document.activeElement;
  setButtons(true);
  let state = null;
  let problem = "";
  try {
    state = await action();
  } catch (err) {
    problem = err.message;
  } finally {
    busy = false;
    setButtons(false);
  }
  if (state) {
    show(state);
    // Disabling the buttons dropped the focus: give it to the new question (or the end message),
    // so keyboard and screen-reader users carry on from there.
    (current ? $("question") : $("finished-text")).focus();
  } else {
    $("message").textContent = problem;
    if (focused) focused.focus();
  }
}

const MOVED_ON = {
  409: "That image was already answered (perhaps in another tab), so here is your next one.",
  404: "That image is no longer assigned to you (it may have moved to another annotator), so here is your next one.",
};

async function answerAndMoveOn(body) {
  try {
    return await call("POST", "/api/answer", body);
  } catch (err) {
    if (!(err.status in MOVED_ON)) throw err;
    return { ...(await call("GET", "/api/next")), notice: MOVED_ON[err.status] };
  }
}

function answer(label) {
  if (!current) return;
  const chosen = [...document.querySelectorAll("#tags input:checked")].map((b) => b.value);
  const seconds = Math.max(0, (performance.now() - shownAt) / 1000);
  run(() => answerAndMoveOn({
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
