#!/bin/sh
# Build STAC Browser (the npm package pinned by package-lock.json, installed with `npm ci`) into $1
# (default build/ui/browser): history-mode URLs under /browser/ (SB_pathPrefix to change), no source maps.
# The package is its own app: its sources import ../../node_modules/..., so it is built from a copy
# (build/stac-browser-src) whose node_modules is this folder's.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
dest=${1:-$repo/build/ui/browser}
case "$dest" in /*) ;; *) dest=$(pwd)/$dest ;; esac  # relative to where it was called from
src=$repo/build/stac-browser-src
cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
fi
rm -rf "$src"
mkdir -p "$src" "$(dirname "$dest")"
cp -R node_modules/@radiantearth/stac-browser/. "$src/"
ln -s "$here/node_modules" "$src/node_modules"
# Ours replaces the package's config.js (which it extends); SB_CONFIG is not honoured by its build.
mv "$src/config.js" "$src/config.defaults.js"
cp config.js "$src/config.js"
cd "$src"
SB_pathPrefix="${SB_pathPrefix:-/browser/}" SB_historyMode=history \
    SB_noSourceMaps=true NODE_ENV=production node_modules/.bin/vue-cli-service build --dest "$dest"
