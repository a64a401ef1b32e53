// The "Heard" and "Sounds" panels: the transcript word by word with its times (lit up
// as the recording plays), and the sounds of each word, expected against heard.

import { el } from "./api.js";
import { VERDICTS } from "./words.js";

const timed = (item) => typeof item?.start === "number" && typeof item?.end === "number";

/** The transcript's words with their times: the transcript's own spelling (punctuation,
 * casing) where it has as many words as were timed, else the timed words' text. */
function heardWords(task) {
  const words = (Array.isArray(task.words) ? task.words : []).filter(timed);
  const written = String(task.transcript ?? "").split(/\s+/).filter(Boolean);
  const same = written.length === words.length;
  return words.map((word, i) => ({ ...word, text: same ? written[i] : String(word.text ?? "").trim() }));
}

function wordSpan(word) {
  return el("span", { class: "spoken", "data-start": word.start, "data-end": word.end, text: word.text });
}

/** Fill the Heard panel: one line per segment when the transcriber gave segments. */
export function showHeard(task, node) {
  const words = heardWords(task);
  const segments = (Array.isArray(task.segments) ? task.segments : []).filter(timed);
  if (!words.length) {
    node.textContent = task.transcript || "(nothing recognised)";
    return;
  }
  const line = (items) => el("p", { class: "segment" }, ...items.flatMap((w, i) => (i ? [" ", wordSpan(w)] : [wordSpan(w)])));
  if (!segments.length) {
    node.replaceChildren(line(words));
    return;
  }
  // A word belongs to the segment its middle falls in (or the last one before it).
  const groups = segments.map(() => []);
  for (const word of words) {
    const middle = (word.start + word.end) / 2;
    let k = segments.findIndex((s) => middle < s.end);
    if (k < 0) k = segments.length - 1;
    groups[k].push(word);
  }
  node.replaceChildren(...groups.filter((g) => g.length).map(line));
}

function phones(pairs, side, label) {
  return el(
    "span",
    { class: `phones ${side}` },
    el("span", { class: "sr-only", text: `${label}: ` }),
    ...pairs.map((pair) => {
      const sound = pair[side] || "–";
      const differs = pair.expected !== pair.heard;
      return el("span", { class: differs ? "phone differs" : "phone", text: sound });
    }),
  );
}

/** Fill the Sounds panel: per reference word, expected over heard; without a reference
 * text, the sounds heard under each heard word. */
export function showSounds(task, reference, node, legend) {
  if (reference.length) {
    legend.textContent = "Under each word: the sounds expected, then the sounds heard (underlined where they differ).";
    node.replaceChildren(
      ...reference.map((word) =>
        el(
          "li",
          { class: `sound-word v-${word.verdict}`, "data-testid": "sound-word" },
          el("span", { class: "sw" }, el("span", { "aria-hidden": "true", text: `${VERDICTS[word.verdict]} ` }), word.text),
          phones(word.pairs, "expected", "expected"),
          phones(word.pairs, "heard", "heard"),
        ),
      ),
    );
    return;
  }
  legend.textContent = "Under each word: the sounds heard.";
  const groups = soundsByWord(task);
  node.replaceChildren(
    ...groups.map(({ text, sounds }) =>
      el(
        "li",
        { class: "sound-word", "data-testid": "sound-word" },
        el("span", { class: "sw", text }),
        phones(sounds.map((s) => ({ expected: s, heard: s })), "heard", "heard"),
      ),
    ),
  );
  if (!groups.length) node.replaceChildren(el("li", { text: task.result || "–" }));
}

/** The heard phonemes under the heard words: by their `word` index where given, else
 * by time (a phoneme goes to the word its middle falls in, or the one before). */
function soundsByWord(task) {
  const words = heardWords(task);
  const phonemes = (Array.isArray(task.phonemes) ? task.phonemes : []).filter((p) => p && p.ipa);
  if (!words.length) return [];
  const groups = words.map((w) => ({ text: w.text, sounds: [] }));
  for (const phone of phonemes) {
    let k = Number.isInteger(phone.word) && phone.word >= 0 && phone.word < words.length ? phone.word : -1;
    if (k < 0 && timed(phone)) {
      const middle = (phone.start + phone.end) / 2;
      k = words.findLastIndex((w) => w.start <= middle);
      if (k < 0) k = 0;
    }
    if (k >= 0) groups[k].sounds.push(String(phone.ipa));
  }
  return groups;
}

/** Light up the words said at `time` seconds (aria-current and a class to style). */
export function highlight(root, time) {
  for (const node of root.querySelectorAll("[data-start]")) {
    const on = time >= Number(node.dataset.start) && time < Number(node.dataset.end);
    node.classList.toggle("speaking", on);
    if (on) node.setAttribute("aria-current", "true");
    else node.removeAttribute("aria-current");
  }
}
