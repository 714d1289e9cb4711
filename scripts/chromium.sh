#!/usr/bin/env bash
# Install the headless Chromium that the browser tests drive through playwright (Debian's
# `chromium` and `chromium-driver`, plus `fonts-liberation` so that text renders in
# screenshots); prints the chromium path on stdout. Idempotent: when /usr/bin/chromium is
# there already it only checks that it runs. Exits non-zero with a message on stderr when it
# cannot install or run it.
set -euo pipefail
chromium=/usr/bin/chromium
pkgs=(chromium chromium-driver fonts-liberation)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
die() {
  echo "scripts/chromium.sh: $*" >&2
  [ -s "$log" ] && tail -n 15 "$log" | sed 's/^/  /' >&2
  exit 1
}
if [ ! -x "$chromium" ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot apt-get install ${pkgs[*]}"
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null 2>&1 || die "no apt-get: install Chromium at $chromium by hand"
  export DEBIAN_FRONTEND=noninteractive
  apt_get() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$log" 2>&1; }
  # Refresh the package lists only when apt does not know a package yet.
  for pkg in "${pkgs[@]}"; do
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
      apt_get update -qq || die "apt-get update failed"
      break
    fi
  done
  if ! apt_get install -y -qq --no-install-recommends "${pkgs[@]}"; then
    # A stale package list can name files the mirror no longer has: refresh once and retry.
    apt_get update -qq || die "apt-get update failed"
    apt_get install -y -qq --no-install-recommends "${pkgs[@]}" \
      || die "apt-get install ${pkgs[*]} failed"
  fi
  [ -x "$chromium" ] || die "the packages were installed but $chromium is missing"
fi
"$chromium" --headless --no-sandbox --version >"$log" 2>&1 || die "$chromium --version failed"
echo "$chromium"
