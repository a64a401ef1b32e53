// One task on the learner's page: status, stage, progress, queue position and retries
// live from its event stream, cancel / retry / delete, then its result; an operator
// sees any user's task the same way (read once, from the /admin routes).

import { api, el, LIVE, notify, TERMINAL } from "./api.js";
import { showResult } from "./result.js";
import { commandButton, confirmed } from "./commands.js";
import { follow } from "./stream.js";

const STAGES = {
  preprocessing: "preparing the audio",
  transcribing: "listening for the words",
  evaluating: "scoring the sounds",
};
const FORMATS = [
  ["txt", "Text"],
  ["srt", "SRT subtitles"],
  ["vtt", "WebVTT subtitles"],
  ["json", "JSON"],
];

let following = null;
let shown = null; // {id, operator}: the task on screen

const $ = (id) => document.getElementById(id);

function setStatus(status) {
  const node = $("task-status");
  node.textContent = status;
  node.dataset.status = status;
  const last = $("history").lastElementChild;
  if (!last || last.textContent !== status) {
    $("history").append(el("li", { "data-testid": "history-item", text: status }));
  }
}

function setQueue(position) {
  const text = position ? `${position} (1 = next)` : position === 0 ? "its turn now" : "–";
  $("queue-position").textContent = text;
}

function apply(event, task) {
  const payload = event.payload || {};
  if (event.type === "status") {
    setStatus(event.status);
    $("task-stage").textContent = STAGES[event.status] ? `${event.status}: ${STAGES[event.status]}` : "–";
    $("progress").value = TERMINAL.has(event.status) ? 100 : 0;
    $("progress-text").textContent = "";
    setQueue(event.status === "queued" ? payload.position : null);
    if (event.status === "created" && payload.attempt > 1) $("retries").textContent = `attempt ${payload.attempt}`;
    showActions({ ...task, status: event.status });
  } else if (event.type === "progress") {
    $("progress").value = payload.percent ?? 0;
    $("progress-text").textContent = `${payload.percent ?? 0} % of ${payload.stage}`;
  } else if (event.type === "retry") {
    $("retries").textContent =
      `${payload.stage}: try ${payload.attempt} after “${payload.error}”, in ${Number(payload.delay).toFixed(1)} s`;
  }
}

async function command(task, verb, question, run) {
  if (!(await confirmed(task, verb, question, run))) return;
  if (verb === "Deleted") {
    const operator = shown?.operator;
    closeTask();
    $("task-view").hidden = true;
    location.hash = operator ? "#admin" : "#record";
  } else {
    await openTask(task.id, { operator: shown?.operator });
  }
}

/** The commands that fit the task's status now (redrawn only when they change, so a
 * button is never swapped under a finger as the statuses pass). */
function showActions(task) {
  const operator = shown?.operator;
  const kind = LIVE.includes(task.status) ? "live" : task.status === "completed" ? "done" : "ended";
  const box = $("task-actions");
  if (box.dataset.kind === kind && box.childElementCount) return;
  box.dataset.kind = kind;
  const base = operator ? `/admin/tasks/${task.id}` : `/tasks/${task.id}`;
  const buttons = [];
  if (LIVE.includes(task.status)) {
    buttons.push(commandButton("task-cancel", "Cancel", task, () =>
      command(task, "Cancelled", `Cancel “${task.title}”?`, () => api(`${base}/cancel`, { method: "POST" }))));
  }
  if (LIVE.includes(task.status) && operator) {
    buttons.push(commandButton("task-refresh", "Refresh", task, () => openTask(task.id, { operator })));
  }
  if (task.status === "failed" || task.status === "cancelled") {
    buttons.push(commandButton("task-retry", "Retry", task, () =>
      command(task, "Retried", `Run “${task.title}” again?`, () => api(`${base}/retry`, { method: "POST" }))));
  }
  buttons.push(commandButton("task-delete", "Delete", task, () =>
    command(task, "Deleted", `Delete “${task.title}” and its recording for good?`, () =>
      api(base, { method: "DELETE" }))));
  box.replaceChildren(...buttons);
}

/** The transcript's downloads, once the service offers them for this task. */
async function showDownloads(task) {
  const box = $("downloads");
  box.hidden = true;
  box.replaceChildren("Save the transcript: ");
  if (shown?.operator) return; // the downloads are the owner's routes
  const url = (format) => `/tasks/${task.id}/transcript?format=${format}`;
  const answer = await fetch(url("txt"), { method: "HEAD", credentials: "same-origin" }).catch(() => null);
  if (!answer?.ok || shown?.id !== task.id) return;
  const name = (task.title || "transcript").replace(/[^\w.-]+/g, "_").slice(0, 40) || "transcript";
  box.append(
    ...FORMATS.map(([format, label]) =>
      el("a", { class: "button", href: url(format), download: `${name}.${format}`, "data-testid": `download-${format}`, text: label }),
    ),
  );
  box.hidden = false;
}

function finish(task) {
  if (!task) {
    notify("The task was deleted.");
    $("task-actions").replaceChildren();
    return;
  }
  setStatus(task.status);
  showActions(task);
  if (task.status === "completed") {
    const audio = shown?.operator ? `/admin/tasks/${task.id}/audio` : `/tasks/${task.id}/audio`;
    showResult(task, audio);
    showDownloads(task);
  }
  if (task.failure_reason) {
    $("failure").textContent = `${task.status === "cancelled" ? "Cancelled" : "Failed"}: ${task.failure_reason}`;
    $("failure").hidden = false;
  }
}

/** Stop following the task shown (on sign-out, or another task opened). */
export function closeTask() {
  if (following) following.close();
  following = null;
  shown = null;
}

/** Show a task and, for its owner, follow it live until it ends; it comes into view. */
export async function openTask(taskId, { operator = false } = {}) {
  closeTask();
  shown = { id: taskId, operator };
  const view = $("task-view");
  $("history").replaceChildren();
  $("result").hidden = true;
  $("failure").hidden = true;
  $("downloads").hidden = true;
  $("retries").textContent = "none";
  $("task-actions").replaceChildren();
  view.hidden = false;
  let task;
  try {
    task = await api(operator ? `/admin/tasks/${taskId}` : `/tasks/${taskId}`);
  } catch (error) {
    notify(error.message);
    view.hidden = true;
    return;
  }
  const owner = operator ? ` (user ${task.user_id})` : "";
  $("task-title").textContent = `Task: ${task.title || "(untitled)"}${owner}`;
  setQueue(task.queue_position);
  view.scrollIntoView({ block: "start" });
  $("task-title").focus({ preventScroll: true });
  if (operator) {
    $("task-stage").textContent = STAGES[task.status] ? `${task.status}: ${STAGES[task.status]}` : "–";
    finish(task);
    return;
  }
  showActions(task);
  following = follow(taskId, {
    onEvent: (event) => apply(event, task),
    onPosition: setQueue,
    onState: (state) => {
      view.dataset.stream = state;
      if (state === "reconnecting") notify("Connection lost: reconnecting…");
      else if (state === "live") notify("");
    },
    onEnd: (ended) => finish(ended),
  });
}
