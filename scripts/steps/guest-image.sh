# The guest image: sgiov.ko, libsgiov.a, the guest tools (static, linked
# against it) built for the trixie tree's kernel (inside the tree, with its
# gcc and headers), packed with qemu/init
# and the tree's static busybox (and the ABI as shell definitions, at
# /etc/sgiov_abi.sh) into a gzipped newc initramfs at
# $SGIOV_CACHE/guest/<key>/initramfs.cpio.gz. <key> hashes every input, so
# an unchanged image is reused; $SGIOV_CACHE/guest/image[-<checkout>].json
# tells the harness what to boot (scripts/lib.sh: guest_json).

# Hashes the inputs: the sources under guest-driver/ (build outputs left by
# a developer's `make` excluded), qemu/init, this script, busybox, the kernel.
guest_image_key() {
  local tree="$1" kver="$2"
  {
    (cd "$SGIOV_ROOT" && find guest-driver qemu/init -type f \
      ! -name '*.o' ! -name '*.ko' ! -name '*.mod' ! -name '*.mod.c' ! -name '.*.cmd' \
      ! -name '*.a' ! -name 'Module.symvers' ! -name 'modules.order' ! -path 'guest-driver/tools/bin/*' \
      -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    (cd "$SGIOV_ROOT" && sha256sum scripts/steps/guest-image.sh)
    sha256sum <"$tree/usr/bin/busybox"
    echo "kver $kver"
  } | sha256sum | cut -c1-16
}

guest_image_json() { # KERNEL INITRAMFS KVER TREE KEY
  guest_json image "$(printf '{"kernel": "%s", "initramfs": "%s", "kver": "%s", "tree": "%s", "key": "%s"}' \
    "$1" "$2" "$3" "$4" "$5")"
}

guest_image() {
  local tree; tree="$(cd "${TREE:-$SGIOV_CACHE/trixie}" && pwd)"
  [ -f "$tree/.sgiov-kver" ] || { echo "no trixie tree at $tree (run the trixie-tree step)"; return 1; }
  local kver; kver=$(cat "$tree/.sgiov-kver")
  local kernel="$tree/boot/vmlinuz-$kver"
  [ -f "$kernel" ] || { echo "kernel $kernel missing"; return 1; }
  [ -d "$tree/lib/modules/$kver/build" ] || { echo "kernel headers for $kver missing in the tree"; return 1; }
  [ -x "$tree/usr/bin/busybox" ] || { echo "busybox missing in the tree (busybox-static)"; return 1; }

  local key; key=$(guest_image_key "$tree" "$kver")
  local dir="$SGIOV_CACHE/guest"
  local out="$dir/$key"
  local img="$out/initramfs.cpio.gz"
  mkdir -p "$dir"
  echo "kernel $kver, key $key"
  if [ -f "$img" ]; then
    guest_image_json "$kernel" "$img" "$kver" "$tree" "$key"
    echo "cached $key: $(du -k "$img" | cut -f1) KiB, kernel $kver"
    return 0
  fi

  # Leftovers of failed runs (named after the PID of their setup run).
  remove_leftovers "$tree"/build/sgiov.* "$dir"/.tmp.*

  # Build inside the tree, in a fresh copy of guest-driver/ private to this
  # run (/build/sgiov.PID; removed afterwards, kept on failure for a look).
  local src="$SGIOV_ROOT/guest-driver" bt="/build/sgiov.$$"
  local b="$tree$bt"
  rm -rf "$b"
  mkdir -p "$b/out"
  cp -r "$src/include" "$src/kmod" "$src/lib" "$src/tools" "$src/preload" "$b/"
  rm -rf "$b/tools/bin"
  (cd "$b/kmod" && rm -f ./*.o ./*.ko ./*.mod ./*.mod.c ./.*.cmd Module.symvers modules.order)
  rm -f "$b"/lib/*.o "$b"/lib/*.a
  echo "== building sgiov.ko against $kver in $b"
  in_tree make -C "/lib/modules/$kver/build" M="$bt/kmod" modules
  [ -f "$b/kmod/sgiov.ko" ] || { echo "sgiov.ko was not built"; return 1; }
  if [ -x "$tree/usr/sbin/modinfo" ] || [ -x "$tree/usr/bin/modinfo" ] || [ -x "$tree/sbin/modinfo" ]; then
    local vermagic; vermagic=$(in_tree modinfo -F vermagic "$bt/kmod/sgiov.ko")
    echo "vermagic: $vermagic"
    case "$vermagic" in "$kver "*) ;; *) echo "sgiov.ko vermagic '$vermagic' does not match $kver"; return 1 ;; esac
  fi
  cp "$b/kmod/sgiov.ko" "$b/out/sgiov.ko"
  in_tree strip --strip-debug "$bt/out/sgiov.ko"

  # libsgiov: a static library over /dev/sgiov.
  echo "== building libsgiov.a"
  in_tree gcc -O2 -Wall -Wextra -I"$bt/include" -c -o "$bt/lib/libsgiov.o" "$bt/lib/libsgiov.c"
  in_tree ar rcs "$bt/lib/libsgiov.a" "$bt/lib/libsgiov.o"

  # Every tools/*.c is one static program, except those marked
  # "sgiov-build: dynamic" (linked against the userland's glibc, so that
  # LD_PRELOAD acts on them: sgiov-conform).
  local c name link tools=()
  for c in "$b"/tools/*.c; do
    [ -f "$c" ] || continue
    name=$(basename "$c" .c)
    link=-static
    grep -q 'sgiov-build: dynamic' "$c" && link=
    echo "== building $name${link:+ (static)}"
    in_tree gcc $link -O2 -Wall -Wextra -I"$bt/include" -I"$bt/lib" \
      -o "$bt/out/$name" "$bt/tools/$name.c" "$bt/lib/libsgiov.a"
    tools+=("$name")
  done

  # The CNI plugin (/opt/cni/bin/sgiov): static, with json-c from the tree.
  if ! in_tree dpkg-query -W -f='${Status}' libjson-c-dev 2>/dev/null | grep -q 'install ok installed'; then
    echo "== installing libjson-c-dev in the tree (the CNI plugin's JSON)"
    in_tree apt-get install -y --no-install-recommends libjson-c-dev >/dev/null ||
      { in_tree apt-get update >/dev/null && in_tree apt-get install -y --no-install-recommends libjson-c-dev >/dev/null; } ||
      { echo "cannot install libjson-c-dev in the tree"; return 1; }
  fi
  echo "== building the CNI plugin sgiov"
  mkdir -p "$b/cni" && cp "$src"/cni/*.c "$b/cni/"
  in_tree gcc -static -O2 -Wall -Wextra -I"$bt/include" -o "$bt/out/sgiov-cni" "$bt/cni/sgiov-cni.c" -ljson-c -lm
  # The preload library (dynamic: the userland's glibc loads it; sgiov-run sets LD_PRELOAD).
  echo "== building libsgiov-preload.so"
  in_tree gcc -shared -fPIC -O2 -Wall -Wextra -I"$bt/include" \
    -o "$bt/out/libsgiov-preload.so" "$bt/preload/sgiov-preload.c" -ldl
  in_tree gcc -O2 -Wall -Wextra -o "$bt/out/sgiov-sockopt" "$bt/preload/sgiov-sockopt.c"

  # Assemble the initramfs in a scratch directory next to its destination.
  local tmp="$dir/.tmp.$key.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/root"/{bin,sbin,usr/bin,usr/sbin,lib/modules,dev,proc,sys,tmp,root}
  local r="$tmp/root"
  install -m 0755 "$SGIOV_ROOT/qemu/init" "$r/init"
  install -m 0755 "$tree/usr/bin/busybox" "$r/bin/busybox"
  mkdir -p "$r/etc"
  install -m 0644 "$src/include/sgiov_abi.sh" "$r/etc/sgiov_abi.sh"
  install -m 0644 "$b/out/sgiov.ko" "$r/lib/modules/sgiov.ko"
  for name in "${tools[@]}"; do install -m 0755 "$b/out/$name" "$r/usr/bin/$name"; done
  mkdir -p "$r/opt/cni/bin" "$r/etc/cni/net.d"
  install -m 0755 "$b/out/sgiov-cni" "$r/opt/cni/bin/sgiov"
  install -m 0644 "$src"/cni/*.conflist "$r/etc/cni/net.d/"
  install -D -m 0755 "$b/out/libsgiov-preload.so" "$r/usr/lib/sgiov/libsgiov-preload.so"
  install -D -m 0644 "$src/preload/preload.conf" "$r/etc/sgiov/preload.conf"
  install -m 0755 "$b/out/sgiov-sockopt" "$r/usr/bin/sgiov-sockopt"
  # The kernel opens /dev/console for /init before devtmpfs is mounted.
  mknod -m 0600 "$r/dev/console" c 5 1 || echo "warning: cannot create dev/console (not root?)"
  mknod -m 0666 "$r/dev/null" c 1 3 || true
  (cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -9 -n >"$tmp/initramfs.cpio.gz"
  gzip -t "$tmp/initramfs.cpio.gz"
  rm -rf "$r" "$b"
  if ! mv -T "$tmp" "$out" 2>/dev/null; then
    rm -rf "$tmp"   # built concurrently by another run: keep that one
  fi
  [ -f "$img" ] || { echo "initramfs missing at $img"; return 1; }

  # Keep the newest dozen images, drop older ones: parallel worktrees each build their own.
  local old
  for old in $(ls -1dt "$dir"/*/ 2>/dev/null | tail -n +13); do
    [ "${old%/}" = "$out" ] || rm -rf "${old%/}"
  done

  guest_image_json "$kernel" "$img" "$kver" "$tree" "$key"
  echo "built $key: $(du -k "$img" | cut -f1) KiB, sgiov.ko + ${tools[*]} + /opt/cni/bin/sgiov, kernel $kver"
}
