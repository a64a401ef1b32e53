"""Operations: metrics, structured logs and the lifecycle facts both report."""
