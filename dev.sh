#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine with Python 3.11+:
#   ./dev.sh demo    a virtual device running the firmware
#   ./dev.sh test    every test (what CI runs)
# Both create or reuse .venv at the repository root and install what they need first.
set -euo pipefail
cd "$(dirname "$0")"

SYSTEM_PACKAGES=(mosquitto postgresql)   # tests run a real broker, and m2mkit commerce on a real PostgreSQL
VENV=.venv

say() { printf '\033[1m[dev.sh]\033[0m %s\n' "$*" >&2; }

pick_python() {
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 &&
       "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  say "Python 3.11 or newer is needed: sudo apt-get install python3 python3-venv"
  exit 1
}

can_apt() {
  [ "${M2MKIT_NO_APT:-}" = "" ] || return 1
  command -v apt-get >/dev/null 2>&1 || return 1
  [ "$(id -u)" = 0 ] && return 0
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null
}

apt_install() {
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if [ ! -f /tmp/.m2mkit-apt-updated ]; then
    $sudo apt-get update -qq >/dev/null && touch /tmp/.m2mkit-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

system_packages() {
  local missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if can_apt; then
    say "installing system packages: ${missing[*]}"
    apt_install "${missing[@]}" || say "could not install ${missing[*]}; tests that need them will say so"
  else
    say "missing system packages: ${missing[*]} (install them with: sudo apt-get install ${missing[*]});" \
        "set up continues, tests that need them will say so"
  fi
}

venv() {
  local py; py=$(pick_python)
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$py" -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      if can_apt; then
        say "installing python3-venv"
        apt_install python3-venv
        "$py" -m venv "$VENV"
      else
        say "$py cannot create a virtual environment: sudo apt-get install python3-venv"; exit 1
      fi
    fi
  fi
  # reinstall only when pyproject.toml changed
  local stamp="$VENV/.m2mkit-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing Python packages (pinned in pyproject.toml) into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 \
      | grep -v '^WARNING: Location' >&2 || true
    "$VENV/bin/python" -c 'import m2mkit, littlefs, mpremote, esptool, serial' \
      || { say "the Python packages did not install; see the messages above"; exit 1; }
    touch "$stamp"
  fi
  # umqtt.simple as a board has it frozen: the registry's copy, fetched once (host/m2mkit/umqtt_setup.py)
  "$VENV/bin/python" -m m2mkit.umqtt_setup >/dev/null \
    || { say "umqtt.simple could not be set up (see above); the MQTT tests and the demo need it"; exit 1; }
}

case "${1:-}" in
  demo)
    system_packages; venv; shift
    exec "$VENV/bin/m2mkit" demo "$@" ;;
  test)
    system_packages; venv; shift
    # four workers (pytest-xdist), each test file on one of them: the suite waits far more than it
    # computes (simulated modem time, brokers, subprocesses: about a third of 2 cores busy with 4
    # workers), so 4 beat 2 on a 2-core machine; `./dev.sh test -n 0` runs it in one process.
    # --timeout: a test hung for 20 minutes (the longest passes in about 3) fails with every thread's
    # stack instead of holding CI to its limit (pytest-timeout; a hung accept did so once).
    # --durations: the 15 slowest at the end, to see where the suite's time goes
    exec "$VENV/bin/python" -m pytest -n 4 --dist loadfile --timeout 1200 --durations 15 "$@" ;;
  *)
    echo "usage: ./dev.sh demo | ./dev.sh test [pytest args]" >&2; exit 2 ;;
esac
