// The console: sign-in, then the learner's page, My tasks and the operator's view by #hash.

import { setUpAdmin, showAdmin } from "./admin.js";
import { api, notify } from "./api.js";
import { setUpLearner } from "./learner.js";
import { setUpListening } from "./listen.js";
import { closeTask, openTask } from "./task.js";
import { hideTasks, setUpTasks, showTasks } from "./tasks.js";

const VIEWS = ["sign-in-view", "record-view", "tasks-view", "admin-view"];
let me = null;

function show(view) {
  for (const id of VIEWS) document.getElementById(id).hidden = id !== view;
  document.querySelector("nav").hidden = !me;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${view.replace("-view", "")}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** The sign-in link's token, if the address holds one: taken out of the address bar
 * (and history) at once, since the fragment holds a credential. */
function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (!fragment.has("token")) return null;
  history.replaceState(null, "", `${location.pathname}#record`);
  return fragment.get("token");
}

async function route() {
  // The link opened, or pasted into a tab already open (only the fragment changed).
  const token = takeToken();
  if (token !== null) {
    await signIn(token);
    if (me) signedIn();
  }
  if (!me) return show("sign-in-view");
  const [name, id] = location.hash.slice(1).split("/");
  if (name !== "tasks") hideTasks();
  const reviewing = name === "review" && id && me.operator; // an operator reads any user's task
  for (const node of ["record-title", "task-form"]) document.getElementById(node).hidden = reviewing;
  if (name === "tasks") {
    show("tasks-view");
    await showTasks();
  } else if (name === "admin" && me.operator) {
    show("admin-view");
    await showAdmin();
  } else {
    show("record-view");
    if ((name === "task" || reviewing) && id) await openTask(id, { operator: reviewing });
    else {
      closeTask();
      document.getElementById("task-view").hidden = true;
    }
  }
}

async function signIn(token) {
  try {
    me = await api("/session", { method: "POST", json: { token } });
    notify("Signed in.");
  } catch (error) {
    me = null;
    notify(`Not signed in: ${error.message}`);
  }
}

async function whoAmI() {
  try {
    me = await api("/session");
  } catch {
    me = null;
  }
}

function signedIn() {
  document.querySelector("[data-operator]").hidden = !me.operator;
  // Behind a gateway the gateway signs people in and out.
  document.getElementById("sign-out").hidden = me.auth_mode === "gateway";
  document.body.dataset.user = me.user_id;
}

async function start() {
  setUpLearner();
  setUpTasks();
  setUpAdmin();
  setUpListening();
  if (!new URLSearchParams(location.hash.slice(1)).has("token")) await whoAmI();
  if (me) signedIn();
  document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    await signIn(document.getElementById("token").value.trim());
    if (me) {
      signedIn();
      location.hash = "#record";
      await route();
    }
  });
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api("/session", { method: "DELETE" }).catch(() => {});
    me = null;
    hideTasks();
    closeTask();
    notify("Signed out.");
    await route();
  });
  window.addEventListener("hashchange", route);
  await route();
  document.body.dataset.ready = "true";
}

start();
