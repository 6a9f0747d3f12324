#!/bin/sh
# Push the same ~200 MB multi-arch layout to fresh local registries with
# netshoot-build's registry client and with skopeo, then push again.
# Needs docker-registry and skopeo. BENCH_MB=N changes the size;
# BENCH_PROFILE=release (default) or dev picks the cargo profile.
set -eu
cd "$(dirname "$0")/../../.."
profile="${BENCH_PROFILE:-release}"
exec cargo run --quiet --profile "$profile" -p registry --example push_vs_skopeo
