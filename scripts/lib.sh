# Shared helpers for the setup steps. Sourced, not run.
# Every step prints one progress line with its duration; a failing step
# prints what failed and where its log is, and the setup exits non-zero.
set -euo pipefail

SGIOV_CACHE="${SGIOV_CACHE:-$HOME/.cache/sgiov}"
SGIOV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$SGIOV_CACHE/logs"
export SGIOV_CACHE SGIOV_ROOT

# step NAME FUNCTION: runs FUNCTION with its output in a log file.
step() {
  local name="$1"; shift
  local log="$SGIOV_CACHE/logs/$name.log"
  local t0=$SECONDS rc=0
  printf '[setup] %-16s ... ' "$name" >&2
  # Run in the background and wait: a command left of || would run with
  # errexit off, and a failing line inside the step would go unnoticed.
  ( set -e; "$@" ) >"$log" 2>&1 &
  wait $! || rc=$?
  local dt=$((SECONDS - t0))
  if [ "$rc" -ne 0 ]; then
    printf 'FAILED after %ss (exit %s)\n' "$dt" "$rc" >&2
    echo "[setup] last lines of $log:" >&2
    tail -n 25 "$log" | sed 's/^/[setup]   /' >&2
    exit 1
  fi
  local msg; msg="$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-100)"
  printf 'ok in %ss%s\n' "$dt" "${msg:+ ($msg)}" >&2
}

# The Debian mirror, read from the host's apt configuration: the first
# URIs line of a deb822 .sources file, else the first "deb" line of
# sources.list, skipping the security archive.
debian_mirror() {
  if [ -n "${SGIOV_MIRROR:-}" ]; then echo "$SGIOV_MIRROR"; return; fi
  local m=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$m" ] && break
  done
  if [ -z "$m" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      m=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) { print $i; exit } else break } }' "$f")
      [ -n "$m" ] && break
    done
  fi
  if [ -z "$m" ]; then echo "no Debian mirror found in the apt configuration (set SGIOV_MIRROR)" >&2; return 1; fi
  echo "${m%/}"
}

# Marker files record that a step finished with given inputs, so a re-run
# skips it. stamp_ok NAME KEY / stamp_set NAME KEY
stamp_ok() { [ -f "$SGIOV_CACHE/stamps/$1" ] && [ "$(cat "$SGIOV_CACHE/stamps/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$SGIOV_CACHE/stamps"; printf '%s' "$2" >"$SGIOV_CACHE/stamps/$1"; }

# guest_json NAME JSON: what the harness boots, in $SGIOV_CACHE/guest/NAME.json
# (the last setup run's) and NAME-<checkout>.json (this checkout's, which the
# harness prefers: checkouts sharing the cache each boot what they built).
# The checkout id hashes its physical path (emulator/util/paths.ts: checkoutId).
guest_json() {
  local dir="$SGIOV_CACHE/guest" id f
  id=$(cd "$SGIOV_ROOT" && pwd -P | tr -d '\n' | sha256sum | cut -c1-12)
  mkdir -p "$dir"
  for f in "$dir/$1.json" "$dir/$1-$id.json"; do
    printf '%s\n' "$2" >"$f.tmp.$$"
    mv -f "$f.tmp.$$" "$f"
  done
}

# remove_leftovers GLOB...: the scratch folders of runs that failed, named
# after their run's PID (X.PID), removed once that process is gone.
remove_leftovers() {
  local d
  for d in "$@"; do
    [ -e "$d" ] || continue
    kill -0 "${d##*.}" 2>/dev/null || rm -rf "$d"
  done
}
