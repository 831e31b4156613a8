#!/usr/bin/env bash
# Installs and builds everything sgiov needs, idempotently, caching outside
# the checkout in ${SGIOV_CACHE:-$HOME/.cache/sgiov}. One line per step.
#   scripts/setup.sh            host packages, npm deps, libvfio-user, trixie tree, guest image, guest userland
#   scripts/setup.sh --host     everything but the guest (no VM needed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
for s in "$here"/steps/*.sh; do source "$s"; done

t0=$SECONDS
step host-packages host_packages
step npm-deps npm_deps
step libvfio-user libvfio_user
if [ "${1:-}" != "--host" ]; then
  step trixie-tree trixie_tree
  step guest-image guest_image
  step guest-userland guest_userland
fi
echo "[setup] done in $((SECONDS - t0))s (cache: $SGIOV_CACHE)" >&2
