#!/usr/bin/env bash
# The whole test suite, from a fresh checkout: builds the Rust core, installs the
# package into a private virtual environment and runs cargo test and pytest.
# Needs only Rust, Python >= 3.11 and pip. Extra pytest arguments pass through.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${AGENT_FACTORY_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet "maturin>=1.9.4,<2" "pytest>=8" "pytest-asyncio>=0.24" "hypothesis>=6.100" "rich>=13"

echo "== generated sync API is up to date"
"$PY" tools/async_to_sync.py --check

echo "== cargo fmt and clippy"
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings

echo "== cargo test (Rust core)"
cargo test --quiet 2>&1 | tail -n 25

echo "== build and install the package (release)"
VIRTUAL_ENV="$(cd "$VENV" && pwd)" "$VENV/bin/maturin" develop --release --quiet

echo "== pytest"
"$PY" -m pytest -q "$@"
