// My tasks: newest first, a page at a time, filtered by status, live while running.

import { api, el, fillStatuses, LIVE, notify, TERMINAL, when } from "./api.js";
import { commandButton, confirmed } from "./commands.js";
import { follow } from "./stream.js";

// A browser keeps at most 6 HTTP/1.1 connections to a host: a few rows follow their
// stream at once, the others wait for a free one (and are read afresh when they get it).
const MAX_STREAMS = 3;
const streams = new Map(); // task id -> the stream keeping its row live
const waiting = []; // ids of live rows with no stream yet
let cursor = null;

function closeStreams() {
  for (const stream of streams.values()) stream.close();
  streams.clear();
  waiting.length = 0;
}

function nextWaiting() {
  const id = waiting.shift();
  if (id) refreshRow(id);
}

async function command(task, verb, question, run) {
  if ((await confirmed(task, verb, question, run)) !== null) await refreshRow(task.id);
}

function actions(task) {
  const buttons = [el("a", { href: `#task/${task.id}`, class: "button", text: "Open" })];
  if (LIVE.includes(task.status)) {
    buttons.push(commandButton("cancel", "Cancel", task, () =>
      command(task, "Cancelled", `Cancel “${task.title}”?`, () => api(`/tasks/${task.id}/cancel`, { method: "POST" }))));
  }
  if (task.status === "failed" || task.status === "cancelled") {
    buttons.push(commandButton("retry", "Retry", task, () =>
      command(task, "Retried", `Run “${task.title}” again?`, () => api(`/tasks/${task.id}/retry`, { method: "POST" }))));
  }
  buttons.push(commandButton("delete", "Delete", task, () =>
    command(task, "Deleted", `Delete “${task.title}” and its recording for good?`, () =>
      api(`/tasks/${task.id}`, { method: "DELETE" }))));
  return el("span", { class: "actions" }, ...buttons);
}

function row(task) {
  const accuracy = typeof task.accuracy === "number" ? ` · ${Math.round(task.accuracy)} / 100` : "";
  return el(
    "li",
    { "data-testid": "task-row", "data-task-id": task.id, "data-status": task.status },
    el("strong", { class: "title", text: task.title || "(untitled)" }),
    " ",
    el("span", { class: `status s-${task.status}`, "data-testid": "row-status", text: task.status }),
    el("small", { text: ` ${when(task.created_at)}${accuracy}` }),
    task.failure_reason ? el("small", { class: "reason", text: ` – ${task.failure_reason}` }) : "",
    actions(task),
  );
}

function place(task) {
  const existing = document.querySelector(`#tasks-list [data-task-id="${task.id}"]`);
  const fresh = row(task);
  if (existing) existing.replaceWith(fresh);
  else document.getElementById("tasks-list").append(fresh);
  keepLive(task);
}

function keepLive(task) {
  if (TERMINAL.has(task.status) || streams.has(task.id)) return;
  if (streams.size >= MAX_STREAMS) {
    if (!waiting.includes(task.id)) waiting.push(task.id);
    return;
  }
  streams.set(
    task.id,
    follow(task.id, {
      onEvent: (event) => {
        const line = document.querySelector(`#tasks-list [data-task-id="${task.id}"]`);
        if (!line || event.type !== "status") return;
        line.querySelector("[data-testid=row-status]").textContent = event.status;
        line.dataset.status = event.status;
      },
      onEnd: (ended) => {
        streams.delete(task.id);
        if (ended) place(ended);
        else document.querySelector(`#tasks-list [data-task-id="${task.id}"]`)?.remove();
        nextWaiting();
      },
    }),
  );
}

async function refreshRow(taskId) {
  const had = streams.get(taskId);
  had?.close();
  streams.delete(taskId);
  if (had) nextWaiting();
  try {
    place(await api(`/tasks/${taskId}`));
  } catch (error) {
    if (error.status === 404) document.querySelector(`#tasks-list [data-task-id="${taskId}"]`)?.remove();
  }
}

async function load(more) {
  const status = document.getElementById("tasks-status").value;
  const query = new URLSearchParams({ limit: "20" });
  if (status) query.append("status", status);
  if (more && cursor) query.set("cursor", cursor);
  if (!more) {
    closeStreams();
    document.getElementById("tasks-list").replaceChildren();
  }
  try {
    const page = await api(`/tasks?${query}`);
    page.items.forEach(place);
    cursor = page.next_cursor;
    document.getElementById("tasks-more").hidden = !cursor;
    if (!more && !page.items.length) notify(status ? `No ${status} tasks.` : "No tasks yet.");
  } catch (error) {
    notify(error.message);
  }
}

export function showTasks() {
  return load(false);
}

export function hideTasks() {
  closeStreams();
}

export function setUpTasks() {
  fillStatuses(document.getElementById("tasks-status"));
  document.getElementById("tasks-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    load(false);
  });
  document.getElementById("tasks-more").addEventListener("click", () => load(true));
}
