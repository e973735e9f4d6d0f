#!/usr/bin/env bash
# The whole GPU check of tunekit in one command, for a GPU host without npm (the device tool's
# machine). Prepared here by `node scripts/build-cuda-dev.mjs && node scripts/pack-gpu-check.mjs
# --with-tests`; on the host, from the repository root, with the carry list that prints:
#
#   source .device/env.sh && bash scripts/gpu-session.sh
#
# Steps (never stops at a failure; each has its own timeout, and all of them together stay
# within GPU_SESSION_BUDGET seconds, default 530: a step gets less when the budget runs short,
# keeping a minimum for the steps after it, and is skipped under 5 s):
#   setup    unpack .gpu-check/cuda.tar.xz into build-cuda/ (libtunekit_cuda.so, dev/<op>) and
#            .gpu-check/test-deps.tar.xz into .gpu-check/node_modules; node_modules -> .gpu-check/node_modules
#   env      nvidia-smi -L, node --version, tk.backend().cuda
#   kernels  the build-cuda/dev harnesses in their quick/check modes, 60 s each at most:
#            gemm --quick, lora, attention check, attention bench, int8 --quick, gae
#   vitest   node .gpu-check/node_modules/vitest/vitest.mjs run tests/gpu (120 s)
#   gpu-check  node bench/gpu-check.mjs --json $OUT/gpu-check.json (240 s; GPU_CHECK_ARGS adds
#            arguments, e.g. GPU_CHECK_ARGS=--quick)
#   compare  python3 bench/peft-compare.py and python3 bench/hf-compare.py (they run the node
#            halves bench/peft-compare.mjs and bench/hf-compare.mjs themselves), 45 s each
# Output, all under $OUT (default ./gpu-out), 7 files at most (the device tool returns 8):
#   summary.txt (one PASS/FAIL/SKIP line per check), env.log, kernels.log, vitest.log,
#   gpu-check.log, gpu-check.json, compare.log. Exit status 1 when any check failed.
# Overrides: GPU_SESSION_BUDGET (s), TK_HARNESSES (e.g. "gemm:--no-bench int8:--no-bench"), GPU_CHECK_ARGS.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
BUDGET=${GPU_SESSION_BUDGET:-530}
T_START=$(date +%s)
DEADLINE=$((T_START + BUDGET))
export PYTHONUNBUFFERED=1 FORCE_COLOR=0 NO_COLOR=1
unset TUNEKIT_GPU_TEST_DEVICE TUNEKIT_CUDA_LIB

have() { command -v "$1" >/dev/null 2>&1; }
# tmo SECONDS CMD...: CMD under timeout where the host has it
tmo() {
  local s=$1
  shift
  if have timeout; then timeout -k 2 "$s" "$@"; else "$@"; fi
}
now() { date +%s; }
# record STATUS NAME DETAIL: one line in summary.txt (written at once: a killed run keeps it)
record() {
  local line
  line=$(printf '%-5s %-28s %s' "$1" "$2" "$3")
  echo "$line" >>"$SUMMARY"
  echo ">>> $line"
}
# run_step NAME LOG MAX_S RESERVE_S CMD...: runs CMD under a timeout of MAX_S, or less so that
# RESERVE_S seconds stay for the steps after it; its output goes to the terminal and $OUT/LOG
run_step() {
  local name=$1 log=$2 max=$3 reserve=$4
  shift 4
  local t0 t rc dt
  t0=$(now)
  t=$((DEADLINE - t0 - reserve))
  ((t > max)) && t=$max
  if ((t < 5)); then
    record SKIP "$name" "(no time left in the ${BUDGET} s budget)"
    return 0
  fi
  local cmd="$*"
  printf '\n===== %s: %s   [timeout %s s, %s s into the session]\n' "$name" "${cmd%%$'\n'*}" "$t" "$((t0 - T_START))" | tee -a "$OUT/$log"
  if have timeout; then
    timeout -k 5 "$t" "$@" 2>&1 | tee -a "$OUT/$log"
    rc=${PIPESTATUS[0]}
  else
    "$@" 2>&1 | tee -a "$OUT/$log"
    rc=${PIPESTATUS[0]}
  fi
  dt=$(($(now) - t0))
  if ((rc == 0)); then
    record PASS "$name" "(${dt} s)"
  elif ((rc == 124 || rc == 137)); then
    record FAIL "$name" "(timed out after ${t} s)"
  else
    record FAIL "$name" "(exit ${rc}, ${dt} s; see $log)"
  fi
  return 0
}
# untar_xz FILE DIR: tar -xJf, or Python's lzma where the host has no xz
untar_xz() {
  mkdir -p "$2"
  if have xz; then
    tar --no-same-owner -xJf "$1" -C "$2"
  elif have python3; then
    python3 - "$1" "$2" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], 'r:xz') as t:
    t.extractall(sys.argv[2], **({'filter': 'tar'} if hasattr(tarfile, 'tar_filter') else {}))
