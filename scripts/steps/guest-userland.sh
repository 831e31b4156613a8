# The guest's glibc userland: real programs (iperf3, NPtcp, nginx, wrk,
# curl, openssl, iproute2) from the trixie tree's Debian packages, packed as a
# second gzipped newc archive that the harness concatenates after the guest
# image's initramfs (Linux unpacks each archive in turn; later files win).
# The busybox /init stays: the userland adds programs, it replaces nothing
# /init uses.
#
# The packages are fetched inside the tree without installing them there
# (`apt-get download`, `dpkg-deb -x` into a staging folder). Their shared
# libraries are not a hand list: every ELF file of a named package is given
# to the tree's ld.so (--list) with the staging libraries on its path, and
# each library it resolves (from the staging folder, else from the tree's
# own installed packages) is copied, so a library the programs do not load
# is left out. Only the lib* packages among the Depends are downloaded for
# that; other dependencies (debconf, adduser, ...) are maintainer-script
# machinery, and maintainer scripts do not run in the guest: what they would
# create (nginx's /var/lib/nginx, the www-data user) is made here.
#
# Cached by the hash of its inputs at $SGIOV_CACHE/guest-userland/<key>/
# userland.cpio.gz (`guest_userland`, the setup step, with the default
# package set). `guest_packages P1 P2 ...` builds the archive of extra
# packages for `sgiov vm --packages` (cached per package set, the same way)
# and prints its path as its last line.

# dash is /bin/sh (as on Debian) and bash the interactive shell: busybox's
# sh runs its own applets before PATH (its ip, not iproute2's). netbase has
# /etc/protocols and /etc/services (NPtcp asks getprotobyname("tcp")).
GUEST_USERLAND_PACKAGES=(iperf3 netpipe-tcp nginx nginx-common wrk curl openssl iproute2 dash bash netbase containernetworking-plugins)
# Of some packages only a few files are kept (the rest is large and unused):
# of the reference CNI plugins (55 MB), the IPAM plugin the sgiov CNI
# plugin delegates to (/usr/lib/cni/host-local; docs/cni.md).
declare -A GUEST_USERLAND_ONLY=([containernetworking-plugins]="usr/lib/cni/host-local")
# Kernel modules of the tree's kernel the userland needs: dummy carries the
# guest's SG-IOV address ($SGIOV_ADDR, see qemu/init).
GUEST_USERLAND_MODULES=(drivers/net/dummy)

userland_tree() {
  local tree; tree="$(cd "${TREE:-$SGIOV_CACHE/trixie}" && pwd)"
  [ -f "$tree/.sgiov-kver" ] || { echo "no trixie tree at $tree (run the trixie-tree step)" >&2; return 1; }
  echo "$tree"
}

