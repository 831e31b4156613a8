#!/usr/bin/env bash
# npm run lint: import layers (dependency-cruiser), TypeScript format and lint
# (Biome), C format (clang-format). Exits non-zero on the first kind that fails;
# `scripts/lint.sh --fix` rewrites formatting instead of checking it.
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0; [ "${1:-}" = "--fix" ] && fix=1
# The linters are installed by the setup's first two steps (clang-format from
# Debian, Biome and dependency-cruiser from npm); run them if anything is missing.
source scripts/lib.sh
for s in scripts/steps/host-packages.sh scripts/steps/npm-deps.sh; do source "$s"; done
step host-packages host_packages
step npm-deps npm_deps
# Generated files are left as their generator writes them.
mapfile -t cfiles < <(git ls-files '*.c' '*.h' | grep -v '/sgiov_abi\.h$')
rc=0
echo "[lint] layers (dependency-cruiser)" >&2
npx --no-install depcruise --config .dependency-cruiser.cjs emulator qemu test || rc=1
if [ $fix -eq 1 ]; then
  npx --no-install biome check --write . || rc=1
  clang-format -i "${cfiles[@]}"
else
  echo "[lint] TypeScript (biome ci)" >&2
  npx --no-install biome ci . || rc=1
  echo "[lint] C (clang-format --dry-run)" >&2
  clang-format --dry-run --Werror "${cfiles[@]}" || rc=1
fi
exit $rc
