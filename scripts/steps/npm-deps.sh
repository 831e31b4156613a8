# npm dependencies, exactly as package-lock.json pins them (`npm ci`, which
# never rewrites the lock). Re-run only when the lock changes.
npm_deps() {
  cd "$SGIOV_ROOT"
  local key; key=$(sha256sum package-lock.json | cut -c1-16)
  if [ -d node_modules ] && [ "$(cat node_modules/.sgiov-lock 2>/dev/null)" = "$key" ]; then
    echo "node_modules current"; return 0
  fi
  # The lock lists every platform's optional packages (rollup's, Biome's,
  # koffi's), so `npm ci` accepts it on any machine and installs this one's.
  npm ci --no-audit --no-fund
  echo "$key" >node_modules/.sgiov-lock
  echo "installed from package-lock.json"
}
