// The learner's page: record or pick a file, send it, watch the task live, see the result.

import { api, el, notify, TERMINAL } from "./api.js";

const STAGES = new Set(["preprocessing", "transcribing", "evaluating"]);
import { startRecording } from "./record.js";
import { showResult } from "./result.js";
import { follow } from "./stream.js";

let recorded = null; // the File of the last recording
let following = null;

function setUpRecording() {
  const record = document.getElementById("record");
  const stop = document.getElementById("stop");
  const state = document.getElementById("record-state");
  const preview = document.getElementById("preview");
  let session = null;
  let timer = null;
  record.addEventListener("click", async () => {
    try {
      session = await startRecording();
    } catch (error) {
      notify(`The microphone is not available: ${error.message}`);
      return;
    }
    const began = Date.now();
    record.disabled = true;
    stop.disabled = false;
    stop.focus();
    state.textContent = "recording… 0 s";
    timer = setInterval(() => {
      state.textContent = `recording… ${Math.floor((Date.now() - began) / 1000)} s`;
    }, 250);
  });
  stop.addEventListener("click", async () => {
    clearInterval(timer);
    stop.disabled = true;
    recorded = await session.stop();
    record.disabled = false;
    document.getElementById("file").value = "";
    preview.src = URL.createObjectURL(recorded);
    preview.hidden = false;
    state.textContent = `recorded ${Math.round(recorded.size / 1024)} KB: ready to send`;
  });
  document.getElementById("file").addEventListener("change", () => {
    recorded = null;
    preview.hidden = true;
    state.textContent = "";
  });
}

function setUpForm() {
  document.getElementById("task-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const picked = document.getElementById("file").files[0];
    const audio = picked || recorded;
    if (!audio) {
      notify("Record something or choose a file first.");
      return;
    }
    const form = new FormData();
    form.append("file", audio, audio.name);
    for (const name of ["reference_text", "title"]) {
      const value = event.target.elements[name].value.trim();
      if (value) form.append(name, value);
    }
    const submit = document.getElementById("submit");
    submit.disabled = true;
    try {
      const task = await api("/tasks", { method: "POST", form });
      notify("Sent: it is being processed.");
      location.hash = `#task/${task.id}`;
    } catch (error) {
      notify(`Not sent: ${error.message}`);
    } finally {
      submit.disabled = false;
    }
  });
}

function setStatus(status) {
  const node = document.getElementById("task-status");
  node.textContent = status;
  node.dataset.status = status;
  const history = document.getElementById("history");
  const last = history.lastElementChild;
  if (!last || last.textContent !== status) {
    history.append(el("li", { "data-testid": "history-item", text: status }));
  }
}

function apply(event) {
  const payload = event.payload || {};
  const stage = document.getElementById("task-stage");
  const progress = document.getElementById("progress");
  if (event.type === "status") {
    setStatus(event.status);
    stage.textContent = STAGES.has(event.status) ? event.status : "–";
    progress.value = TERMINAL.has(event.status) ? 100 : 0;
    document.getElementById("progress-text").textContent = "";
    document.getElementById("queue-position").textContent =
      event.status === "queued" && payload.position ? String(payload.position) : "–";
    if (event.status === "created" && payload.attempt > 1) {
      document.getElementById("retries").textContent = `attempt ${payload.attempt}`;
    }
  } else if (event.type === "progress") {
    progress.value = payload.percent ?? 0;
    document.getElementById("progress-text").textContent = `${payload.percent ?? 0} % of ${payload.stage}`;
  } else if (event.type === "retry") {
    document.getElementById("retries").textContent =
      `${payload.stage}: try ${payload.attempt} after “${payload.error}”, in ${Number(payload.delay).toFixed(1)} s`;
  }
}

/** Stop following the task shown (on sign-out). */
export function closeTask() {
  if (following) following.close();
  following = null;
}

/** Show a task and follow it live until it ends. */
export async function openTask(taskId) {
  closeTask();
  const view = document.getElementById("task-view");
  document.getElementById("history").replaceChildren();
  document.getElementById("result").hidden = true;
  document.getElementById("failure").hidden = true;
  document.getElementById("retries").textContent = "none";
  view.hidden = false;
  let task;
  try {
    task = await api(`/tasks/${taskId}`);
  } catch (error) {
    notify(error.message);
    view.hidden = true;
    return;
  }
  document.getElementById("task-title").textContent = `Task: ${task.title}`;
  following = follow(taskId, {
    onEvent: apply,
    onState: (state) => {
      view.dataset.stream = state;
      if (state === "reconnecting") notify("Connection lost: reconnecting…");
      else if (state === "live") notify("");
    },
    onEnd: (ended) => finish(ended),
  });
}

function finish(task) {
  if (!task) {
    notify("The task was deleted.");
    return;
  }
  setStatus(task.status);
  if (task.status === "completed") showResult(task);
  if (task.failure_reason) {
    const failure = document.getElementById("failure");
    failure.textContent = `${task.status === "cancelled" ? "Cancelled" : "Failed"}: ${task.failure_reason}`;
    failure.hidden = false;
  }
}

export function setUpLearner() {
  setUpRecording();
  setUpForm();
}
