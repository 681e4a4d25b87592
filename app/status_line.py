"""The status line's wording: the engine's measured figures in one short line, and its terms explained in plain
words for the tooltip. Qt-free, so it is testable with a plain dict of stats."""

from __future__ import annotations

STATUS_HELP = (  # the status line's terms in plain words (its tooltip): the line itself stays short
    "render: pictures made per second · output: pictures sent to the camera per second\n"
    "latency: time from the voice to its picture, p50 = typical, p95 = slowest 1 in 20\n"
    "drops: pictures skipped to keep up (to catch up: skipped to bring the latency back down after a hiccup) · "
    "repeats: a picture sent again while the next one renders")


def status_text(st: dict) -> str:
    """The status bar's figures, all measured: rendered vs sent fps, drops and repeats, latency p50/p95; when
    the machine cannot keep up, the engine's plain-language state replaces the device name."""
    p50, p95 = st.get("latency_ms_p50", 0.0), st.get("latency_ms_p95", 0.0)
    # no new frame in the stats window (a machine taking seconds per frame): say so rather than show 0 ms
    latency = f"{p50:.0f}/{p95:.0f} ms (p50/p95)" if p50 > 0 else "— (no new frame in the last seconds)"
    catch_up = st.get("catch_up_drops", 0)  # part of drops: skipped to bring latency back down after a hiccup
    drops = f"drops {st.get('drops', 0)}" + (f" ({catch_up} to catch up)" if catch_up else "")
    text = (f"render {st.get('render_fps', 0.0):.1f} fps · output {st.get('output_fps', st.get('fps', 0.0)):.1f} fps"
            f" · latency {latency} · {drops} · repeats {st.get('repeats', 0)}")
    if st.get("drive"):  # face driving: on, which camera, or fallen back to the voice (app/drive.py)
        text = f"{text} · {st['drive']}"
    if not st.get("keeping_up", True):
        return f"{text} · {st.get('state', '')}"
    return f"{text} · {st.get('device', '?')}"
