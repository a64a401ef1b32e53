"""The speech stages: preprocessing, transcribing, evaluating; the domain, with no actors in it.

Each stage is one small Protocol (``base.py``) with an embedded default
implementation and optional remote ones; the actor only sees the Protocols.
"""
