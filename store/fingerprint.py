"""The fingerprint of a create request: what a repeated Idempotency-Key must match."""

from __future__ import annotations

import hashlib
import json

from store.records import NewTask, NewUpload


def request_fingerprint(task: NewTask, upload: NewUpload) -> str:
    """A sha256 over the upload's bytes and every field the task was made from.

    The fields are the normalised ones the task stores (a title defaulted from the
    file name, a reference text stripped), so two requests that would make the same
    task have the same fingerprint.
    """
    fields = {
        "audio": upload.sha256,
        "filename": upload.filename,
        "content_type": upload.content_type,
        "sample_rate": upload.sample_rate,
        "channels": upload.channels,
        "title": task.title,
        "language": task.language,
        "text_id": None if task.text_id is None else str(task.text_id),
        "reference_text": task.reference_text,
        "webhook_url": task.webhook_url,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
