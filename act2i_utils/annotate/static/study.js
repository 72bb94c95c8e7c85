// act2i crowd study: the consent page. Agreeing records consent (and assigns the worker's batch).
"use strict";
const csrf = document.querySelector('meta[name="act2i-csrf"]').content;
const root = document.querySelector('meta[name="act2i-root"]').content;
const say = (text) => (document.getElementById("message").textContent = text);

document.getElementById("agree").addEventListener("click", async () => {
  let response, data;
  try {
    response = await fetch(root + "/api/consent", { method: "POST", credentials: "same-origin",
      headers: { "X-Act2i-CSRF": csrf, "Content-Type": "application/json" }, body: "{}" });
    data = await response.json();
  } catch {
    say("This page cannot reach the study server. Check your connection, then reload the page.");
    return;
  }
  if (!response.ok) say(data.error || response.statusText);
  else window.location.assign(data.next);
});

document.getElementById("decline").addEventListener("click", () => {
  say("You chose not to take part, so nothing was recorded. Please return the study on your platform.");
  document.getElementById("agree").disabled = true;
});
