// act2i pair annotator: two blind images of one prompt; every answer is saved before the next pair shows.
// Requests go through server.js (call, ServerError).
"use strict";
const $ = (id) => document.getElementById(id);
let current = null;
let shownAt = 0;
let busy = false;

function show(state) {
  const pct = state.total ? (100 * state.done) / state.total : 100;
  $("bar").style.width = pct + "%";
  $("progress").setAttribute("aria-valuenow", state.done);
  $("progress").setAttribute("aria-valuemax", state.total);
  $("count").textContent = `${state.done} / ${state.total}`;
  $("message").textContent = state.notice || "";
  current = state.finished ? null : state;
  showCompletion(state);
  if (!current) return;
  $("prompt").textContent = state.prompt;
  $("left").src = root + "/img/" + encodeURIComponent(state.left);
  $("right").src = root + "/img/" + encodeURIComponent(state.right);
  shownAt = performance.now();
}

async function run(action) {
  if (busy) return;
  busy = true;
  document.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    show(await action());
    (current ? $("question") : $("finished-text")).focus();
  } catch (err) {
    $("message").textContent = err.message;
  } finally {
    busy = false;
    document.querySelectorAll("button").forEach((b) => (b.disabled = false));
  }
}

async function answer(choice) {
  if (!current) return;
  const seconds = Math.max(0, (performance.now() - shownAt) / 1000);
  run(async () => {
    try {
      return await call("POST", "/api/pairs/answer", { pair: current.pair, choice, seconds });
    } catch (err) {
      if (err.status !== 409 && err.status !== 404) throw err;
      return { ...(await call("GET", "/api/pairs/next")), notice: err.message };
    }
  });
}

const undo = () => run(() => call("POST", "/api/pairs/undo", {}));
$("choose-left").addEventListener("click", () => answer("left"));
$("choose-right").addEventListener("click", () => answer("right"));
$("both-good").addEventListener("click", () => answer("both_good"));
$("both-bad").addEventListener("click", () => answer("both_bad"));
$("undo").addEventListener("click", undo);
$("undo-final").addEventListener("click", undo);
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (key === "1" || key === "arrowleft") answer("left");
  else if (key === "2" || key === "arrowright") answer("right");
  else if (key === "g") answer("both_good");
  else if (key === "b") answer("both_bad");
  else if (key === "u") undo();
});

run(() => call("GET", "/api/pairs/next"));
