"""Per-trigger entry points: one event function alone, in Lambda's handler signature.

The event code lives in ``chalicelib/events`` (it ships in the Lambda package; this folder does not).
The deployed app routes every notification through ``app.on_store_event`` and ``stacflow
replay-events`` through ``chalicelib.events.dispatch``; these handlers run a single function over the
process's services (``chalicelib.services.root()``), for a deployment that gives a function a queue
of its own, or to feed one function a saved notification from Python.
"""
