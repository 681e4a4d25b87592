#!/bin/sh
# Adds Headcast to the application menu of the current user (no root needed): a .desktop entry whose Exec
# points at this folder, and the icon. Run it again after moving the folder; `--remove` takes both away.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
APPS="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
ICONS="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor"
if [ "${1:-}" = "--remove" ]; then
  rm -f "$APPS/headcast.desktop" "$ICONS/scalable/apps/headcast.svg" "$ICONS/256x256/apps/headcast.png"
  echo "Removed Headcast from the application menu."
  exit 0
fi
[ -x "$HERE/headcast" ] || { echo "install-desktop-entry: $HERE/headcast not found: run this script from the extracted Headcast folder." >&2; exit 1; }
mkdir -p "$APPS" "$ICONS/scalable/apps" "$ICONS/256x256/apps"
cp "$HERE/headcast.svg" "$ICONS/scalable/apps/headcast.svg"
cp "$HERE/headcast.png" "$ICONS/256x256/apps/headcast.png"
# Exec with the absolute path (quoted for folders with spaces); everything else as shipped.
sed "s|^Exec=.*|Exec=\"$HERE/headcast\" %F|" "$HERE/headcast.desktop" > "$APPS/headcast.desktop.tmp"
mv "$APPS/headcast.desktop.tmp" "$APPS/headcast.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS" || true
echo "Headcast is in your application menu (it may take a few seconds to appear)."
