"""The window's actions, menus and keyboard shortcuts, and the icons they use. One table (`SHORTCUTS`) is what
the help dialog lists; the actions carry the same keys. What an action does is wired by the window.
Testable alone: `WindowActions(QMainWindow())` fills its menu bar; `shortcuts_dialog(parent)` builds the help."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox, QWidget

from resources import resource_dir

RESOURCES = resource_dir()  # package data: found in a checkout, a wheel and a bundle alike

SHORTCUTS = (
    ("Start / stop", "F5"),
    ("Mute the avatar (idle motion)", "Ctrl+M"),
    ("Next portrait", "Ctrl+Right"),
    ("Previous portrait", "Ctrl+Left"),
    ("Add portraits", "Ctrl+O"),
    ("Keyboard shortcuts", "F1"),
)


def icon(name: str) -> QIcon:
    path = RESOURCES / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


class WindowActions:
    """The actions (application-wide shortcuts where a key is listed in SHORTCUTS) and the File / Avatar / Help
    menus of `window`."""

    def __init__(self, window: QMainWindow) -> None:
        self.start = QAction(icon("start"), "Start", window, shortcut=QKeySequence("F5"))
        self.mute = QAction(icon("mute"), "Mute avatar", window, shortcut=QKeySequence("Ctrl+M"), checkable=True)
        self.next = QAction("Next portrait", window, shortcut=QKeySequence("Ctrl+Right"))
        self.prev = QAction("Previous portrait", window, shortcut=QKeySequence("Ctrl+Left"))
        self.add = QAction(icon("add"), "Add portraits…", window, shortcut=QKeySequence("Ctrl+O"))
        self.import_weights = QAction("Download or import weights…", window)
        self.quit = QAction("Quit", window, shortcut=QKeySequence.StandardKey.Quit)
        self.help = QAction("Keyboard shortcuts", window, shortcut=QKeySequence("F1"))
        for a in (self.start, self.mute, self.next, self.prev, self.add, self.help):
            a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            window.addAction(a)
        menu = window.menuBar().addMenu("&File")
        menu.addAction(self.add)
        menu.addAction(self.import_weights)
        menu.addSeparator()
        menu.addAction(self.quit)
        menu = window.menuBar().addMenu("&Avatar")
        for a in (self.start, self.mute, self.next, self.prev):
            menu.addAction(a)
        menu = window.menuBar().addMenu("&Help")
        menu.addAction(self.help)


def shortcuts_dialog(parent: QWidget) -> QMessageBox:
    """The keyboard shortcuts as a table, not space-padded text: padding only lines up in a monospace font, and
    the dialog's is not. Not yet shown: the caller opens it (non-modal)."""
    rows = "".join(f"<tr><td style='padding-right:16px'><b>{k}</b></td><td>{what}</td></tr>"
                   for what, k in SHORTCUTS)
    box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts", f"<table>{rows}</table>", parent=parent)
    box.setTextFormat(Qt.TextFormat.RichText)
    return box
