#!/usr/bin/env bash
# Fetches the real Debian bookworm source packages pinned in tests/corpus/debian-sources.txt
# into target/debian-sources/<name>/, once: a package whose directory is complete (its marker
# file, written last, names the pinned version) is left alone, so running this again costs
# nothing and needs no network. Beside each package's files (the signed .dsc exactly as
# published, its tarballs and signatures) it writes an unsigned
# <name>_<version without epoch>_source.changes made by dpkg-genchanges -S -sa.
#
#   scripts/fetch-debian-sources.sh            # every package of the manifest
#   scripts/fetch-debian-sources.sh NAME...    # only these (each must be in the manifest)
#
# The system's apt state is never touched: a private configuration under
# target/debian-sources/.apt/ has its own sources.list (deb-src lines for the bookworm
# suites of the mirror(s) that this machine's apt sources use; DEBIAN_SOURCES_MIRROR=URL
# overrides), its own lists, cache and status. The Release files are verified with the
# Debian archive keyring as usual, and apt checks every downloaded file against them.
# Environment: DEBIAN_SOURCES_MANIFEST (default tests/corpus/debian-sources.txt),
# DEBIAN_SOURCES_MIRROR (a Debian mirror URL to use instead of the system's).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

ROOT=$(pwd -P)
MANIFEST=${DEBIAN_SOURCES_MANIFEST:-tests/corpus/debian-sources.txt}
CORPUS=$ROOT/target/debian-sources
APTDIR=$CORPUS/.apt
MARKER=.complete
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
SUITE=bookworm

die() {
    printf 'fetch-debian-sources: error: %s\n' "$*" >&2
    exit 1
}

warn() {
    printf 'fetch-debian-sources: %s\n' "$*" >&2
}

for tool in apt-get apt-cache dpkg-source dpkg-genchanges flock; do
    command -v "$tool" >/dev/null || die "$tool is missing (install apt, dpkg-dev and util-linux)"
done

# --- the manifest -------------------------------------------------------------------------