PY
  else
    echo "neither xz nor python3: cannot unpack $1"
    return 1
  fi
}

# ---------------------------------------------------------------- setup and env
{
  echo "===== setup ($(date -u +%FT%TZ), $(uname -srm), $(nproc 2>/dev/null) cores)"
  if ! have node && [ -f .device/env.sh ]; then
    echo "node not on PATH: sourcing .device/env.sh"
    # shellcheck disable=SC1091
    source .device/env.sh
  fi
} 2>&1 | tee -a "$OUT/env.log"
# (sourced again outside the pipeline's subshell, so that PATH reaches the steps)
if ! have node && [ -f .device/env.sh ]; then source .device/env.sh >/dev/null 2>&1; fi

setup_ok=1
if [ -f .gpu-check/cuda.tar.xz ]; then
  if untar_xz .gpu-check/cuda.tar.xz build-cuda >>"$OUT/env.log" 2>&1; then
    chmod +x build-cuda/dev/* 2>/dev/null
    echo "unpacked .gpu-check/cuda.tar.xz: $(cd build-cuda && ls -d libtunekit_cuda.so dev/* 2>/dev/null | tr '\n' ' ')" | tee -a "$OUT/env.log"
  else
    setup_ok=0
    echo "cannot unpack .gpu-check/cuda.tar.xz" | tee -a "$OUT/env.log"
  fi
else
  echo "no .gpu-check/cuda.tar.xz: using build-cuda/ as carried" | tee -a "$OUT/env.log"
fi
if [ -f .gpu-check/test-deps.tar.xz ]; then
  if untar_xz .gpu-check/test-deps.tar.xz .gpu-check/node_modules >>"$OUT/env.log" 2>&1; then
    echo "unpacked .gpu-check/test-deps.tar.xz into .gpu-check/node_modules" | tee -a "$OUT/env.log"
  else
    setup_ok=0
    echo "cannot unpack .gpu-check/test-deps.tar.xz" | tee -a "$OUT/env.log"
  fi
else
  echo "no .gpu-check/test-deps.tar.xz (pack with --with-tests): vitest will be missing" | tee -a "$OUT/env.log"
fi
if [ -d .gpu-check/node_modules ]; then
  if [ -d node_modules ] && [ ! -L node_modules ]; then
    echo "node_modules is a real directory here: left as it is" | tee -a "$OUT/env.log"
  else
    ln -sfnT .gpu-check/node_modules node_modules
  fi
fi
if ((setup_ok)); then record PASS setup "(unpacked the carried archives)"; else record FAIL setup "(see env.log)"; fi

if have nvidia-smi; then
  run_step "env: nvidia-smi -L" env.log 20 0 nvidia-smi -L
  tmo 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1 | tee -a "$OUT/env.log"
else
  record FAIL "env: nvidia-smi -L" "(nvidia-smi not found)"
fi
HAVE_NODE=0
if have node; then
  HAVE_NODE=1
  run_step "env: node --version" env.log 10 0 node --version
  run_step "env: tk.backend().cuda" env.log 30 0 node --input-type=module -e "
    const tk = await import('./dist/index.js');
    const b = tk.backend();
    console.log('cpu', JSON.stringify(b.cpu));
    console.log('cuda', JSON.stringify(b.cuda, null, 1));
    if (!b.cuda.available) { console.error('CUDA is not available: ' + (b.cuda.reason ?? '?')); process.exit(1); }"
else
  record FAIL "env: node" "(no node on PATH and no .device/env.sh: carry .device)"
fi
{
  echo "g++: $(command -v g++ || echo missing)   python3: $(command -v python3 || echo missing)   xz: $(command -v xz || echo missing)"
  have python3 && tmo 40 python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())" 2>&1 | tail -1
} 2>&1 | tee -a "$OUT/env.log"

# ---------------------------------------------------------------- kernels: build-cuda/dev harnesses
read -r -a HARNESSES <<<"${TK_HARNESSES:-gemm:--quick lora: attention:check attention:bench int8:--quick gae:}"
n=${#HARNESSES[@]}
i=0
for h in "${HARNESSES[@]}"; do
  i=$((i + 1))
  op=${h%%:*}
  args=${h#*:}
  label="kernels: $op${args:+ $args}"
  reserve=$(((n - i) * 15 + 60 + 120 + 40))
  if [ ! -x "build-cuda/dev/$op" ]; then
    record FAIL "$label" "(build-cuda/dev/$op missing: node scripts/build-cuda-dev.mjs, then pack --with-tests)"
    continue
  fi
  # shellcheck disable=SC2086
  run_step "$label" kernels.log 60 "$reserve" "build-cuda/dev/$op" $args
done

# ---------------------------------------------------------------- vitest tests/gpu
if ((HAVE_NODE)) && [ -f .gpu-check/node_modules/vitest/vitest.mjs ]; then
  if have g++; then
    run_step "vitest: tests/gpu" vitest.log 120 160 node .gpu-check/node_modules/vitest/vitest.mjs run tests/gpu --reporter=default
  else
    echo "g++ missing: tests/gpu/plumbing.test.ts (builds a host test backend) left out" | tee -a "$OUT/vitest.log"
    run_step "vitest: tests/gpu (no g++)" vitest.log 120 160 node .gpu-check/node_modules/vitest/vitest.mjs run tests/gpu/ops.test.ts tests/gpu/backend.test.ts --reporter=default
  fi
else
  record FAIL "vitest: tests/gpu" "(no node, or no .gpu-check/node_modules/vitest: pack with --with-tests)"
fi

# ---------------------------------------------------------------- bench/gpu-check.mjs
if ((HAVE_NODE)); then
  # shellcheck disable=SC2086
  run_step "gpu-check" gpu-check.log 240 40 node bench/gpu-check.mjs --json "$OUT/gpu-check.json" ${GPU_CHECK_ARGS:-}
else
  record FAIL gpu-check "(no node)"
fi

# ---------------------------------------------------------------- PyTorch / PEFT cross-checks
if ! have python3; then
  record FAIL compare "(no python3)"
elif ((!HAVE_NODE)); then
  record FAIL compare "(no node for the tunekit halves)"
else
  NODE_BIN=$(command -v node)
  if [ -f bench/peft-compare.py ]; then
    run_step "compare: peft-compare.py" compare.log 45 45 python3 bench/peft-compare.py --node "$NODE_BIN"
  fi
  if [ -f bench/hf-compare.py ]; then
    run_step "compare: hf-compare.py" compare.log 45 0 python3 bench/hf-compare.py --node "$NODE_BIN" --devices cpu,cuda
  fi
fi

# ---------------------------------------------------------------- summary
total=$(($(now) - T_START))
echo "total $total s (budget $BUDGET s)" >>"$SUMMARY"
{
  echo
  echo "================================ summary ($OUT)"
  cat "$SUMMARY"
  if grep -q '^FAIL' "$SUMMARY"; then
    echo "---------------- failures (last lines of their logs)"
    for log in env kernels vitest gpu-check compare; do
      f=$OUT/$log.log
      [ -f "$f" ] || continue
      grep -E 'FAIL|Error|error:|✗|×|failed|Traceback|not available' "$f" | grep -Ev '^(>>>|=====)' | tail -n 6 | sed "s/^/[$log] /"
    done
  fi
} | cut -c1-220
grep -q '^FAIL' "$SUMMARY" && exit 1
exit 0
