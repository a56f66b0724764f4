"""Per-trigger entry points: one event function by itself, in Lambda's handler signature.

The event code lives in ``chalicelib/events``, which ships in the Lambda package; this folder does
not, and nothing deployed imports it: the Chalice app feeds every notification to all functions
through ``app.on_store_event``, ``stacflow replay-events`` through ``chalicelib.events.dispatch``.
A handler here runs only its own function over the process's services (``services.root()``), e.g.
to feed a saved notification to the catalog alone from Python, or as the handler of a Lambda
packaged outside Chalice that has a queue of its own.
"""