declare -A PINNED=()
ORDER=()
[ -f "$MANIFEST" ] || die "no manifest at $MANIFEST"
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line=${line%%#*}
    read -r -a fields <<<"$line"
    [ "${#fields[@]}" -eq 0 ] && continue
    [ "${#fields[@]}" -eq 2 ] || die "$MANIFEST:$lineno: expected 'name version  # comment'"
    name=${fields[0]} version=${fields[1]}
    [[ $name =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || die "$MANIFEST:$lineno: bad source package name '$name'"
    [[ $version =~ ^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$ ]] || die "$MANIFEST:$lineno: bad version '$version'"
    [ -z "${PINNED[$name]+x}" ] || die "$MANIFEST:$lineno: $name is listed twice"
    PINNED[$name]=$version
    ORDER+=("$name")
done <"$MANIFEST"
[ "${#ORDER[@]}" -gt 0 ] || die "$MANIFEST lists no package"

if [ "$#" -gt 0 ]; then
    for name in "$@"; do
        [ -n "${PINNED[$name]+x}" ] || die "$name is not in $MANIFEST"
    done
    WANTED=("$@")
else
    WANTED=("${ORDER[@]}")
fi

# A package is cached when its directory holds the marker naming the pinned version.
is_complete() { # name version
    [ -f "$CORPUS/$1/$MARKER" ] && [ "$(head -n1 "$CORPUS/$1/$MARKER")" = "$1 $2" ]
}

mkdir -p "$CORPUS"
# One run at a time: concurrent test set-ups wait for the first to finish.
exec 9>"$CORPUS/.lock"
flock 9
# Left over by an interrupted run (we hold the lock, so nobody else is writing them).
rm -rf "$CORPUS"/.tmp.*

TODO=()
for name in "${WANTED[@]}"; do
    is_complete "$name" "${PINNED[$name]}" || TODO+=("$name")
done

# --- the private apt configuration (only when something must be downloaded) --------------

# "URI SUITE" for each bookworm suite in this machine's apt sources (one-line and deb822
# alike, as apt itself reads them; apt only lists, it neither locks nor writes anything).
system_mirrors() {
    # shellcheck disable=SC2016 # $(...) is apt's format syntax, not the shell's
    env -u APT_CONFIG apt-get indextargets --no-release-info \
        --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | sort -u |
        awk -v s="$SUITE" '$2 == s || $2 == s "-updates" || $2 == s "-security"'
}

# Falls back to the Debian archives the machine uses for another release.
system_debian_archives() {
    # shellcheck disable=SC2016 # $(...) is apt's format syntax, not the shell's
    env -u APT_CONFIG apt-get indextargets --no-release-info --format '$(REPO_URI)' 2>/dev/null |
        sort -u | awk -v s="$SUITE" '
            /\/debian-security\/$/ { print $1, s "-security"; next }
            /\/debian\/$/ { print $1, s }'
}

write_private_apt() {
    local mirrors signed_by=""
    if [ -n "${DEBIAN_SOURCES_MIRROR:-}" ]; then
        mirrors="${DEBIAN_SOURCES_MIRROR%/}/ $SUITE"
    else
        mirrors=$(system_mirrors)
        [ -n "$mirrors" ] || mirrors=$(system_debian_archives)
    fi
    [ -n "$mirrors" ] || die "no Debian mirror in this machine's apt sources; set DEBIAN_SOURCES_MIRROR=URL"
    [ -f "$KEYRING" ] && signed_by="[signed-by=$KEYRING] "

    mkdir -p "$APTDIR"/{sources.list.d,preferences.d,lists/partial,cache/archives/partial,log}
    : >"$APTDIR/status"
    {
        echo "# Written by scripts/fetch-debian-sources.sh from this machine's apt sources."
        while read -r uri suite; do
            echo "deb-src $signed_by$uri $suite main"
        done <<<"$mirrors"
    } >"$APTDIR/sources.list"

    # Passed as -o too: the system's apt.conf.d (read for its network settings such as a proxy
    # or Check-Valid-Until) is read after APT_CONFIG and could otherwise override a path.
    APT_SETTINGS=(
        "Dir::Etc::sourcelist=$APTDIR/sources.list"
        "Dir::Etc::sourceparts=$APTDIR/sources.list.d"
        "Dir::Etc::preferences=$APTDIR/preferences"
        "Dir::Etc::preferencesparts=$APTDIR/preferences.d"
        "Dir::State=$APTDIR"
        "Dir::State::lists=$APTDIR/lists"
        "Dir::State::status=$APTDIR/status"
        "Dir::State::extended_states=$APTDIR/extended_states"
        "Dir::Cache=$APTDIR/cache"
        "Dir::Cache::archives=$APTDIR/cache/archives"
        "Dir::Log=$APTDIR/log"
        "Acquire::Languages=none"
        "APT::Get::Only-Source=true"
    )
    local setting
    {
        echo "// Private apt configuration of scripts/fetch-debian-sources.sh; try it with"
        echo "// APT_CONFIG=$APTDIR/apt.conf apt-cache showsrc hello"
        for setting in "${APT_SETTINGS[@]}"; do
            printf '%s "%s";\n' "${setting%%=*}" "${setting#*=}"
        done
    } >"$APTDIR/apt.conf"
    APT_OPTS=()
    for setting in "${APT_SETTINGS[@]}"; do
        APT_OPTS+=(-o "$setting")
    done
}

apt_private() { # apt-get|apt-cache ARGS...
    local tool=$1
    shift
    APT_CONFIG=$APTDIR/apt.conf "$tool" "${APT_OPTS[@]}" "$@"
}

update_private_apt() {
    # --error-on=any: an unreachable mirror is an error, not a warning about old lists.
    if ! apt_private apt-get -q update --error-on=any >"$APTDIR/update.log" 2>&1; then
        sed 's/^/    /' "$APTDIR/update.log" >&2
        die "cannot reach the Debian mirror(s) of $APTDIR/sources.list (apt-get update failed, log above)"
    fi
}

# --- one package ----------------------------------------------------------------------------

fetch_one() { # name version; returns non-zero (after saying why) on failure
    local name=$1 version=$2 upstream=${2#*:} tmp available dsc log
    tmp=$(mktemp -d "$CORPUS/.tmp.$name.XXXXXX")
    log=$tmp.log

    available=$(apt_private apt-cache showsrc "$name" 2>/dev/null | sed -n 's/^Version: //p' | sort -u | paste -sd " ")
    if ! grep -qxF -- "$version" <<<"${available// /$'\n'}"; then
        warn "$name $version is not in $SUITE any more (the mirror has: ${available:-nothing}); update $MANIFEST"
        rm -rf "$tmp"
        return 1
    fi

    # apt downloads as its sandbox user _apt when run as root: let it write here.
    if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
        chown _apt "$tmp"
    fi
    if ! (cd "$tmp" && apt_private apt-get -q source --download-only "$name=$version") >"$log" 2>&1; then
        sed 's/^/    /' "$log" >&2
        warn "$name $version: download failed (log above)"
        rm -rf "$tmp" "$log"
        return 1
    fi
    chown -R "$(id -u):$(id -g)" "$tmp"
    chmod 755 "$tmp"

    dsc=${name}_$upstream.dsc
    [ -f "$tmp/$dsc" ] || {
        warn "$name $version: apt-get source left no $dsc"
        rm -rf "$tmp" "$log"
        return 1
    }
    # Unpacking checks every file against the .dsc; the tree is only needed for
    # dpkg-genchanges (debian/changelog, debian/control) and is removed afterwards.
    if ! {
        dpkg-source -x "$tmp/$dsc" "$tmp/.unpacked" &&
            (cd "$tmp/.unpacked" && dpkg-genchanges -S -sa -u"$tmp" -O"$tmp/${name}_${upstream}_source.changes")
    } >"$log" 2>&1; then
        sed 's/^/    /' "$log" >&2
        warn "$name $version: dpkg-source -x or dpkg-genchanges failed (log above)"
        rm -rf "$tmp" "$log"
        return 1
    fi
    rm -rf "$tmp/.unpacked" "$log"

    # The marker last, then one rename: a directory is complete or it is not there.
    (cd "$tmp" && printf '%s %s\n' "$name" "$version" && sha256sum -- *) >"$tmp/$MARKER"
    rm -rf "${CORPUS:?}/$name"
    mv "$tmp" "$CORPUS/$name"
    local count size
    count=$(find "$CORPUS/$name" -maxdepth 1 -type f ! -name "$MARKER" | wc -l)
    size=$(du -sk "$CORPUS/$name" | cut -f1)
    printf 'fetched  %s %s (%d files, %d KB)\n' "$name" "$version" "$count" "$size"
}

# --- main -------------------------------------------------------------------------------------

if [ "${#TODO[@]}" -gt 0 ]; then
    write_private_apt
    update_private_apt
fi

failed=()
for name in "${WANTED[@]}"; do
    version=${PINNED[$name]}
    if is_complete "$name" "$version"; then
        printf 'cached   %s %s\n' "$name" "$version"
        continue
    fi
    # In a subshell outside any condition, so that set -e holds inside fetch_one too; an
    # unexpected failure leaves only a .tmp.* directory, removed by the next run.
    set +e
    (
        set -e
        fetch_one "$name" "$version"
    )
    status=$?
    set -e
    [ "$status" -eq 0 ] || failed+=("$name")
done

if [ "${#failed[@]}" -gt 0 ]; then
    die "could not fetch ${#failed[@]} package(s): ${failed[*]} (the others are in $CORPUS)"
fi
echo "$CORPUS"
