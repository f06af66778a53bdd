#!/usr/bin/env bash
# The whole test suite with its quality gates, from a fresh checkout. Needs only
# Rust, Python >= 3.11 and pip. Extra arguments pass through to pytest over tests/.
#
#   1. tools into a private virtual environment (AGENT_FACTORY_VENV, default .venv)
#   2. lint: generated sync API up to date, cargo fmt, clippy, ruff
#   3. build the wheel and the sdist once (release), check the sdist, install the
#      wheel with its `test` extra: the tests run against the installed package
#   4. mypy over the package, mypy.stubtest against the installed extension
#   5. smoke test: the wheel in a brand-new venv, used from outside the source tree
#   6. cargo test, pytest over tests/, the pytest plugin's sample project
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

VENV="${AGENT_FACTORY_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
VENV="$(cd "$VENV" && pwd)"
PY="$VENV/bin/python"
DIST="$ROOT/dist"

step() { printf '\n== %s\n' "$*"; }

step "tools"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet "maturin>=1.9.4,<2" "ruff>=0.17,<0.18" "mypy>=2.4,<3"

step "generated sync API is up to date"
"$PY" tools/async_to_sync.py --check

step "cargo fmt and clippy"
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings

step "ruff (python/ tests/ examples/ benches/ tools/)"
"$VENV/bin/ruff" check python tests examples benches tools

step "build the wheel and the sdist (release)"
rm -rf "$DIST"
"$VENV/bin/maturin" build --release --sdist --out "$DIST" --interpreter "$PY" --quiet
WHEEL="$(ls "$DIST"/agent_factory-*.whl)"
SDIST="$(ls "$DIST"/agent_factory-*.tar.gz)"
echo "built $(basename "$WHEEL") and $(basename "$SDIST")"
SDIST_FILES="$(tar -tzf "$SDIST")"
for required in Cargo.toml Cargo.lock pyproject.toml README.md src/lib.rs python/agent_factory/__init__.py \
  python/agent_factory/_native.pyi python/agent_factory/py.typed; do
  if ! grep -qE "^[^/]+/$required\$" <<<"$SDIST_FILES"; then
    echo "the sdist lacks $required" >&2
    exit 1
  fi
done
echo "the sdist holds Cargo.toml, src/, python/ and README.md"

step "install the wheel with its test extra"
"$PY" -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
"$PY" -m pip install --quiet "$WHEEL[test]"
# From the source root, as pytest runs: the package must come from site-packages, not python/.
INSTALLED="$("$PY" -c 'import agent_factory; print(agent_factory.__file__)')"
case "$INSTALLED" in
  "$VENV"/*/site-packages/agent_factory/__init__.py) echo "tests import $INSTALLED" ;;
  *) echo "agent_factory imports from $INSTALLED, not from the installed wheel" >&2; exit 1 ;;
esac

step "mypy and stubtest"
"$VENV/bin/mypy"
# The stub from python/ (mypy_path) against the extension module of the installed wheel.
"$PY" -m mypy.stubtest agent_factory._native

step "smoke test: the wheel in a fresh virtual environment, outside the source tree"
SMOKE="$(mktemp -d)"
trap 'rm -rf "$SMOKE"' EXIT
python3 -m venv "$SMOKE/venv"
"$SMOKE/venv/bin/python" -m pip install --quiet "$WHEEL"
(
  cd "$SMOKE"
  "$SMOKE/venv/bin/python" -c "import agent_factory; print('agent_factory', agent_factory.__version__, 'from', agent_factory.__file__)"
  "$SMOKE/venv/bin/agent-factory" demo
)

step "cargo test (Rust core)"
cargo test --quiet 2>&1 | tail -n 25

step "pytest"
"$PY" -m pytest -q tests "$@"

step "the pytest plugin's sample project (examples/pytest_project)"
(cd examples/pytest_project && "$PY" -m pytest -q -p no:cacheprovider)
