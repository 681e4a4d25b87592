"""Headcast desktop app: portrait library, microphone, preview and virtual camera around `core.engine`."""
