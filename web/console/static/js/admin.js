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

function payloadCell(payload) {
  const entries = Object.entries(payload || {});
  if (!entries.length) return el("td", { text: "–" });
  // Folded: one line of its keys (with the short values); the whole payload when unfolded.
  const brief = entries.map(([key, value]) => (value !== null && typeof value === "object" ? key : `${key}: ${value}`));
  const line = brief.join(", ");
  return el(
    "td",
    {},
    el(
      "details",
      {},
      el("summary", { text: line.length > 80 ? `${line.slice(0, 79)}…` : line }),
      el("pre", { text: JSON.stringify(payload, null, 2) }),
    ),
  );
}

/** The task's events as a table, in a row right under the task's own (toggled). */
async function timeline(task, line, toggle) {
  const open = line.querySelector(".timeline");
  if (open) {
    open.remove();
    toggle.setAttribute("aria-expanded", "false");
    return;
  }
  let events;
  try {
    ({ events } = await api(`/admin/tasks/${task.id}/events`));
  } catch (error) {
    notify(error.message);
    return;
  }
  const head = el("tr", {}, ...["When", "Event", "Status", "Details"].map((t) => el("th", { scope: "col", text: t })));
  const rows = events.map((event) =>
    el(
      "tr",
      { "data-testid": "timeline-item" },
      el("td", { text: when(event.created_at) }),
      el("td", { text: event.type }),
      el("td", { text: event.status }),
      payloadCell(event.payload),
    ),
  );
  const table = el(
    "table",
    { "data-testid": "timeline" },
    el("caption", { text: `Timeline of ${task.title || "(untitled)"}: ${events.length} events, oldest first` }),
    el("thead", {}, head),
    el("tbody", {}, ...rows),
  );
  line.append(el("div", { class: "timeline" }, table));
  toggle.setAttribute("aria-expanded", "true");
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
  const toggle = el("button", {
    type: "button", "data-testid": "admin-timeline", text: "Timeline", "aria-label": `Timeline of ${task.title}`,
    "aria-expanded": "false", onclick: () => timeline(task, line, toggle),
  });
  const buttons = [
    el("a", { href: `#review/${task.id}`, class: "button", "data-testid": "admin-open", text: "Open", "aria-label": `Open ${task.title}` }),
    toggle,
  ];
  if (task.status === "failed" || task.status === "cancelled") {
    buttons.push(el("button", { type: "button", "data-testid": "admin-retry", text: "Retry", "aria-label": `Retry ${task.title}`, onclick: () => retry(task) }));
  }
  const line = el(
    "li",
    { "data-testid": "admin-row", "data-task-id": task.id, "data-status": task.status },
    el("strong", { class: "title", text: task.title || "(untitled)" }),
    " ",
    el("span", { class: `status s-${task.status}`, "data-testid": "row-status", text: task.status }),
    el("small", { text: ` user ${task.user_id} · attempt ${task.attempt} · ${when(task.created_at)}` }),
    task.failure_reason ? el("small", { class: "reason", "data-testid": "failure-reason", text: ` – ${task.failure_reason}` }) : "",
    el("span", { class: "actions" }, ...buttons),
  );
  return line;
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
