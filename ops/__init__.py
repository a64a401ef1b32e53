"""Operations: metrics and structured logs (nothing here knows what a task is)."""
