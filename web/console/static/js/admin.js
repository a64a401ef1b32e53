// The operator's view: the service's state, every user's tasks, timelines, retries.

import { api, el, fillStatuses, notify, when } from "./api.js";

let cursor = null;

function filter() {
  const value = (id) => document.getElementById(id).value.trim();
  const iso = (id) => (value(id) ? new Date(value(id)).toISOString() : undefined);
  return {
    status: value("admin-status") || undefined,
    user_id: value("admin-user") || undefined,
    created_after: iso("admin-after"),
    created_before: iso("admin-before"),
  };
}

async function overview() {
  const facts = await api("/admin/overview");
  const running = Object.entries(facts.running).map(([stage, n]) => `${stage} ${n}`).join(", ");
  const list = document.getElementById("overview");
  const pairs = [
    ["Queue depth", facts.queue_depth],
    ["Running per stage", running],
    ["Failed", facts.failed],
    ["Actor restarts (since start)", facts.actor_restarts],
  ];
  list.replaceChildren(...pairs.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: String(value) })]));
}

async function timeline(task) {
  const { events } = await api(`/admin/tasks/${task.id}/events`);
  const items = events.map((event) => {
    const payload = Object.keys(event.payload).length ? ` ${JSON.stringify(event.payload)}` : "";
    return el("li", { "data-testid": "timeline-item", text: `${when(event.created_at)} ${event.type}: ${event.status}${payload}` });
  });
  document.getElementById("timeline").replaceChildren(...items);
  document.getElementById("timeline-title").textContent = `Timeline of ${task.title}`;
  document.getElementById("timeline-view").hidden = false;
}

async function retry(task) {
  if (!confirm(`Run “${task.title}” of user ${task.user_id} again?`)) return;
  try {
    await api(`/admin/tasks/${task.id}/retry`, { method: "POST" });
    notify(`Retried: ${task.title}`);
  } catch (error) {
    notify(`Retry refused: ${error.message}`);
  }
  await showAdmin();
}

function row(task) {
  const buttons = [
    el("button", { type: "button", "data-testid": "admin-timeline", text: "Timeline", "aria-label": `Timeline of ${task.title}`, onclick: () => timeline(task) }),
  ];
  if (task.status === "failed" || task.status === "cancelled") {
    buttons.push(el("button", { type: "button", "data-testid": "admin-retry", text: "Retry", "aria-label": `Retry ${task.title}`, onclick: () => retry(task) }));
  }
  return el(
    "li",
    { "data-testid": "admin-row", "data-task-id": task.id, "data-status": task.status },
    el("strong", { text: task.title || "(untitled)" }),
    " ",
    el("span", { class: `status s-${task.status}`, "data-testid": "row-status", text: task.status }),
    el("small", { text: ` user ${task.user_id} · attempt ${task.attempt} · ${when(task.created_at)}` }),
    task.failure_reason ? el("small", { class: "reason", "data-testid": "failure-reason", text: ` – ${task.failure_reason}` }) : "",
    el("span", { class: "actions" }, ...buttons),
  );
}

async function load(more) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(filter())) if (value) query.set(name, value);
  if (more && cursor) query.set("cursor", cursor);
  const list = document.getElementById("admin-list");
  if (!more) list.replaceChildren();
  const page = await api(`/admin/tasks?${query}`);
  list.append(...page.items.map(row));
  cursor = page.next_cursor;
  document.getElementById("admin-more").hidden = !cursor;
}

async function bulkRetry() {
  const { status, ...where } = filter();
  if (!confirm("Run again every failed task that matches the user and dates?")) return;
  try {
    const outcome = await api("/admin/retry", { method: "POST", json: where });
    notify(`Retried ${outcome.retried.length} of ${outcome.matched} failed tasks.`);
  } catch (error) {
    notify(`Bulk retry refused: ${error.message}`);
  }
  await showAdmin();
}

export async function showAdmin() {
  try {
    await Promise.all([overview(), load(false)]);
  } catch (error) {
    notify(error.message);
  }
}

export function setUpAdmin() {
  fillStatuses(document.getElementById("admin-status"));
  document.getElementById("admin-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    showAdmin();
  });
  document.getElementById("admin-more").addEventListener("click", () => load(true).catch((e) => notify(e.message)));
  document.getElementById("bulk-retry").addEventListener("click", bulkRetry);
}
