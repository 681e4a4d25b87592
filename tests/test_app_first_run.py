"""First-run weights dialog: download with progress from a local HTTP server, cancel, import a folder."""

from __future__ import annotations

import http.server
import io
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QDialog

from app.first_run import WeightsDialog, missing_weights, wanted_files
from core.weights import MODELS, WeightsRegistry


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADCAST_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HEADCAST_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("HEADCAST_DATA_DIR", str(tmp_path / "data"))
    return WeightsRegistry()


@pytest.fixture
def server(tmp_path):
    """Serves tmp/served over HTTP on localhost (never a hub); `slow` throttles to ~1 MB/s for cancel tests."""
    root = tmp_path / "served"
    root.mkdir()
    state = {"slow": False}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for i in range(0, len(data), 64 * 1024):
                self.wfile.write(data[i:i + 64 * 1024])
                if state["slow"]:
                    time.sleep(0.06)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    yield root, (lambda f: f"http://127.0.0.1:{port}/{f.local}"), state
    httpd.shutdown()
    httpd.server_close()


def publish(root: Path, files, size: int) -> dict[str, bytes]:
    """Random payloads; .pth files wrapped in a zip container as torch.save writes them (a download is
    checked to be a complete archive before it counts as installed)."""
    rng = np.random.default_rng(0)
    content = {}
    for f in files:
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        if f.local.endswith(".pth"):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
                z.writestr("archive/data/0", data)
            data = buf.getvalue()
        (root / f.local).parent.mkdir(parents=True, exist_ok=True)
        (root / f.local).write_bytes(data)
        content[f.local] = data
    return content


def installed_files(registry) -> list[Path]:
    return sorted(p for p in registry.root.rglob("*") if p.is_file()) if registry.root.exists() else []


def test_download_installs_everything_with_progress(qtbot, registry, server):
    root, url_for, _ = server
    files = wanted_files(registry)
    assert {f.local for f in files} >= {f.local for f in MODELS["liveportrait"].files}
    content = publish(root, files, 200_000)
    dialog = WeightsDialog(registry=registry, url_for=url_for)
    qtbot.addWidget(dialog)
    seen = []
    dialog.progress.connect(lambda done, total, name: seen.append((done, total)))
    dialog.start_download()
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=30000)
    assert missing_weights(registry) == []
    for local, data in content.items():
        assert (registry.root / local).read_bytes() == data
    assert seen[-1][0] == seen[-1][1] == sum(map(len, content.values())) and dialog.bar.value() == 1000
    assert [p.name for p in registry.root.iterdir() if p.name.startswith(".staging")] == []


def test_cancel_leaves_nothing_installed(qtbot, registry, server):
    root, url_for, state = server
    publish(root, wanted_files(registry), 3_000_000)
    state["slow"] = True
    dialog = WeightsDialog(registry=registry, url_for=url_for)
    qtbot.addWidget(dialog)
    dialog.start_download()
    qtbot.waitUntil(lambda: dialog.bar.value() > 0, timeout=30000)  # mid-transfer
    dialog.cancel()
    qtbot.waitUntil(lambda: "Cancelled" in dialog.status.text(), timeout=30000)
    assert not dialog.busy and dialog.download_button.isEnabled()
    assert installed_files(registry) == [], "a cancelled download left files behind"
    assert len(missing_weights(registry)) == len(MODELS["liveportrait"].files)


def test_unreachable_server_reports_and_installs_nothing(qtbot, registry):
    dialog = WeightsDialog(registry=registry, url_for=lambda f: "http://127.0.0.1:9/nothing")
    qtbot.addWidget(dialog)
    dialog.start_download()
    qtbot.waitUntil(lambda: dialog.download_button.isEnabled() and bool(dialog.status.text()), timeout=30000)
    text = dialog.status.text()
    assert text.startswith("Cannot download liveportrait/") and "127.0.0.1 refused the connection" in text
    assert "weights import DIR" in text and "URLError" not in text and "urlopen" not in text
    assert installed_files(registry) == []


def test_offline_download_is_one_plain_sentence(qtbot, registry):
    """No network at all (the name cannot be resolved): a sentence with the fix, not a raw URLError."""
    dialog = WeightsDialog(registry=registry, url_for=lambda f: "https://no-such-host.invalid/x")
    qtbot.addWidget(dialog)
    dialog.start_download()
    qtbot.waitUntil(lambda: dialog.download_button.isEnabled() and bool(dialog.status.text()), timeout=30000)
    text = dialog.status.text()
    assert "cannot find no-such-host.invalid: this computer seems to be offline" in text
    assert "import" in text and "Errno" not in text and "URLError" not in text
    assert installed_files(registry) == []


def test_dialog_lists_damaged_files_and_never_an_empty_missing_list(qtbot, registry, tmp_path):
    publish(tmp_path / "usb", MODELS["liveportrait"].files, 1000)
    registry.import_dir(tmp_path / "usb")
    dialog = WeightsDialog(registry=registry)
    qtbot.addWidget(dialog)
    assert "Missing" not in dialog.info.text() and "installed and look complete" in dialog.info.text()
    damaged = registry.root / MODELS["liveportrait"].files[2].local
    damaged.write_bytes(damaged.read_bytes()[:500])  # a truncated download
    dialog = WeightsDialog(registry=registry)
    qtbot.addWidget(dialog)
    text = dialog.info.text()
    assert "Missing or damaged:" in text and f"{damaged.name}: damaged (not a complete PyTorch" in text
    assert missing_weights(registry) == [MODELS["liveportrait"].files[2].local]


def test_import_folder(qtbot, registry, tmp_path):
    folder = tmp_path / "from_usb"
    content = publish(folder, MODELS["liveportrait"].files, 1000)
    dialog = WeightsDialog(registry=registry)
    qtbot.addWidget(dialog)
    dialog.import_folder(folder)
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=30000)
    for local, data in content.items():
        assert (registry.root / local).read_bytes() == data


def test_first_run_opens_the_dialog_only_without_weights(qtbot, registry):
    from app.main_window import MainWindow
    from app.settings import AppSettings

    dev = MainWindow(AppSettings(camera_enabled=False), synthetic="tiny")
    qtbot.addWidget(dev)
    dev.first_run_check()
    assert not dev.findChildren(WeightsDialog)  # stand-in weights need nothing
    w = MainWindow(AppSettings(camera_enabled=False))
    qtbot.addWidget(w)
    w.first_run_check()
    dialogs = w.findChildren(WeightsDialog)
    assert len(dialogs) == 1 and dialogs[0].isVisible()
    assert "appearance_feature_extractor.pth" in dialogs[0].info.text()
    dialogs[0].reject()
