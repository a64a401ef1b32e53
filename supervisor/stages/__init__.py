"""The speech stages a task actor supervises: preprocessing, transcribing, evaluating.

Each stage is one small Protocol (``base.py``) with an embedded default
implementation and optional remote ones; the actor only sees the Protocols.
"""
