#!/usr/bin/env bash
# The archive of extra Debian packages for the guest (sgiov vm --packages):
#   scripts/guest-packages.sh P1 [P2 ...]
# builds it from the trixie tree if it is not cached (progress on stderr)
# and prints its path. Exit status 2: a name apt does not know.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
source "$here/steps/trixie-tree.sh"
source "$here/steps/guest-userland.sh"
guest_packages "$@"
