// What the study pages share: requests to the study server, with its CSRF token and root path.
// The login token stays in an HttpOnly cookie; changes carry the page's CSRF token instead.
"use strict";
const csrf = document.querySelector('meta[name="act2i-csrf"]').content;
const root = document.querySelector('meta[name="act2i-root"]').content;  // the app's path behind a proxy

class ServerError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function call(method, url, body) {
  const options = { method, headers: { "X-Act2i-CSRF": csrf }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response, data;
  try {
    response = await fetch(root + url, options);
  } catch {
    throw new ServerError("This page cannot reach the study server. Check your connection or ask the study " +
      "organiser whether the server is running, then reload the page; your earlier answers are saved.", 0);
  }
  try {
    data = await response.json();
  } catch {
    throw new ServerError(`The study server answered unexpectedly (HTTP ${response.status}); reload the page.`, response.status);
  }
  if (!response.ok) throw new ServerError(data.error || response.statusText, response.status);
  return data;
}

function showCompletion(state) {
  // The study part or the end of it, with a crowd worker's completion code and link.
  const $ = (id) => document.getElementById(id);
  $("study").hidden = state.finished;
  $("finished").hidden = !state.finished;
  $("completion").hidden = !state.completion;
  if (state.completion) {
    $("completion-code").textContent = state.completion.code;
    $("completion-link").hidden = !state.completion.url;
    if (state.completion.url) $("completion-link").href = state.completion.url;
  }
}
