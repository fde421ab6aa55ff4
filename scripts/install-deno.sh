#!/usr/bin/env bash
# Installs Deno 2 from the npm registry (the `deno` package ships the binary) into a cache outside the
# project, and prints the directory holding the binary, for PATH. Kept out of the project's own
# node_modules: there, node_modules/.bin/deno would shadow the real binary inside `deno task`.
set -euo pipefail
version="${DENO_VERSION:-2.9.5}"
prefix="${DENO_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/runspec-room/deno-$version}"
bin="$prefix/node_modules/deno/deno"
if [ ! -x "$bin" ] || ! "$bin" --version >/dev/null 2>&1; then
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "deno@$version" >&2
  # The package's postinstall puts the binary here; where install scripts are off, its launcher finds it.
  [ -x "$bin" ] || bin="$(node "$prefix/node_modules/deno/bin.cjs" eval 'console.log(Deno.execPath())')"
fi
"$bin" --version >&2
dirname "$bin"
