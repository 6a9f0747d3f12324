#!/usr/bin/env bash
# `make bench`: side-by-side measurements, written to bench/report.md.
#
# Layer writing: a ~200 MB tree (a copy of the host's /usr/lib/<triplet>,
# topped up to the size) written as one gzip layer by `netshoot-build
# build`, against `tar --sort=name -cf - DIR | gzip -6`, in the same run,
# alternating, 3 rounds each; wall time and peak RSS from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p netshoot-build
BIN=$PWD/target/release/netshoot-build
WORK=$(mktemp -d /tmp/netshoot-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p tools/bench
REPORT=tools/bench/report.md

TREE=$WORK/tree
mkdir -p "$TREE"
SRC=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# About 200 MB of real files: the host's libraries, folder by folder, in
# name order, until the size is reached.
size_mb() { du -sm "$1" | cut -f1; }
for f in $(ls "$SRC" | sort); do
  [ "$(size_mb "$TREE")" -ge 200 ] && break
  cp -a "$SRC/$f" "$TREE/" 2>/dev/null || true
done
MB=$(size_mb "$TREE")

cat > "$WORK/spec.toml" <<SPEC
platforms = ["linux/amd64"]
[image]
name = "bench"
tag = "bench"
[[local]]
src = "tree"
dest = "/data"
SPEC

t() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
ours=(); theirs=(); ours_rss=(); theirs_rss=()
for round in 1 2 3; do
  # A fresh cache every round: the layer cache would otherwise skip the
  # compression being measured.
  rm -rf "$WORK/out" "$WORK/cache"
  read -r s r < <(t "$BIN" build -q --spec "$WORK/spec.toml" --out "$WORK/out" --cache "$WORK/cache")
  ours+=("$s"); ours_rss+=("$r")
  read -r s r < <(t sh -c "tar --sort=name -cf - -C '$TREE' . | gzip -6 > '$WORK/ref.tar.gz'")
  theirs+=("$s"); theirs_rss+=("$r")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
ro=$(median "${ours_rss[@]}"); rt=$(median "${theirs_rss[@]}")
ratio=$(python3 -c "print(f'{$mt/$mo:.2f}')")
osize=$(du -b "$WORK"/out/blobs/sha256/* | sort -n | tail -1 | cut -f1)
tsize=$(stat -c %s "$WORK/ref.tar.gz")
{
  echo "# netshoot-build benchmarks ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
  echo
  echo "## Layer writing, ${MB} MB tree, gzip level 6 (median of 3, alternating)"
  echo
  echo "| | wall s | peak RSS KB | output bytes |"
  echo "|---|---|---|---|"
  echo "| netshoot-build build | $mo | $ro | $osize |"
  echo "| tar --sort=name \| gzip -6 | $mt | $rt | $tsize |"
  echo
  echo "Speed-up: ${ratio}x. Raw: ours ${ours[*]}; tar|gzip ${theirs[*]}."
} | tee "$REPORT"

# The full default image (issues 3 and 7): lock time, a cold build (empty
# payload and layer caches; the .debs already downloaded, linked from the
# user's cache), a warm rebuild with nothing changed, a rebuild after one
# package changes, peak RSS, and the compressed size per platform with
# gzip and zstd.
USER_CACHE=${NETSHOOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netshoot-build}
IMG=$WORK/img
mkdir -p "$IMG/spec"
cp -a tools/netshoot.toml tools/netshoot.lock tools/files tools/keyrings "$IMG/spec/"
read -r lock_s lock_rss < <(t "$BIN" lock -q --spec "$IMG/spec/netshoot.toml")
seed() {
  mkdir -p "$1/blobs/sha256"
  if [ -d "$USER_CACHE/blobs/sha256" ]; then
    find "$USER_CACHE/blobs/sha256" -maxdepth 1 -type f -name '[0-9a-f]*' -exec ln -f {} "$1/blobs/sha256/" \; 2>/dev/null || true
  fi
  # Compiled tools too: a cold build here means no payload or layer
  # cache, not a 15-minute compile (make bench-crates measures that).
  if [ -d "$USER_CACHE/crates" ]; then
    cp -a "$USER_CACHE/crates" "$1/" 2>/dev/null || true
  fi
}
seed "$IMG/cache"
read -r cold_s cold_rss < <(t "$BIN" build -q --spec "$IMG/spec/netshoot.toml" --out "$IMG/out" --cache "$IMG/cache")
# Warm: every object is checked against its digest on use; stamps skip
# the hashing of what nobody wrote since it was checked. Median of 3,
# then once with the stamps dropped (everything hashed again).
warm=()
for _ in 1 2 3; do
  read -r s r < <(t "$BIN" build -q --spec "$IMG/spec/netshoot.toml" --out "$IMG/out" --cache "$IMG/cache")
  warm+=("$s"); warm_rss=$r
done
warm_s=$(printf '%s\n' "${warm[@]}" | sort -n | sed -n 2p)
rm -rf "$IMG/cache/stamps"
read -r rehash_s rehash_rss < <(t "$BIN" build -q --spec "$IMG/spec/netshoot.toml" --out "$IMG/out" --cache "$IMG/cache")
# One package fewer (whois), relocked outside the timing.
sed -i 's/"bind9-dnsutils", "ldnsutils", "whois",/"bind9-dnsutils", "ldnsutils",/' "$IMG/spec/netshoot.toml"
"$BIN" lock -q --spec "$IMG/spec/netshoot.toml"
read -r one_s one_rss < <(t "$BIN" build -q --spec "$IMG/spec/netshoot.toml" --out "$IMG/out" --cache "$IMG/cache")
sizes() {
  "$BIN" inspect --json --layout "$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(" ".join("%s=%.1fMB/%dlayers" % (i["platform"], i["compressed_size"] / 1e6, len(i["layers"])) for i in r["images"]))
'
}
gz_sizes=$(sizes "$IMG/out" dev)
seed "$IMG/cache-z"
"$BIN" build -q --compression zstd --spec "$IMG/spec/netshoot.toml" --out "$IMG/out-z" --cache "$IMG/cache-z" >/dev/null
zs_sizes=$(sizes "$IMG/out-z" dev)
{
  echo
  echo "## Full default image (all platforms)"
  echo
  echo "| step | wall s | peak RSS KB |"
  echo "|---|---|---|"
  echo "| lock (indexes fetched and verified) | $lock_s | $lock_rss |"
  echo "| cold build (no payload or layer cache; .debs and compiled tools already there) | $cold_s | $cold_rss |"
  echo "| warm rebuild, nothing changed (median of 3: ${warm[*]}) | $warm_s | $warm_rss |"
  echo "| warm rebuild, stamps dropped (every object hashed again) | $rehash_s | $rehash_rss |"
  echo "| rebuild after one package change | $one_s | $one_rss |"
  echo
  echo "Compressed size per platform: gzip $gz_sizes; zstd $zs_sizes."
} | tee -a "$REPORT"

# Push (issue 5): the same multi-arch layout to fresh local registries with
# netshoot-build's client and with skopeo, side by side, then a re-push.
{
  echo
  echo "## Push, ~200 MB multi-arch layout, local docker-registry"
  echo
  echo '```'
  sh builder/registry/benches/push_vs_skopeo.sh 2>&1 | tail -20
  echo '```'
} | tee -a "$REPORT"
