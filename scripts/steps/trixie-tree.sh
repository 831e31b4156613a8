# A Debian trixie tree (debootstrap, minbase) holding what the host's
# bookworm cannot give: QEMU >= 10.1 with the vfio-user client (from
# trixie-backports), the guest kernel with its matching headers, a static
# busybox for the initramfs, and gcc/make for the guest module and tools.
# QEMU runs straight from the tree through its own ld.so (see qemu/).
TREE="$SGIOV_CACHE/trixie"
TREE_PACKAGES_VERSION=1   # bump when the package list below changes

in_tree() { chroot "$TREE" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

trixie_tree() {
  local mirror; mirror=$(debian_mirror)
  local want="v$TREE_PACKAGES_VERSION ${SGIOV_GUEST_KERNEL:-auto}"
  if stamp_ok trixie-tree "$want" && [ -f "$TREE/.sgiov-kver" ]; then
    echo "cached: kernel $(cat "$TREE/.sgiov-kver"), $(cat "$TREE/.sgiov-qemu")"; return 0
  fi
  if [ ! -x "$TREE/usr/bin/apt-get" ] || [ ! -f "$TREE/.sgiov-debootstrap-done" ]; then
    rm -rf "$TREE"
    debootstrap --variant=minbase trixie "$TREE" "$mirror"
    touch "$TREE/.sgiov-debootstrap-done"
  fi
  cat >"$TREE/etc/apt/sources.list" <<SRC
deb $mirror trixie main
deb $mirror trixie-updates main
deb $mirror trixie-backports main
SRC
  rm -f "$TREE/etc/apt/sources.list.d/"*
  # No initramfs for the tree's own kernel: the guest boots our initramfs.
  mkdir -p "$TREE/etc/initramfs-tools"
  printf 'update_initramfs=no\n' >"$TREE/etc/initramfs-tools/update-initramfs.conf"
  in_tree apt-get update
  # The guest kernel: trixie's own LTS (steadier than backports' 7.x), pinned
  # on first resolution and recorded; SGIOV_GUEST_KERNEL overrides.
  local kver="${SGIOV_GUEST_KERNEL:-}"
  [ -n "$kver" ] || kver=$(cat "$TREE/.sgiov-kver" 2>/dev/null || true)
  if [ -z "$kver" ]; then
    kver=$(in_tree apt-cache depends -t trixie linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { sub("linux-image-", "", $2); print $2; exit }')
  fi
  [ -n "$kver" ] || { echo "could not resolve the trixie kernel version"; return 1; }
  # Kernel and headers in one apt run, so their versions match.
  in_tree apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold \
    "linux-image-$kver" "linux-headers-$kver" busybox-static gcc make libc6-dev
  in_tree apt-get install -y --no-install-recommends -t trixie-backports qemu-system-x86
  in_tree apt-get clean
  [ -f "$TREE/boot/vmlinuz-$kver" ] || { echo "kernel image /boot/vmlinuz-$kver missing"; return 1; }
  local qemu_ver; qemu_ver=$(in_tree dpkg-query -W -f='${Version}' qemu-system-x86)
  grep -qa vfio-user-pci "$TREE/usr/bin/qemu-system-x86_64" || { echo "qemu $qemu_ver has no vfio-user-pci"; return 1; }
  echo "$kver" >"$TREE/.sgiov-kver"
  echo "qemu-system-x86 $qemu_ver" >"$TREE/.sgiov-qemu"
  stamp_set trixie-tree "$want"
  echo "kernel $kver, qemu-system-x86 $qemu_ver"
}
