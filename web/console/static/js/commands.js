// The commands both task views offer (cancel, retry, delete): asked first, told after.

import { el, notify } from "./api.js";

/** Ask ``question``; if yes, ``run`` and say what came of it. Null when the user
 * declined, else whether the command was carried out. */
export async function confirmed(task, verb, question, run) {
  if (!confirm(question)) return null;
  try {
    await run();
  } catch (error) {
    notify(`${verb} refused: ${error.message}`);
    return false;
  }
  notify(`${verb}: ${task.title}`);
  return true;
}

/** A command's button, named for its task (several rows carry the same word). */
export function commandButton(testId, text, task, onclick) {
  return el("button", { type: "button", "data-testid": testId, text, "aria-label": `${text} ${task.title}`, onclick });
}
