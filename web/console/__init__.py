"""The web console served at ``/``: the page, its session cookie and CSRF guard."""
