"""Transports carry guard requests to a decision service: in-process (embedded) or, with
``base_url``, over HTTP. Sync and async methods share one request model."""

from .base import Transport

__all__ = ["Transport"]
