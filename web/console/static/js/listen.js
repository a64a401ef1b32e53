// Hearing words: how they should sound (the browser's own speech synthesis, no server)
// and how the learner said them (the recording, from the word's start to its end).

let voice = null;

function englishVoice() {
  const voices = window.speechSynthesis?.getVoices?.() ?? [];
  const english = voices.filter((v) => /^en\b/i.test(v.lang || ""));
  return english.find((v) => v.default) ?? english.find((v) => /^en-(US|GB)/i.test(v.lang)) ?? english[0] ?? null;
}

// The listen controls show only while the browser has an English voice (voices arrive late).
function updateVoice() {
  voice = englishVoice();
  document.body.dataset.tts = voice ? "yes" : "no";
}

export function setUpListening() {
  updateVoice();
  window.speechSynthesis?.addEventListener?.("voiceschanged", updateVoice);
}

/** Say `text` in English, stopping anything said before. */
export function say(text) {
  const synthesis = window.speechSynthesis;
  if (!synthesis || !voice) return;
  synthesis.cancel();
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.voice = voice;
  utterance.lang = voice.lang;
  utterance.rate = 0.9; // a little slower than speech: a model to copy
  synthesis.speak(utterance);
}

let clip = null; // {audio, end} while a stretch of the recording plays

function watch() {
  if (!clip) return;
  const { audio, end } = clip;
  if (audio.paused || audio.ended || audio.currentTime >= end) {
    clip = null;
    if (!audio.paused) audio.pause();
    delete audio.dataset.clip;
    return;
  }
  requestAnimationFrame(watch);
}

/** Play the recording from `start` to `end` seconds (a word the learner said). */
export async function playClip(audio, start, end) {
  // A little either side: the aligner's edges are 10 ms frames, a word's onset is softer.
  const from = Math.max(start - 0.05, 0);
  clip = null;
  audio.pause();
  audio.currentTime = from;
  audio.dataset.clip = `${from.toFixed(2)}-${end.toFixed(2)}`;
  try {
    await audio.play();
  } catch {
    delete audio.dataset.clip;
    return;
  }
  clip = { audio, end: end + 0.05 };
  requestAnimationFrame(watch);
}
