"""``specsteer web``: the chat, memory and egress panes in a browser, served from this device."""

from specsteer.apps.web._access import Access
from specsteer.apps.web._app import create_app, run_web
from specsteer.apps.web._chat import ChatSession

__all__ = ["Access", "ChatSession", "create_app", "run_web"]
