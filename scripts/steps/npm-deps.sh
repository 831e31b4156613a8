# npm dependencies, from the lock file. Re-run only when the lock changes.
npm_deps() {
  cd "$SGIOV_ROOT"
  local key; key=$(sha256sum package-lock.json | cut -c1-16)
  if [ -d node_modules ] && [ "$(cat node_modules/.sgiov-lock 2>/dev/null)" = "$key" ]; then
    echo "node_modules current"; return 0
  fi
  npm ci --no-audit --no-fund
  echo "$key" >node_modules/.sgiov-lock
  echo "installed from package-lock.json"
}
