#!/usr/bin/env bash
# Build furet's SSTable helper (round 1 into Cassandra by streamed SSTables, README).
#
# Usage: packaging/sstable/build.sh [OUTDIR]        (default: <repo>/.cache/sstable)
#
# Compiles src/ against the jars of furet's Cassandra distribution (make cassandra-dist:
# the same Cassandra as the ring, so the SSTables are in the ring's own format) and lays
# out OUTDIR/furet-sstable-<VER>/ {bin/furet-sstable, furet-sstable.jar, lib/, jvm.options,
# logback.xml}, its tarball (+ .sha256, what the etl_runner role installs) and the symlinks
# OUTDIR/current -> that directory, OUTDIR/current.tar.gz -> the tarball. Idempotent: the recipe (this directory and the
# distribution's sha256) is hashed into OUTDIR/furet-sstable-<VER>.recipe; when it matches,
# nothing is rebuilt. Needs javac (openjdk-17-jdk-headless, lab/apt-packages.txt).
set -euo pipefail

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
outdir=${1:-$repo_root/.cache/sstable}
# no distribution yet: readlink fails, and the next line says what to run instead of set -e
# stopping here without a word
dist=$(readlink -f "$repo_root/.cache/cassandra/current" || true)
log() { printf 'sstable-helper: %s\n' "$*"; }

[ -f "$dist" ] || { log "ERROR: no Cassandra distribution at .cache/cassandra/current (make cassandra-dist)"; exit 1; }
version=$(basename "$dist" | sed -E 's/^apache-cassandra-(.*)-furet\.tar\.gz$/\1/')
name=furet-sstable-$version
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
recipe=$( (cd "$here" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
           cat "$dist.sha256" 2>/dev/null || sha256sum "$dist") | sha256sum | cut -d' ' -f1)

if [ -f "$outdir/$name.recipe" ] && [ "$(cat "$outdir/$name.recipe")" = "$recipe" ] \
    && [ -x "$outdir/$name/bin/furet-sstable" ] && [ -f "$outdir/$name.tar.gz" ]; then
    ln -sfn "$name" "$outdir/current" && ln -sfn "$name.tar.gz" "$outdir/current.tar.gz"
    log "up to date ($outdir/$name)"
    exit 0
fi
command -v javac >/dev/null || { log "ERROR: javac not found (openjdk-17-jdk-headless)"; exit 1; }

stage=$outdir/.stage
trap 'rm -rf "$stage"' EXIT
rm -rf "$stage" && mkdir -p "$stage/$name/classes"
top=$stage/$name
log "building $name from $(basename "$dist")"
tar xzf "$dist" -C "$stage" --strip-components=1 --wildcards "apache-cassandra-$version/lib/*.jar"
mv "$stage/lib" "$top/lib"
javac -nowarn --release 17 -cp "$top/lib/*" -d "$top/classes" $(find "$here/src" -name '*.java' | LC_ALL=C sort)
(cd "$top/classes" && jar --create --file "$top/furet-sstable.jar" --date=2024-01-01T00:00:00Z .)
rm -rf "$top/classes"
cp -R "$here/bin" "$here/jvm.options" "$here/logback.xml" "$top/"
chmod 0755 "$top/bin/furet-sstable"
(cd "$stage" && tar --sort=name --format=gnu --mtime=@1704067200 --owner=0 --group=0 \
    --numeric-owner --mode='u+rwX,go+rX,go-w' -cf - "$name") | gzip -n -6 > "$outdir/$name.tar.gz"
(cd "$outdir" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
rm -rf "${outdir:?}/$name" && mv "$top" "$outdir/$name"
echo "$recipe" > "$outdir/$name.recipe"
ln -sfn "$name" "$outdir/current" && ln -sfn "$name.tar.gz" "$outdir/current.tar.gz"
log "done: $outdir/$name ($(du -sh "$outdir/$name" | cut -f1))"
