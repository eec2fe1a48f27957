#!/usr/bin/env bash
# Trunk's post-build hook: names the service worker's app-shell version after the built files, so
# that every build that changes one of them installs as a new version (see www/sw.js).
set -euo pipefail
dir="${TRUNK_STAGING_DIR:?run by trunk as a post_build hook}"
hash=$(cd "$dir" && cat index.html dynrefer-web.js dynrefer-web_bg.wasm style.css widget.js gpu-watch.js | sha256sum | cut -c1-16)
sed -i "s/__DYNREFER_BUILD__/$hash/" "$dir/sw.js"
