// The learner's page: record or pick a file and send it (task.js then shows it live).

import { api, notify } from "./api.js";
import { startRecording } from "./record.js";

let recorded = null; // the File of the last recording

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

export function setUpLearner() {
  setUpRecording();
  setUpForm();
}
