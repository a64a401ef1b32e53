// A finished task's result: verdict per reference word, transcript, IPA, playback.
//
// What it reads, defensively (README, "The console"): task.accuracy, task.result (IPA),
// task.transcript, task.words [{text, start, end}], task.mistakes (ILPS-shaped) and
// task.evaluation.words [{word, ipa, correct, mistakes}] as scored today; a richer
// evaluation's per-word verdict, expected, heard, start and end are used when present.

import { el } from "./api.js";

const VERDICTS = {
  correct: "✓",
  mispronounced: "≈",
  missed: "✗",
  inserted: "+",
};

const tokens = (value) =>
  Array.isArray(value) ? value.map(String) : typeof value === "string" ? value.split(/\s+/).filter(Boolean) : [];

/** What the learner said for each reference word, from the ILPS-shaped mistakes. */
function heardFromMistakes(expected, offset, mistakes) {
  const heard = [...expected];
  for (const mistake of mistakes || []) {
    const position = mistake && mistake.reference && mistake.reference.position;
    if (typeof position !== "number" || position < offset || position >= offset + expected.length) continue;
    if (mistake.type === "Replacement") heard[position - offset] = String(mistake.actual?.value ?? "?");
    if (mistake.type === "Deletion") heard[position - offset] = null;
  }
  return heard.filter((token) => token !== null);
}

function verdictOf(word, expected, heard) {
  const named = String(word.verdict ?? word.status ?? "").toLowerCase();
  if (named in VERDICTS) return named;
  if (word.correct === true || word.mistakes === 0) return "correct";
  if (expected.length && !heard.length) return "missed";
  return "mispronounced";
}

/** The reference words with verdict, expected and heard sounds, and times when known. */
export function referenceWords(task) {
  const words = Array.isArray(task.evaluation?.words) ? task.evaluation.words : [];
  let offset = 0;
  return words.map((word) => {
    const expected = tokens(word.expected ?? word.ipa);
    const given = word.heard ?? word.actual;
    const heard = given !== undefined ? tokens(given) : heardFromMistakes(expected, offset, task.mistakes);
    if (String(word.verdict ?? "").toLowerCase() !== "inserted") offset += tokens(word.ipa ?? word.expected).length;
    return {
      text: String(word.word ?? word.text ?? ""),
      verdict: verdictOf(word, expected, heard),
      expected,
      heard,
      start: typeof word.start === "number" ? word.start : undefined,
      end: typeof word.end === "number" ? word.end : undefined,
    };
  });
}

function wordButton(word, detail) {
  const sounds = `expected /${word.expected.join(" ")}/, heard /${word.heard.join(" ") || "nothing"}/`;
  const show = () => {
    detail.textContent = `“${word.text}”: ${word.verdict}; ${sounds}`;
  };
  return el(
    "button",
    {
      type: "button",
      class: `word v-${word.verdict}`,
      "data-testid": "word",
      "data-verdict": word.verdict,
      "data-start": word.start,
      "data-end": word.end,
      "aria-label": `${word.text}: ${word.verdict}; ${sounds}`,
      onfocus: show,
      onclick: show,
      onmouseenter: show,
    },
    el("span", { class: "symbol", "aria-hidden": "true", text: VERDICTS[word.verdict] }),
    word.text,
  );
}

/** Render the result of a completed task into the page. */
export function showResult(task) {
  const words = document.getElementById("words");
  const detail = document.getElementById("word-detail");
  const reference = referenceWords(task);
  words.replaceChildren(...reference.map((word) => wordButton(word, detail)));
  if (!reference.length) words.textContent = "No reference text: nothing to score.";
  detail.textContent = "";
  const accuracy = typeof task.accuracy === "number" ? `${Math.round(task.accuracy)} / 100` : "not scored";
  document.getElementById("accuracy").textContent = accuracy;
  const heard = Array.isArray(task.words) ? task.words : [];
  const transcript = document.getElementById("transcript");
  transcript.replaceChildren(
    ...heard.map((word) =>
      el("span", { class: "spoken", "data-start": word.start, "data-end": word.end, text: `${word.text} ` }),
    ),
  );
  if (!heard.length) transcript.textContent = task.transcript || "(nothing recognised)";
  document.getElementById("ipa").textContent = task.result || "–";
  const audio = document.getElementById("playback");
  audio.src = `/tasks/${task.id}/audio`;
  audio.ontimeupdate = () => highlight(audio.currentTime);
  audio.onended = () => highlight(-1);
  document.getElementById("result").hidden = false;
}

/** Mark the words being spoken at `time` seconds (aria-current, and a class to style). */
function highlight(time) {
  for (const node of document.querySelectorAll("#result [data-start]")) {
    const on = time >= Number(node.dataset.start) && time < Number(node.dataset.end);
    node.classList.toggle("speaking", on);
    if (on) node.setAttribute("aria-current", "true");
    else node.removeAttribute("aria-current");
  }
}