# userland_key TREE KIND PKGS...: this script, the tree's package indexes
# (a new index may bring new versions), the kernel (modules), the set.
userland_key() {
  local tree="$1" kind="$2"; shift 2
  {
    echo "kind $kind"
    printf 'package %s\n' "$@" | LC_ALL=C sort -u
    sha256sum <"$SGIOV_ROOT/scripts/steps/guest-userland.sh"
    cat "$tree"/var/lib/apt/lists/*InRelease | sha256sum
    echo "kver $(cat "$tree/.sgiov-kver")"
  } | sha256sum | cut -c1-16
}

# userland_closure TREE PKGS...: the named packages and, recursively, the
# library packages they depend on (first of each set of alternatives; virtual
# packages skipped), one a line, without those installed in the tree.
userland_closure() {
  local tree="$1"; shift
  local -A seen=()
  local queue=("$@") next p dep
  for p in "$@"; do seen[$p]=1; done
  local out=("$@")
  while [ ${#queue[@]} -gt 0 ]; do
    next=()
    # "|Depends: a" starts a set of alternatives; the lines after it up to the
    # first plain "Depends:" are the others, which are skipped.
    while read -r dep; do
      [ -n "$dep" ] || continue
      [ -z "${seen[$dep]:-}" ] || continue
      seen[$dep]=1
      case "$dep" in lib*) next+=("$dep") ;; esac
    done < <(in_tree apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "${queue[@]}" |
      awk '/^[^ ]/ { alt = 0; next }
           /^ *\|(Pre)?Depends:/ { if (!alt) print $2; alt = 1; next }
           /^ *(Pre)?Depends:/ { if (!alt) print $2; alt = 0; next }' |
      grep -v '^<')
    queue=()
    for p in "${next[@]}"; do
      # Installed in the tree: its files are taken from there.
      if in_tree dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then continue; fi
      queue+=("$p")
      out+=("$p")
    done
  done
  printf '%s\n' "${out[@]}"
}

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# userland_copy_tree SRC DST: a package's files, minus documentation, with
# the merged-/usr layout (/bin, /sbin, /lib land under /usr).
userland_copy_tree() {
  local src="$1" dst="$2" d
  for d in bin sbin lib lib64; do
    if [ -d "$src/$d" ] && [ ! -L "$src/$d" ]; then
      mkdir -p "$src/usr/$d"
      cp -a "$src/$d/." "$src/usr/$d/"
      rm -rf "${src:?}/$d"
    fi
  done
  rm -rf "$src"/usr/share/{doc,man,info,locale,lintian,bash-completion,zsh,fish}
  cp -a "$src/." "$dst/"
}

# userland_build TREE OUT KIND PKGS...: the archive at OUT/userland.cpio.gz.
# KIND is "base" (the default set, with the files the programs need to run
# and the kernel modules) or "extra" (just the packages and their libraries).
userland_build() {
  local tree="$1" out="$2" kind="$3"; shift 3
  local dir; dir="$(dirname "$out")"
  mkdir -p "$dir"
  remove_leftovers "$tree"/build/userland.* "$dir"/.tmp.*
  local bt="/build/userland.$$" b="$tree/build/userland.$$"
  rm -rf "$b"
  mkdir -p "$b/debs" "$b/x" "$b/named"
  local pkgs; mapfile -t pkgs < <(userland_closure "$tree" "$@")
  echo "== downloading ${#pkgs[@]} packages: ${pkgs[*]}"
  in_tree sh -c "cd $bt/debs && apt-get download $(printf '%q ' "${pkgs[@]}")" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
  local deb p
  for p in "${pkgs[@]}"; do
    deb=$(ls "$b/debs/${p}_"*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || { echo "package $p was not downloaded"; return 1; }
    dpkg-deb -x "$deb" "$b/x"
  done
  local named
  for named in "$@"; do
    deb=$(ls "$b/debs/${named}_"*.deb | head -n 1)
    mkdir -p "$b/named/$named"
    dpkg-deb -x "$deb" "$b/named/$named"
    if [ -n "${GUEST_USERLAND_ONLY[$named]:-}" ]; then
      local keep="$b/keep.$named" f
      for f in ${GUEST_USERLAND_ONLY[$named]}; do
        [ -e "$b/named/$named/$f" ] || { echo "$named has no $f"; return 1; }
        mkdir -p "$keep/$(dirname "$f")"
        mv "$b/named/$named/$f" "$keep/$f"
      done
      rm -rf "${b:?}/named/$named"
      mv "$keep" "$b/named/$named"
    fi
  done

  local tmp="$dir/.tmp.$(basename "$out").$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/root/usr/lib/x86_64-linux-gnu" "$tmp/root/usr/lib64" "$tmp/root/lib"
  local r="$tmp/root"
  for named in "$@"; do userland_copy_tree "$b/named/$named" "$r"; done

  # The libraries: what the tree's ld.so resolves for every ELF file of the
  # named packages, staging folder first. glibc dlopens libgcc_s for
  # pthread_cancel (no NEEDED entry names it), so it is asked for too.
  local libpath="$bt/x/usr/lib/x86_64-linux-gnu:$bt/x/lib/x86_64-linux-gnu"
  local f rel line name path missing=0 nlibs=0
  local -A libs=()
  while IFS= read -r -d '' f; do
    is_elf "$f" || continue
    rel="${f#"$tree"}"
    while IFS= read -r line; do
      case "$line" in
      *"=> not found"*) echo "unresolved: $rel needs ${line%% *}"; missing=1 ;;
      *" => "*) path="${line#* => }"; path="${path% (0x*}"; libs[$path]=1 ;;
      /*) path="${line%% (0x*}"; libs[$path]=1 ;;
      esac
    done < <(in_tree env LD_LIBRARY_PATH="$libpath" /lib64/ld-linux-x86-64.so.2 --list "$rel" 2>/dev/null | sed 's/^[[:space:]]*//')
  done < <(find "$b/named" -type f -print0)
  [ "$missing" = 0 ] || { echo "libraries missing (a dependency that is not a lib* package?)"; return 1; }
  [ "$kind" = base ] && libs[/usr/lib/x86_64-linux-gnu/libgcc_s.so.1]=1
  for path in "${!libs[@]}"; do
    name=$(basename "$path")
    # The file itself (symlinks followed), under the name the loader looks for.
    cp -L "$tree$path" "$r/usr/lib/x86_64-linux-gnu/$name"
    nlibs=$((nlibs + 1))
  done
  # Merged /usr as far as the image allows (its /bin and /sbin are busybox's
  # folders): /bin/X and /sbin/X for every program, so "#!/bin/bash" works
  # and busybox does not put its applet there (it skips names that exist).
  local sub p
  for sub in bin sbin; do
    mkdir -p "$r/$sub"
    for p in "$r/usr/$sub"/*; do
      [ -e "$p" ] || [ -L "$p" ] || continue
      [ -e "$r/$sub/$(basename "$p")" ] || ln -s "../usr/$sub/$(basename "$p")" "$r/$sub/$(basename "$p")"
    done
  done
  ln -sfn ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$r/usr/lib64/ld-linux-x86-64.so.2"
  ln -sfn usr/lib64 "$r/lib64"
  ln -sfn ../usr/lib/x86_64-linux-gnu "$r/lib/x86_64-linux-gnu"

  if [ "$kind" = base ]; then
    userland_base_files "$tree" "$r"
  fi
  (cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -6 -n >"$tmp/userland.cpio.gz"
  gzip -t "$tmp/userland.cpio.gz"
  local kib; kib=$(du -sk "$r" | cut -f1)
  printf '%s\n' "${pkgs[@]}" >"$tmp/packages"
  rm -rf "$r" "$b"
  if ! mv -T "$tmp" "$out" 2>/dev/null; then
    rm -rf "$tmp"   # built concurrently by another run: keep that one
  fi
  [ -f "$out/userland.cpio.gz" ] || { echo "userland missing at $out"; return 1; }
  echo "built: $# packages ($*), $nlibs libraries, ${kib} KiB unpacked, $(du -k "$out/userland.cpio.gz" | cut -f1) KiB packed"
}

# userland_base_files TREE ROOT: what maintainer scripts and a full system
# would provide: users and groups (nginx runs as www-data), name lookup of
# localhost, nginx's state folders, the kernel modules.
userland_base_files() {
  local tree="$1" r="$2" kver m
  kver=$(cat "$tree/.sgiov-kver")
  [ -e "$r/usr/bin/dash" ] && ln -sfn dash "$r/bin/sh"
  mkdir -p "$r/etc" "$r/var/log/nginx" "$r/var/lib/nginx" "$r/run" "$r/var/www/html" "$r/lib/modules"
  printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
  printf 'passwd: files\ngroup: files\nhosts: files dns\nservices: files\n' >"$r/etc/nsswitch.conf"
  for m in "${GUEST_USERLAND_MODULES[@]}"; do
    local ko="$tree/lib/modules/$kver/kernel/$m.ko"
    if [ -f "$ko.xz" ]; then
      xz -dc "$ko.xz" >"$r/lib/modules/$(basename "$m").ko"
    elif [ -f "$ko" ]; then
      cp "$ko" "$r/lib/modules/$(basename "$m").ko"
    else
      echo "kernel module $m missing for $kver"; return 1
    fi
  done
}

# The setup step: the default set, recorded in $SGIOV_CACHE/guest/userland[-<checkout>].json.
guest_userland() {
  local tree; tree=$(userland_tree)
  local key; key=$(userland_key "$tree" base "${GUEST_USERLAND_PACKAGES[@]}")
  local out="$SGIOV_CACHE/guest-userland/$key"
  if [ -f "$out/userland.cpio.gz" ]; then
    touch "$out"
    echo "cached $key: $(du -k "$out/userland.cpio.gz" | cut -f1) KiB, ${GUEST_USERLAND_PACKAGES[*]}"
  else
    userland_build "$tree" "$out" base "${GUEST_USERLAND_PACKAGES[@]}"
  fi
  userland_prune "$SGIOV_CACHE/guest-userland" 8
  guest_json userland "$(printf '{"userland": "%s", "key": "%s", "packages": "%s"}' "$out/userland.cpio.gz" "$key" \
    "${GUEST_USERLAND_PACKAGES[*]}")"
  echo "userland $key: $(du -k "$out/userland.cpio.gz" | cut -f1) KiB"
}

# guest_packages P1 P2 ...: the archive of extra packages (sgiov vm --packages).
guest_packages() {
  [ $# -gt 0 ] || { echo "guest_packages: no package named" >&2; return 2; }
  local p
  for p in "$@"; do
    case "$p" in *[!a-z0-9.+-]*|[!a-z0-9]*) echo "'$p' is not a Debian package name" >&2; return 2 ;; esac
  done
  local tree; tree=$(userland_tree)
  local key; key=$(userland_key "$tree" extra "$@")
  local out="$SGIOV_CACHE/guest-packages/$key"
  if [ -f "$out/userland.cpio.gz" ]; then
    touch "$out"
  else
    local unknown=()
    for p in "$@"; do
      in_tree apt-cache show --no-all-versions "$p" >/dev/null 2>&1 || unknown+=("$p")
    done
    [ ${#unknown[@]} -eq 0 ] || { echo "no such package in the trixie tree: ${unknown[*]}" >&2; return 2; }
    userland_build "$tree" "$out" extra "$@" >&2
  fi
  userland_prune "$SGIOV_CACHE/guest-packages" 16
  echo "$out/userland.cpio.gz"
}

# userland_prune DIR N: keeps the newest N archives.
userland_prune() {
  local old
  for old in $(ls -1dt "$1"/*/ 2>/dev/null | tail -n +$(($2 + 1))); do rm -rf "${old%/}"; done
}
