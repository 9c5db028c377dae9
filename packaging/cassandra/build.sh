#!/usr/bin/env bash
# Build the furet Apache Cassandra distribution from Maven Central.
#
# Usage: packaging/cassandra/build.sh [OUTDIR]     (default: <repo>/.cache/cassandra)
#
# Produces OUTDIR/apache-cassandra-<VER>-furet.tar.gz (+ .sha256) and the symlink
# OUTDIR/current -> that tarball. Idempotent: the recipe (pom.xml, build.sh, dist/*
# and the version) is hashed into OUTDIR/apache-cassandra-<VER>-furet.recipe; when
# it matches and the tarball verifies, nothing is rebuilt.
#
# Environment: CASSANDRA_VERSION (default below), MVN (default mvn),
#              MVN_OFFLINE=1 (mvn -o: use only ~/.m2), FORCE=1 (rebuild anyway).
set -euo pipefail

CASSANDRA_VERSION=${CASSANDRA_VERSION:-5.0.9}

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
outdir=${1:-$repo_root/.cache/cassandra}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

name=apache-cassandra-$CASSANDRA_VERSION
tarball=$outdir/$name-furet.tar.gz
recipe_file=$outdir/$name-furet.recipe
# fixed mtime for every tarball member (2024-01-01T00:00:00Z)
SOURCE_DATE_EPOCH=1704067200

log() { printf 'cassandra-dist: %s\n' "$*"; }

# --- recipe stamp ------------------------------------------------------------
recipe_hash() {
    (
        cd "$here"
        echo "version=$CASSANDRA_VERSION"
        find pom.xml build.sh dist -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
        # file modes matter too (bin/* must stay executable)
        find dist -type f -perm -u+x -print | LC_ALL=C sort
    ) | sha256sum | cut -d' ' -f1
}
recipe=$(recipe_hash)

if [ -z "${FORCE:-}" ] && [ -f "$tarball" ] && [ -f "$tarball.sha256" ] && [ -f "$recipe_file" ] \
    && [ "$(cat "$recipe_file")" = "$recipe" ] \
    && (cd "$outdir" && sha256sum --status -c "$(basename "$tarball").sha256"); then
    ln -sfn "$(basename "$tarball")" "$outdir/current"
    log "up to date ($tarball)"
    exit 0
fi

# --- build -------------------------------------------------------------------
t0=$(date +%s)
log "building Cassandra $CASSANDRA_VERSION into $outdir (recipe ${recipe:0:12})"
command -v "${MVN:-mvn}" >/dev/null || { log "ERROR: mvn not found"; exit 1; }

stage=$outdir/.stage-$CASSANDRA_VERSION
trap 'rm -rf "$stage" "$tarball.tmp"' EXIT
rm -rf "$stage"
top=$stage/$name
mkdir -p "$top/lib"

mvn_args=(-B -q -f "$here/pom.xml" "-Dcassandra.version=$CASSANDRA_VERSION" "-Dstaging.lib=$top/lib")
[ -n "${MVN_OFFLINE:-}" ] && mvn_args=(-o "${mvn_args[@]}")
log "resolving org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION runtime jars (maven, cache ~/.m2)"
# (strip the bare ANSI resets maven 3.8 prints even with -B -q; pipefail keeps mvn's status)
"${MVN:-mvn}" "${mvn_args[@]}" dependency:copy-dependencies </dev/null 2>&1 \
    | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d'
# the pom has packaging=pom: make sure maven left nothing behind in the source tree
rm -rf "$here/target"

njars=$(find "$top/lib" -name '*.jar' | wc -l)
[ -f "$top/lib/cassandra-all-$CASSANDRA_VERSION.jar" ] || { log "ERROR: cassandra-all jar missing"; exit 1; }
log "collected $njars jars ($(du -sh "$top/lib" | cut -f1))"

log "adding bin/ and conf/ from dist/"
cp -R "$here/dist/." "$top/"
chmod 0755 "$top"/bin/*
{
    echo "Apache Cassandra $CASSANDRA_VERSION, furet distribution"
    echo "jars: org.apache.cassandra:cassandra-all:$CASSANDRA_VERSION runtime scope, Maven Central"
    echo "recipe-sha256: $recipe"
    echo
    echo "lib/:"
    (cd "$top/lib" && find . -maxdepth 1 -name '*.jar' -printf '  %f\n' | LC_ALL=C sort)
} >"$top/FURET-BUILD.txt"
# conf/triggers: found on the classpath, silences "Trigger directory doesn't exist"
mkdir -p "$top/logs" "$top/data" "$top/conf/triggers"

log "packing $(basename "$tarball")"
# reproducible: sorted names, fixed mtime, numeric root owner, normalised modes, gzip -n
(cd "$stage" && tar --sort=name --format=gnu \
    --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    --mode='u+rwX,go+rX,go-w' \
    -cf - "$name") | gzip -n -6 >"$tarball.tmp"
mv -f "$tarball.tmp" "$tarball"
(cd "$outdir" && sha256sum "$(basename "$tarball")" >"$(basename "$tarball").sha256")
echo "$recipe" >"$recipe_file"
ln -sfn "$(basename "$tarball")" "$outdir/current"

log "done in $(($(date +%s) - t0))s: $tarball ($(du -h "$tarball" | cut -f1), sha256 $(cut -c1-16 "$tarball.sha256")...)"
