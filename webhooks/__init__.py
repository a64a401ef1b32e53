"""Webhooks: the delivery loop over the outbox, the signatures, the rules a URL must meet."""
