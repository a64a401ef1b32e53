"""The running service: its composition root, its process launcher and its background work."""
