# npm dependencies, from the lock file. Re-run only when the lock changes.
npm_deps() {
  cd "$SGIOV_ROOT"
  local key; key=$(sha256sum package-lock.json | cut -c1-16)
  if [ -d node_modules ] && [ "$(cat node_modules/.sgiov-lock 2>/dev/null)" = "$key" ]; then
    echo "node_modules current"; return 0
  fi
  # Not `npm ci`: npm 11 writes only this platform's optional packages
  # (rollup's, koffi's) into the lock and then `npm ci` refuses that same
  # lock as out of sync. `npm install` installs exactly the locked versions
  # and leaves the lock unchanged.
  npm install --no-audit --no-fund
  echo "$key" >node_modules/.sgiov-lock
  echo "installed from package-lock.json"
}
