# libvfio-user is not packaged by Debian, but Debian's qemu source package
# carries it under subprojects/libvfio-user. Fetch the qemu orig tarball
# named by the Sources index, verify its SHA-256 against that index, and
# build only the library (meson + ninja) into the cache.
LVU_DIR="$SGIOV_CACHE/libvfio-user"

libvfio_user() {
  local lib="$LVU_DIR/install/lib/libvfio-user.so.0"
  if [ -f "$lib" ] && [ -f "$LVU_DIR/SOURCE" ]; then echo "cached: $(cat "$LVU_DIR/SOURCE")"; return 0; fi
  local mirror; mirror=$(debian_mirror)
  mkdir -p "$LVU_DIR/dl"
  # Candidate (version, path, sha256, size) rows from the newest suites
  # first; the newest version is sometimes missing from the pool.
  local list="$LVU_DIR/dl/candidates.tsv"
  : >"$list"
  for suite in trixie-backports trixie sid; do
    local idx="$LVU_DIR/dl/Sources-$suite.xz"
    if ! curl -fsSL --retry 2 -o "$idx" "$mirror/dists/$suite/main/source/Sources.xz"; then
      echo "no Sources index for $suite"; continue
    fi
    xz -dc "$idx" | python3 "$SGIOV_ROOT/scripts/steps/qemu-sources.py" >>"$list"
  done
  sort -u "$list" | python3 -c '
import sys, subprocess, functools
rows = [l.rstrip("\n").split("\t") for l in sys.stdin if l.strip()]
def cmp(a, b):
    if a[0] == b[0]: return 0
    return -1 if subprocess.run(["dpkg", "--compare-versions", a[0], "lt", b[0]]).returncode == 0 else 1
rows.sort(key=functools.cmp_to_key(cmp), reverse=True)
for r in rows: print("\t".join(r))' >"$list.sorted"
  [ -s "$list.sorted" ] || { echo "no qemu source package found in any Sources index"; return 1; }
  local ver path sha size got=""
  while IFS=$'\t' read -r ver path sha size; do
    local f="$LVU_DIR/dl/$(basename "$path")"
    echo "trying qemu $ver: $path"
    if [ ! -f "$f" ] || [ "$(sha256sum "$f" | cut -d' ' -f1)" != "$sha" ]; then
      rm -f "$f"
      curl -fsSL --retry 2 -o "$f.part" "$mirror/$path" || { echo "  not in the pool"; rm -f "$f.part"; continue; }
      mv "$f.part" "$f"
    fi
    if [ "$(sha256sum "$f" | cut -d' ' -f1)" != "$sha" ] || [ "$(stat -c %s "$f")" != "$size" ]; then
      echo "  checksum mismatch, skipping"; rm -f "$f"; continue
    fi
    rm -rf "$LVU_DIR/src" && mkdir -p "$LVU_DIR/src"
    if ! tar -xJf "$f" -C "$LVU_DIR/src" --strip-components=1 --wildcards '*/subprojects/libvfio-user/*'; then
      echo "  no subprojects/libvfio-user in this tarball"; continue
    fi
    got="$ver"; break
  done <"$list.sorted"
  [ -n "$got" ] || { echo "no usable qemu source tarball"; return 1; }
  local src="$LVU_DIR/src/subprojects/libvfio-user"
  rm -rf "$LVU_DIR/build" "$LVU_DIR/install"
  meson setup "$LVU_DIR/build" "$src" --prefix="$LVU_DIR/install" --libdir=lib \
    --buildtype=release -Ddebug-logs=disabled
  ninja -C "$LVU_DIR/build" install
  rm -f "$LVU_DIR"/dl/*.orig.tar.xz   # the library is built; the 100 MB tarball is not needed again
  echo "qemu $got (subprojects/libvfio-user)" >"$LVU_DIR/SOURCE"
  echo "built from qemu $got"
}
