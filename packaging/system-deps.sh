#!/bin/sh
# Debian/Ubuntu packages the tests use: speech (espeak-ng), media (ffmpeg), the bundle build (binutils strip,
# desktop-file-validate), audio (PortAudio, PulseAudio),
# a virtual screen (Xvfb) and the libraries Qt's offscreen platform loads. Installs what is missing when
# apt-get can run as root; otherwise prints the command to run.
PKGS="espeak-ng ffmpeg binutils desktop-file-utils libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins xvfb libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xinerama0"
command -v dpkg-query >/dev/null 2>&1 || { echo "system-deps: not a Debian system; install: $PKGS"; exit 0; }
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "system-deps: missing:$missing -- run as root: apt-get install$missing"; exit 0; fi
echo "system-deps: installing$missing"
$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
