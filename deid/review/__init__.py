"""The manual review queue: held items routed by reason, decided on a web page or the CLI, applied on the record.

- :mod:`deid.review.queue` (pure): items, routing, filters, decisions, the audit report;
- :mod:`deid.review.store`: the review tables (users, sessions, items, events) on the ledger's engine;
- :mod:`deid.review.apply`: fill the queue, render previews, apply decisions through :mod:`deid.staging`;
- :mod:`deid.review.feedback`: "nothing there" answers per kind and detector; proposed calibration tables;
- :mod:`deid.review.web`: the FastAPI app factory (server-rendered pages, a little plain JavaScript);
- :mod:`deid.review.cli`: ``deid review ...``.
"""
