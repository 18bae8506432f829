#!/bin/sh
# Make or refresh the project's own virtualenv and install afetch into it (editable).
#
#   sh scripts/venv.sh            afetch and its dependencies
#   sh scripts/venv.sh test       ... and the test tools (pytest, ruff, ...)
#   sh scripts/venv.sh test,bench ... and the benchmark tools
#
# Nothing needs activating, and no `python` command is needed: the interpreter is the first of
# $PYTHON, python3, python3.13, python3.12, python3.11 that is 3.11 or newer. The virtualenv is
# .venv. On Debian and Ubuntu, `python3 -m venv` fails without the
# python3-venv package (its ensurepip is split off) and the system pip refuses to install
# (PEP 668); then the virtualenv is made without pip, and pip is fetched from PyPI (checked
# against the SHA-256 PyPI publishes) and installs itself into it. Installs happen again only
# when pyproject.toml or the extras asked for change.
set -eu

cd "$(dirname "$0")/.."
venv=.venv
extras=${1:-}

say() { echo "scripts/venv.sh: $*" >&2; }

find_python() {
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

venv_python() {
    # Windows (Git Bash) puts it in Scripts/.
    if [ -x "$venv/bin/python" ]; then echo "$venv/bin/python"; else echo "$venv/Scripts/python.exe"; fi
}

# pip from PyPI into a virtualenv made without it: the latest pip wheel, its SHA-256 checked against
# the one PyPI's JSON API gives, then run from the wheel itself to install itself.
bootstrap_pip() {
    "$1" - <<'EOF'
import hashlib, json, os, subprocess, sys, tempfile, urllib.parse, urllib.request

api = "https://pypi.org/pypi/pip/json"
with urllib.request.urlopen(api, timeout=60) as response:
    release = json.load(response)
wheel = next(f for f in release["urls"] if f["packagetype"] == "bdist_wheel")
# A mirror may give file URLs relative to the API's.
with urllib.request.urlopen(urllib.parse.urljoin(api, wheel["url"]), timeout=120) as response:
    data = response.read()
if hashlib.sha256(data).hexdigest() != wheel["digests"]["sha256"]:
    sys.exit(f"{wheel['filename']}: SHA-256 does not match PyPI's")
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, wheel["filename"])
    with open(path, "wb") as handle:
        handle.write(data)
    pip = os.path.join(path, "pip")
    cmd = [sys.executable, pip, "install", "--quiet", "--no-index", path]
    sys.exit(subprocess.call(cmd))
EOF
}

make_venv() {
    python=$(find_python) || {
        say "needs Python 3.11 or newer as python3 (or set PYTHON=/path/to/python3.11+)"
        exit 1
    }
    say "making $venv with $python"
    if "$python" -m venv "$venv" >/dev/null 2>&1; then
        return 0
    fi
    # Most likely Debian/Ubuntu without python3-venv: ensurepip is missing.
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    say "$python has no ensurepip (Debian/Ubuntu: package python3-venv); fetching pip from PyPI"
    bootstrap_pip "$(venv_python)" || {
        rm -rf "$venv"
        say "could not fetch pip; install python3-venv (apt-get install python3-venv) and rerun"
        exit 1
    }
}

if [ ! -e "$(venv_python)" ]; then
    make_venv
fi
py=$(venv_python)

# One line per install: pyproject.toml's checksum and the extras. Any install from the same
# pyproject.toml covers a request without extras.
stamp="$venv/.afetch-installed"
checksum=$(cksum <pyproject.toml)
want="$checksum [${extras}]"
if [ -f "$stamp" ]; then
    if grep -qxF -e "$want" "$stamp" || { [ -z "$extras" ] && grep -qF -e "$checksum [" "$stamp"; }; then
        exit 0
    fi
fi
target=.
if [ -n "$extras" ]; then target=".[${extras}]"; fi
# One line saying what happens instead of pip's own output (kept for when it fails).
say "installing afetch${extras:+ with [$extras]} and its dependencies into $venv (pip; about half a minute)"
log="$venv/.afetch-pip.log"
if ! "$py" -m pip install --quiet --disable-pip-version-check -e "$target" >"$log" 2>&1; then
    cat "$log" >&2
    say "pip install failed (its output is above and in $log)"
    exit 1
fi
echo "$want" >>"$stamp"
say "done: afetch is installed in $venv"
