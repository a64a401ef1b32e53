"""Thresholds of the word verdicts, picked by bench/pron_calibrate.py on the corpus's
calibration split (the human reading's even clauses, two espeak-ng voices the held-out
split never uses): the most replaced and substituted words flagged among the points
that keep false alarms on correct espeak-ng speech within 10 % (9.7 %; native words
flagged 3.2 %, replaced 100 %, substituted 36.4 % there). Provenance of the corpus in
tests/data/README.md."""

#: A slot whose best learner substitute beats it by more than this (nats) is heard as
#: the substitute.
SUBSTITUTE_MARGIN = 3.0
#: A slot whose expected symbols never reach this log-posterior is absent.
ABSENT = -4.5
