# Host packages the setup itself needs: debootstrap for the trixie tree,
# meson/ninja/json-c to build libvfio-user, cpio to pack the initramfs;
# and libdeflate0, whose CRC-32 the emulator's fabric frames use (7x zlib's).
# clang-format checks the C side's formatting (npm run lint). openssl makes
# the fabric's secret and certificates (scripts/fabric-certs.sh). The bench's
# plots (PNG, rendered by resvg) take their text from DejaVu.
HOST_PACKAGES=(debootstrap meson ninja-build pkg-config libjson-c-dev libcmocka-dev cpio xz-utils gzip curl ca-certificates iproute2 libdeflate0 clang-format openssl fonts-dejavu-core)

host_packages() {
  local missing=()
  for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then echo "all ${#HOST_PACKAGES[@]} present"; return 0; fi
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
  echo "installed ${missing[*]}"
}
