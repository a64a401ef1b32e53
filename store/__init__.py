"""The PostgreSQL journal: tasks, their events and their audio."""
