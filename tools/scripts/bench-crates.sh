#!/usr/bin/env bash
# Cold and warm build time of the `cargo` source, per tool and target.
#
# For each tool (trippy, websocat by default) and target (amd64, arm64) a
# one-entry spec is locked and built twice with `netshoot-build`: first into
# an empty cache (cold: cargo fetches and compiles everything), then again
# into the same cache (warm: the binaries come from the cache, no cargo
# runs). Wall time and peak RSS come from /usr/bin/time. Results are
# appended to bench/crates.md. Not run by the tests: a cold build of one
# tool takes minutes on a small machine.
#
# Environment:
#   TOOLS    space-separated "name@version[:features[:no-default]]" entries
#   TARGETS  space-separated platforms (default "linux/amd64 linux/arm64")
#   BIN      the netshoot-build binary (default: built with --release)
set -euo pipefail
cd "$(dirname "$0")/../.."

# The versions and features of tools/netshoot.toml (websocat's TLS is
# OpenSSL, compiled statically from the openssl-src crate).
TOOLS=${TOOLS:-"trippy@0.13.0 websocat@1.14.1:vendored_openssl,openssl-probe oha@1.16.0"}
TARGETS=${TARGETS:-"linux/amd64 linux/arm64"}
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p netshoot-build
  BIN=$PWD/target/release/netshoot-build
fi
WORK=$(mktemp -d /tmp/netshoot-bench-crates.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p tools/bench
REPORT=tools/bench/crates.md

# "elapsed-seconds peak-rss-kB", or "failed" with the last line of output.
measure() {
  local log=$WORK/last.log
  if /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$log" 2>&1; then
    cat "$WORK/time"
  else
    echo "failed: $(tail -1 "$log")"
  fi
}

{
  echo
  echo "## cargo source build times ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(rustc -V))"
  echo
  echo "| tool | version | target | cold s | cold peak RSS kB | warm s |"
  echo "| --- | --- | --- | ---: | ---: | ---: |"
} >>"$REPORT"

for tool in $TOOLS; do
  IFS=: read -r namever features nodefault <<<"$tool"
  name=${namever%@*}
  version=${namever#*@}
  for target in $TARGETS; do
    dir=$WORK/$name-${target//\//-}
    mkdir -p "$dir"
    {
      echo "platforms = [\"$target\"]"
      echo "[image]"
      echo "name = \"bench\""
      echo "tag = \"bench\""
      echo "[[cargo]]"
      echo "name = \"$name\""
      echo "version = \"$version\""
      if [ -n "$features" ]; then
        echo "features = [\"${features//,/\", \"}\"]"
      fi
      if [ -n "$nodefault" ]; then
        echo "no_default_features = true"
      fi
    } >"$dir/spec.toml"
    cache=$dir/cache
    "$BIN" lock --spec "$dir/spec.toml" >/dev/null
    cold=$(measure "$BIN" build -q --spec "$dir/spec.toml" --out "$dir/out" --cache "$cache")
    warm=$(measure "$BIN" build -q --spec "$dir/spec.toml" --out "$dir/out2" --cache "$cache")
    read -r cold_s cold_rss <<<"$cold"
    read -r warm_s _ <<<"$warm"
    echo "| $name | $version | $target | $cold_s | ${cold_rss:-} | $warm_s |" | tee -a "$REPORT"
  done
done
echo "report: $REPORT"
