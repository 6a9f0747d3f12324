#!/usr/bin/env bash
# The static toolbox (`build --variant static`): cold and warm build time
# per [[source]] entry and platform, reproducibility of a second cold build
# on both platforms, and the image's compressed size per platform.
#
# Three builds of the default spec's static variant, all platforms:
#   1. cold: an empty netshoot cache and an empty zig cache (zig compiles
#      musl for each target too);
#   2. warm: the same caches again (nothing compiles);
#   3. cold again: other empty caches; its image must equal the first.
# Per-entry compile seconds come from the build's own log lines. Results
# are appended to bench/static.md. Not run by the tests (about 10 minutes
# per cold build on 2 cores). AGAIN=0 skips the third build (the tests
# check reproducibility too).
set -euo pipefail
cd "$(dirname "$0")/../.."
SPEC=${SPEC:-tools/netshoot.toml}
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p netshoot-build
  BIN=$PWD/target/release/netshoot-build
fi
WORK=$(mktemp -d /tmp/netshoot-bench-static.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p tools/bench
REPORT=tools/bench/static.md

build() { # build NAME: cache, zig cache and layout under $WORK/NAME
  local d=$WORK/$1
  mkdir -p "$d"
  /usr/bin/time -f "%e" -o "$d/time" \
    env NETSHOOT_CACHE="$d/cache" NETSHOOT_ZIG_CACHE="$d/zig" \
    "$BIN" build --locked --variant static --spec "$SPEC" --out "$d/layout" >"$d/log" 2>&1
}

# Total compressed bytes of one platform's image (its manifest's layers
# and config) under the layout's only tag.
size_of() { # size_of LAYOUT ARCH
  python3 - "$1" "$2" <<'EOF'
import json, sys, os
layout, arch = sys.argv[1], sys.argv[2]
blob = lambda d: json.load(open(os.path.join(layout, "blobs/sha256", d.split(":")[1])))
idx = json.load(open(os.path.join(layout, "index.json")))
top = [m for m in idx["manifests"] if "org.opencontainers.image.ref.name" in m.get("annotations", {})][0]
for m in blob(top["digest"])["manifests"]:
    if m["platform"]["architecture"] == arch:
        man = blob(m["digest"])
        print(sum(l["size"] for l in man["layers"]) + man["config"]["size"])
EOF
}

tag_digest() {
  python3 -c 'import json,sys; i=json.load(open(sys.argv[1]+"/index.json")); print([m["digest"] for m in i["manifests"] if "org.opencontainers.image.ref.name" in m.get("annotations",{})][0])' "$1"
}

build cold
build_warm() {
  local d=$WORK/warm
  mkdir -p "$d"
  /usr/bin/time -f "%e" -o "$d/time" \
    env NETSHOOT_CACHE="$WORK/cold/cache" NETSHOOT_ZIG_CACHE="$WORK/cold/zig" \
    "$BIN" build --locked --variant static --spec "$SPEC" --out "$d/layout" >"$d/log" 2>&1
}
build_warm
same="not checked (AGAIN=0)"
if [ "${AGAIN:-1}" != 0 ]; then
  build again
  same=no
  [ "$(tag_digest "$WORK/cold/layout")" = "$(tag_digest "$WORK/again/layout")" ] && same=yes
else
  mkdir -p "$WORK/again" && : >"$WORK/again/log" && echo "-" >"$WORK/again/time"
fi

{
  echo
  echo "## $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  echo "Whole static variant, all platforms: cold $(cat "$WORK/cold/time") s, warm $(cat "$WORK/warm/time") s, second cold $(cat "$WORK/again/time") s."
  echo "Second cold build gives the same index: $same ($(tag_digest "$WORK/cold/layout"))."
  echo "Warm build compiled: $(grep -c '^compile source' "$WORK/warm/log" || true) entries."
  echo
  echo "| entry | platform | cold s | second cold s |"
  echo "|---|---|---|---|"
  grep '^compiled source' "$WORK/cold/log" | while read -r _ _ name version _ plat _ secs _; do
    again=$(grep "^compiled source $name $version for $plat in" "$WORK/again/log" | awk '{print $(NF-1)}' || true)
    echo "| $name $version | $plat | $secs | $again |"
  done
  echo
  for arch in amd64 arm64; do
    echo "Compressed size, $arch: $(size_of "$WORK/cold/layout" $arch) bytes."
  done
} | tee -a "$REPORT"
