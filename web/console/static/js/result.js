// A finished task's result for a learner: the scores and what they mean, the words to
// practise first, each word's sounds, how it should sound and how it was said.

import { el } from "./api.js";
import { highlight, showHeard, showSounds } from "./heard.js";
import { playClip, say } from "./listen.js";
import { meaning, practiseFirst, problem, referenceWords, VERDICTS } from "./words.js";

const audio = () => document.getElementById("playback");
const canPlay = (word) => typeof word.start === "number" && typeof word.end === "number" && word.end > word.start;

function listenButton(word, testId) {
  return el("button", {
    type: "button", class: "listen", "data-testid": testId, text: "♪ Listen",
    "aria-label": `Listen: how “${word.text}” sounds`, onclick: () => say(word.text),
  });
}

function playButton(word, testId) {
  if (!canPlay(word)) return "";
  return el("button", {
    type: "button", "data-testid": testId, text: "▶ Yours",
    "aria-label": `Yours: play how you said “${word.text}”`, onclick: () => playClip(audio(), word.start, word.end),
  });
}

function sounds(word) {
  return `expected /${word.expected.join(" ")}/, heard /${word.heard.join(" ") || "nothing"}/`;
}

function showWord(word, detail) {
  const score = typeof word.score === "number" ? ` · ${Math.round(word.score)} / 100` : "";
  const what = problem(word);
  detail.replaceChildren(
    el("p", { class: "detail-head" }, el("strong", { text: `“${word.text}”` }), ` ${VERDICTS[word.verdict]} ${word.verdict}${score}`),
    what ? el("p", { "data-testid": "word-problem", text: what }) : "",
    el("p", { class: "ipa", lang: "und-fonipa", "data-testid": "word-sounds", text: sounds(word) }),
    el("div", { class: "row" }, listenButton(word, "listen-word"), playButton(word, "play-word")),
  );
  detail.dataset.word = String(word.index);
}

function wordButton(word, detail) {
  return el(
    "button",
    {
      type: "button",
      class: `word v-${word.verdict}`,
      "data-testid": "word",
      "data-verdict": word.verdict,
      "data-start": word.start,
      "data-end": word.end,
      "aria-label": [word.text, word.verdict, problem(word), sounds(word)].filter(Boolean).join("; "),
      onfocus: () => showWord(word, detail),
      onclick: () => showWord(word, detail),
    },
    el("span", { class: "symbol", "aria-hidden": "true", text: VERDICTS[word.verdict] }),
    word.text,
  );
}

function practiseItem(word) {
  return el(
    "li",
    { "data-testid": "practise-word", "data-word": word.text },
    el("span", { class: "practise-text" }, el("strong", { text: word.text }), ` ${VERDICTS[word.verdict]} ${problem(word)}`),
    el("span", { class: "actions" }, listenButton(word, "practise-listen"), playButton(word, "practise-play")),
  );
}

function showScores(task) {
  const accuracy = typeof task.accuracy === "number" ? task.accuracy : null;
  document.getElementById("accuracy").textContent = accuracy === null ? "not scored" : `${Math.round(accuracy)} / 100`;
  document.getElementById("accuracy-meaning").textContent =
    accuracy === null
      ? "No reference text was given, so the reading was not scored."
      : task.evaluation?.other_text === true
        ? "This seems to be a reading of another text: its words were not found in the recording."
        : meaning(accuracy);
  const completeness = task.evaluation?.completeness;
  const known = typeof completeness === "number";
  document.getElementById("completeness-box").hidden = !known;
  if (known) {
    const note = completeness <= 20 ? ": is this a reading of the text?" : "";
    document.getElementById("completeness").textContent = `${Math.round(completeness)} %`;
    document.getElementById("completeness-note").textContent = `of the text read${note}`;
  }
}

/** Render the result of a completed task; `audioUrl` is where its recording is. */
export function showResult(task, audioUrl) {
  const reference = referenceWords(task);
  const detail = document.getElementById("word-detail");
  showScores(task);
  const first = practiseFirst(reference);
  document.getElementById("practise-box").hidden = !reference.length;
  const practise = document.getElementById("practise");
  practise.replaceChildren(...first.map(practiseItem));
  if (reference.length && !first.length) practise.replaceChildren(el("li", { text: "Nothing: every word sounded as expected." }));

  const words = document.getElementById("words");
  words.replaceChildren(...reference.map((word) => wordButton(word, detail)));
  if (!reference.length) words.textContent = "No reference text: nothing to score.";
  detail.replaceChildren();
  const sentence = task.reference_text || reference.map((w) => w.text).join(" ");
  const listen = document.getElementById("listen-sentence");
  listen.hidden = !sentence;
  listen.onclick = () => say(sentence);

  showHeard(task, document.getElementById("transcript"));
  showSounds(task, reference, document.getElementById("sounds"), document.getElementById("sounds-legend"));

  const player = audio();
  player.src = audioUrl;
  player.ontimeupdate = () => highlight(document.getElementById("result"), player.currentTime);
  player.onended = () => highlight(document.getElementById("result"), -1);
  document.getElementById("play-all").onclick = () => {
    player.currentTime = 0;
    player.play().catch(() => {});
  };
  document.getElementById("result").hidden = false;
}
