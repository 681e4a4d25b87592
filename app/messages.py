"""The session's messages: every notice and error goes to the log, to the message list above the preview (it
stays until dismissed) and, first line only, to the status bar. Some kinds are said once per session (a `key`):
the camera warning would otherwise come back with every Start. Testable alone with a `MessagePanel` and a
status bar."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QStatusBar

from .camera_status import CAMERA_MESSAGE_KEY, UNAVAILABLE
from .widgets import MessagePanel

log = logging.getLogger(__name__)


class MessageLog:
    """Owns the messages said this session (`texts`, oldest first) and the kinds already said once."""

    def __init__(self, panel: MessagePanel, status_bar: QStatusBar) -> None:
        self.panel, self.status_bar = panel, status_bar
        self.texts: list[str] = []
        self._keys: set[str] = set()

    def show(self, text: str, warning: bool = False, key: str | None = None) -> None:
        """Non-modal: added to the message list (every message stays visible until dismissed) and flashed in the
        status bar; kept in `texts` for the log. `key`: a message of this kind is shown once per session."""
        (log.warning if warning else log.info)(text)
        if key is not None:
            if key in self._keys:
                return
            self._keys.add(key)
        self.texts.append(text)
        self.panel.add(text, warning)
        self.status_bar.showMessage(text.splitlines()[0], 10000)

    def warn(self, text: str) -> None:
        self.show(text, warning=True)

    def from_session(self, text: str) -> None:
        """A message the running session sent (through the bridge): a warning; the camera's is said once."""
        self.show(text, warning=True, key=CAMERA_MESSAGE_KEY if text.startswith(UNAVAILABLE) else None)
