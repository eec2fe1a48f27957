#!/usr/bin/env bash
# The official metrics for the eval parity tests: Java (for pycocoevalcap's PTBTokenizer and
# METEOR 1.5 jars) and a venv with pycocoevalcap 1.2 and scikit-learn for OVAD's average precision
# (DynRefer pins 1.3.2, which needs NumPy 1; 1.5.2's average_precision_score is the same).
# Installs what is missing, quietly, and prints the venv's python.
# Usage: bash tools/eval-reference.sh
set -euo pipefail
VENV="${EVAL_VENV:-/tmp/dynrefer-evalvenv}"
# Tests run in parallel and each calls this: the first installs while the others wait, instead of
# two venvs being made in one folder at once.
exec 9>"$VENV.lock"
flock 9
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ! command -v java >/dev/null 2>&1; then
  echo "==> installing Debian's default-jre-headless for the METEOR and PTB tokenizer jars" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq default-jre-headless >/dev/null
fi
ok() {
  "$VENV/bin/python" -c 'import importlib.metadata as m, sys
sys.exit(m.version("pycocoevalcap") != "1.2" or m.version("scikit-learn") != "1.5.2")' 2>/dev/null
}
if ! ok; then
  echo "==> installing pycocoevalcap 1.2 and scikit-learn 1.5.2 in $VENV (about 200 MB: it ships the jars)" >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "pycocoevalcap==1.2" "scikit-learn==1.5.2" "numpy<3" >/dev/null
  ok
fi
echo "$VENV/bin/python"
