"""The store's one exception: whatever the back end raised, callers see StoreError."""


class StoreError(Exception):
    """The store cannot be read or written; the webhook answers 5xx so Alertmanager retries."""
