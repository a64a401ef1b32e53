"""Actor-style task supervision: one long-lived actor per task, restarted on failure."""
