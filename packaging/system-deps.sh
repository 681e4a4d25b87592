#!/bin/sh
# Debian/Ubuntu system packages, in two sets:
#   runtime  what the app needs on a desktop: the libraries Qt's X11 (xcb) and Wayland platform plugins load
#            (a fresh Ubuntu desktop lacks libxcb-cursor0, and Qt then aborts at start) and PortAudio for the
#            microphone. `make run` checks these. The table in app/display.py names the same libraries.
#   test     what only the tests and the bundle build use: speech (espeak-ng), media (ffmpeg), the bundle build
#            (binutils strip, desktop-file-validate), a virtual audio server (PulseAudio) and screen (Xvfb).
# Usage: sh packaging/system-deps.sh [runtime|test|all]   (default: all)
# As root it installs what is missing with apt-get; otherwise it prints the one command that does, and exits 0
# (the app itself says what is missing if a library it needs is still absent).
RUNTIME="libxcb1 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0 libwayland-client0 libwayland-cursor0 libgl1 libegl1 libfontconfig1 libdbus-1-3 libportaudio2"
TEST="espeak-ng ffmpeg binutils desktop-file-utils pulseaudio pulseaudio-utils libasound2-plugins xvfb"
case "${1:-all}" in
  runtime) PKGS="$RUNTIME" ;;
  test) PKGS="$TEST" ;;
  all) PKGS="$RUNTIME $TEST" ;;
  *) echo "system-deps: unknown set '$1'; use runtime, test or all" >&2; exit 2 ;;
esac
command -v dpkg-query >/dev/null 2>&1 || { echo "system-deps: not a Debian system; install the equivalents of: $PKGS"; exit 0; }
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing:$missing -- install with: sudo apt-get install -y$missing"
  exit 0
fi
echo "system-deps: installing$missing"
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
