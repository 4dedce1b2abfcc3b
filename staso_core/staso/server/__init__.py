"""``staso serve``: the decision service behind HTTP, with the approval dashboard.

Needs the ``server`` extra (FastAPI, uvicorn). The client side of staso never imports this.
"""

from .app import create_app
from .state import ServerConfig

__all__ = ["ServerConfig", "create_app"]
