#!/usr/bin/env bash
# `make fuzz`: builds every fuzz target with libFuzzer's coverage
# instrumentation on the stable toolchain and runs each, one after the
# other, for FUZZ_SECONDS (default 30). Then prints one line per target.
#
#   FUZZ_SECONDS=300 make fuzz                 # longer
#   FUZZ_TARGETS="deb inrelease" make fuzz     # some targets only
#
# Why no cargo-fuzz: its build needs nightly for the sanitizers. The
# instrumentation itself is stable rustc: `-C passes=sancov-module` and the
# sanitizer-coverage `-C llvm-args` below are what cargo-fuzz passes without
# a sanitizer, and libfuzzer-sys compiles libFuzzer with the host's C++
# compiler. Panics (the bugs we look for: a parser must return an error,
# never panic) abort the process, so no AddressSanitizer is needed for
# safe Rust.
#
# What it leaves: the growing corpus in fuzz/corpus/TARGET, crash inputs in
# fuzz/artifacts/TARGET, a log per target in target/fuzz/logs. Inputs of
# fixed crashes are kept in fuzz/regressions/TARGET and replayed each run
# (and by `cargo test` in fuzz/). A crash is reproduced with
#   target/fuzz/x86_64-unknown-linux-gnu/release/TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
seconds="${FUZZ_SECONDS:-30}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$here/../target/fuzz}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$CARGO_TARGET_DIR/$triple/release"
logs="$CARGO_TARGET_DIR/logs"

all=()
for f in fuzz_targets/*.rs; do
  all+=("$(basename "$f" .rs)")
done
if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  targets=("${all[@]}")
fi

# libFuzzer is C++: libfuzzer-sys builds it with the host's compiler.
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "fuzz: apt-get install g++" >&2
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi

# The flags cargo-fuzz uses without a sanitizer; `--target` keeps them
# off build scripts and proc macros. Its own target folder: these flags
# never reach target/release or target/debug.
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing"
bins=()
for t in "${targets[@]}"; do
  [ -f "fuzz_targets/$t.rs" ] || { echo "fuzz: no target $t (have: ${all[*]})" >&2; exit 2; }
  bins+=(--bin "$t")
done
echo "fuzz: building ${#targets[@]} targets (instrumented, into $CARGO_TARGET_DIR)" >&2
cargo build --release --features libfuzzer --target "$triple" "${bins[@]}"

mkdir -p "$logs"
failed=0
total=0
summary=()
for t in "${targets[@]}"; do
  seeds="$CARGO_TARGET_DIR/seeds/$t"
  rm -rf "$seeds"
  if ! NETSHOOT_FUZZ_SEEDS="$seeds" "$bin_dir/$t" >"$logs/$t.seeds.log" 2>&1; then
    cat "$logs/$t.seeds.log" >&2
    echo "fuzz: $t: writing the seeds failed" >&2
    exit 1
  fi
  mkdir -p "corpus/$t" "artifacts/$t" "regressions/$t"
  before="$(ls "artifacts/$t" | wc -l)"
  echo "fuzz: $t for ${seconds}s" >&2
  start=$(date +%s)
  set +e
  "$bin_dir/$t" "corpus/$t" "$seeds" "regressions/$t" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$logs/$t.log" 2>&1 &
  pid=$!
  wait "$pid"
  rc=$?
  set -e
  # Scratch folders the harnesses made in memory (src/lib.rs, scratch_dir).
  rm -rf /dev/shm/netshoot-fuzz-"$pid"-*
  took=$(( $(date +%s) - start ))
  total=$(( total + took ))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1 | cut -d' ' -f2)"
  corp="$(grep -o 'corp: [0-9]*' "$logs/$t.log" | tail -1 | cut -d' ' -f2)"
  after="$(ls "artifacts/$t" | wc -l)"
  if [ "$rc" -eq 0 ] && [ "$after" -eq "$before" ]; then
    result="ok"
  else
    failed=$(( failed + 1 ))
    art="$(grep -o "artifacts/$t/[a-z]*-[0-9a-f]*" "$logs/$t.log" | tail -1)"
    result="FOUND ${art:-exit $rc} (log: $logs/$t.log)"
  fi
  summary+=("$(printf '%-18s %5ss %12s execs  cov %-6s corpus %-5s %s' "$t" "$took" "${execs:-?}" "${cov:-?}" "${corp:-?}" "$result")")
done

echo
echo "fuzz summary (${seconds}s per target, ${total}s in all):"
printf '  %s\n' "${summary[@]}"
if [ "$failed" -gt 0 ]; then
  echo "fuzz: $failed target(s) found a crash, hang or OOM; fix the parser, keep the input in fuzz/regressions/TARGET and as a test in its crate" >&2
  exit 1
fi
