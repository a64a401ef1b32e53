"""Thresholds of the word verdicts (bench/pron_calibrate.py picks them on the corpus's
calibration split; provenance in tests/data/README.md)."""

#: A slot whose best learner substitute beats it by more than this (nats) is heard as
#: the substitute.
SUBSTITUTE_MARGIN = 0.0
#: A slot whose expected symbols never reach this log-posterior is absent.
ABSENT = -3.0
