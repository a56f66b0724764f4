"""Event functions: S3 notifications about the store -> catalog and registry publication.

``notifications`` turns S3 notifications (Lambda format, or SQS messages carrying them) into typed
``StoreEvent``s; ``dispatch`` routes them to the function that handles their keys (``catalog``,
``registry``). The functions get their services from the caller (``base.EventServices``: the
composition root's in production), so the deployed Lambda (``app.on_store_event``), the local
store's in-process dispatch and ``stacflow replay-events`` all run one code path.
"""
