// A scored task read for a learner: each reference word with its verdict, its sounds
// paired expected against heard, its times, and what went wrong in plain words.
//
// It reads, defensively, what either scoring method writes (README, "The console"):
// evaluation.words [{word, verdict, score, expected, heard, phonemes [{ipa, heard?}],
// start, end}] from the aligned scoring, or [{word, ipa, correct, mistakes}] with the
// task's ILPS-shaped mistakes from the older one.

export const VERDICTS = {
  correct: "✓",
  mispronounced: "≈",
  missed: "✗",
  inserted: "+",
};

const tokens = (value) =>
  Array.isArray(value) ? value.map(String) : typeof value === "string" ? value.split(/\s+/).filter(Boolean) : [];

const number = (value) => (typeof value === "number" && Number.isFinite(value) ? value : undefined);

/** What the learner said for each reference word, from the ILPS-shaped mistakes
 * (a dropped sound is ""). */
function heardFromMistakes(expected, offset, mistakes) {
  const heard = [...expected];
  for (const mistake of mistakes || []) {
    const position = mistake && mistake.reference && mistake.reference.position;
    if (typeof position !== "number" || position < offset || position >= offset + expected.length) continue;
    if (mistake.type === "Replacement") heard[position - offset] = String(mistake.actual?.value ?? "?");
    if (mistake.type === "Deletion") heard[position - offset] = "";
  }
  return heard;
}

/** The word's sounds as pairs {expected, heard}; heard is "" for a sound not said. */
function pairsOf(word, expected, verdict, offset, mistakes) {
  if (verdict === "missed") return expected.map((sound) => ({ expected: sound, heard: "" }));
  if (Array.isArray(word.phonemes) && word.phonemes.length) {
    // One entry per expected sound; "heard" only where another (or none) was heard.
    return word.phonemes.map((phone) => {
      const ipa = String(phone?.ipa ?? "");
      return { expected: ipa, heard: typeof phone?.heard === "string" ? phone.heard : ipa };
    });
  }
  const heard =
    word.heard !== undefined && tokens(word.heard).length
      ? tokens(word.heard)
      : heardFromMistakes(expected, offset, mistakes);
  const length = Math.max(expected.length, heard.length);
  return Array.from({ length }, (_, i) => ({ expected: expected[i] ?? "", heard: heard[i] ?? "" }));
}

function verdictOf(word, pairs) {
  const named = String(word.verdict ?? word.status ?? "").toLowerCase();
  if (named in VERDICTS) return named;
  if (word.correct === true || word.mistakes === 0) return "correct";
  if (pairs.length && pairs.every((pair) => !pair.heard)) return "missed";
  return "mispronounced";
}

/** Speech that is not the text (evaluation.inserted), as words in the reading. */
function insertedWords(task) {
  const inserted = Array.isArray(task.evaluation?.inserted) ? task.evaluation.inserted : [];
  return inserted
    .filter((word) => word && String(word.word ?? "").trim() && number(word.start) !== undefined)
    .map((word) => {
      const heard = tokens(word.heard);
      return {
        text: String(word.word).trim(), verdict: "inserted", score: undefined,
        pairs: heard.map((sound) => ({ expected: "", heard: sound })), expected: [], heard,
        start: number(word.start), end: number(word.end),
      };
    });
}

/** The reference words of a task (text, verdict, score, sound pairs, times), with the
 * inserted words between them where they were said. */
export function referenceWords(task) {
  const words = scoredWords(task);
  for (const extra of insertedWords(task)) {
    // After the last word that began before it (or first, before every timed word).
    let at = 0;
    words.forEach((word, i) => {
      if (word.start !== undefined && word.start <= extra.start) at = i + 1;
    });
    words.splice(at, 0, extra);
  }
  return words.map((word, index) => ({ ...word, index }));
}

function scoredWords(task) {
  const words = Array.isArray(task.evaluation?.words) ? task.evaluation.words : [];
  let offset = 0;
  return words.map((word) => {
    const expected = tokens(word.expected ?? word.ipa);
    const named = String(word.verdict ?? "").toLowerCase();
    let pairs = pairsOf(word, expected, named, offset, task.mistakes);
    const verdict = verdictOf(word, pairs);
    if (verdict === "missed") pairs = expected.map((sound) => ({ expected: sound, heard: "" }));
    if (named !== "inserted") offset += expected.length;
    return {
      text: String(word.word ?? word.text ?? ""),
      instead: typeof word.heard_word === "string" ? word.heard_word : "",
      verdict,
      score: number(word.score),
      pairs,
      expected: pairs.map((pair) => pair.expected).filter(Boolean),
      heard: pairs.map((pair) => pair.heard).filter(Boolean),
      start: number(word.start),
      end: number(word.end),
    };
  });
}

// IPA a learner can read: the letters English spells each sound with.
const PLAIN = {
  θ: "th", ð: "th", ʃ: "sh", ʒ: "zh", tʃ: "ch", "t͡ʃ": "ch", dʒ: "j", "d͡ʒ": "j", ŋ: "ng",
  j: "y", ɹ: "r", ɾ: "t", ɡ: "g", ʔ: "a glottal stop", x: "kh",
  i: "ee", "iː": "ee", ɪ: "i", e: "e", ɛ: "e", æ: "a", a: "a", ɑ: "ah", "ɑː": "ah", ɒ: "o",
  ɔ: "aw", "ɔː": "aw", ʌ: "u", ə: "uh", ɚ: "er", ɝ: "er", "ɜː": "er", ʊ: "oo", u: "oo",
  "uː": "oo", eɪ: "ay", aɪ: "eye", ɔɪ: "oy", aʊ: "ow", oʊ: "oh", əʊ: "oh", o: "oh",
};

export function plain(ipa) {
  return PLAIN[ipa] ?? ipa.replace(/[ːˈˌ]/g, "");
}

/** One changed sound in plain words: "th said as s", "d left out". */
function change({ expected, heard }) {
  if (!expected) return `an extra ${plain(heard)} sound`;
  if (!heard) return `${plain(expected)} left out`;
  const [said, as] = [plain(expected), plain(heard)];
  return said === as ? `/${expected}/ said as /${heard}/` : `${said} said as ${as}`;
}

/** What went wrong with a word, in plain words (empty for a correct one). */
export function problem(word) {
  if (word.verdict === "correct") return "";
  if (word.verdict === "missed") return "not heard: skipped, or too quiet";
  if (word.verdict === "inserted") return "said, but not in the text";
  const changes = word.pairs.filter((pair) => pair.expected !== pair.heard).map(change);
  if (word.instead) changes.unshift(`heard as “${word.instead}”`); // another word was said
  return changes.length ? changes.join("; ") : "its sounds were unclear";
}

/** The words to practise first: the mispronounced ones, lowest score first, then the
 * missed ones (a read word matters more than a skipped one), at most `count`. */
export function practiseFirst(words, count = 3) {
  const score = (word) => word.score ?? 0;
  const flagged = (verdict) => words.filter((w) => w.verdict === verdict).sort((a, b) => score(a) - score(b));
  return [...flagged("mispronounced"), ...flagged("missed")].slice(0, count);
}

/** One sentence of what the accuracy means. */
export function meaning(accuracy) {
  const band =
    accuracy >= 90
      ? "very close: keep it up"
      : accuracy >= 75
        ? "mostly close, with a few words to work on"
        : accuracy >= 50
          ? "often far from them, so practise the words below"
          : "far from most of them, so listen to each word and try again slowly";
  return `The accuracy is how close your sounds were to the expected ones, over the words you read: ${band}.`;
}
