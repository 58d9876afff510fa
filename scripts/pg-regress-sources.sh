#!/usr/bin/env bash
# Fetches PostgreSQL's own regression suite for the installed server and
# builds the C functions it loads, for crates/gatehouse/tests/pg_regress.rs.
#
#   GATEHOUSE_PG_REGRESS_DIR=$(scripts/pg-regress-sources.sh)   # prints the path
#   . scripts/pg-regress-sources.sh                              # sets and exports it
#
# The printed folder is the sources' src/test/regress: parallel_schedule,
# sql/, expected/, data/, and regress.so, autoinc.so and refint.so built
# next to them (pg_regress's --dlpath).
#
# The sources are the exact ones of the installed postgresql-15 package:
# `apt-get source --download-only postgresql-15=<installed version>`. When
# apt has no deb-src entry for it, one is added beside apt's own deb
# entries for this Debian release (/etc/apt/sources.list.d/
# gatehouse-deb-src.sources, root only) and the package lists are updated.
# Only src/test/regress and contrib/spi's two C files are unpacked from
# the upstream tarball (no Debian patch touches them; the script checks).
# The modules are built with PGXS against postgresql-server-dev-15 (its
# pg_config --includedir-server), which must be installed (scripts/test.sh
# installs it).
#
# Everything is kept under target/pg-regress/<version>/ (target/ is
# gitignored); a rerun that finds the finished folder (its .complete
# naming this script's recipe) prints it and does nothing else.

_gatehouse_pg_regress() {
  local root cache version upstream dest tree work pg_config includedir codename
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  cache="$root/target/pg-regress"
  version=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null) || {
    echo "pg-regress-sources.sh: postgresql-15 is not installed (apt-get install postgresql-15)" >&2
    return 1
  }
  upstream=${version%%-*}            # 15.18-0+deb12u1 -> 15.18
  dest="$cache/$version"
  tree="$dest/postgresql-$upstream"
  # Bump when what is unpacked or built changes, so caches are redone.
  local recipe=2
  if [ "$(cat "$dest/.complete" 2>/dev/null)" = "$recipe" ]; then
    echo "$tree/src/test/regress"
    return 0
  fi

  pg_config=/usr/lib/postgresql/15/bin/pg_config
  includedir=$("$pg_config" --includedir-server 2>/dev/null || true)
  if [ -z "$includedir" ] || [ ! -f "$includedir/postgres.h" ]; then
    echo "pg-regress-sources.sh: no server headers; apt-get install postgresql-server-dev-15=$version" >&2
    return 1
  fi
  command -v dpkg-source >/dev/null || {
    echo "pg-regress-sources.sh: apt-get source needs dpkg-dev (apt-get install dpkg-dev)" >&2
    return 1
  }

  if ! _gatehouse_has_source "$version"; then
    # shellcheck source=/dev/null
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    if [ "$(id -u)" -ne 0 ]; then
      echo "pg-regress-sources.sh: apt knows no source for postgresql-15 $version; add a deb-src entry for $codename and run apt-get update (or run this as root)" >&2
      return 1
    fi
    _gatehouse_add_deb_src "$codename" >&2 || return 1
    apt-get update -qq >&2 || return 1
    _gatehouse_has_source "$version" || {
      echo "pg-regress-sources.sh: the mirror has no source package postgresql-15 $version" >&2
      return 1
    }
  fi

  rm -rf "$dest"
  mkdir -p "$dest/download"
  work="$dest/download"
  (
    set -e
    cd "$work"
    # As root, apt would download as _apt, which cannot write here.
    apt-get source -qq --download-only -o APT::Sandbox::User=root "postgresql-15=$version"
    cd "$dest"
    tar -xjf "$work/postgresql-15_$upstream.orig.tar.bz2" \
      "postgresql-$upstream/src/test/regress" \
      "postgresql-$upstream/contrib/spi/autoinc.c" \
      "postgresql-$upstream/contrib/spi/refint.c"
    # Debian's patches change packaging, paths and defaults, none of the
    # suite (checked for 15.18); should one ever touch it, stop rather
    # than test against sources that differ from the installed server.
    if tar -xJOf "$work/postgresql-15_$version.debian.tar.xz" --wildcards 'debian/patches/*' |
      grep -Eq '^\+\+\+ [^/ ]*/(src/test/regress/|contrib/spi/)'; then
      echo "pg-regress-sources.sh: a Debian patch of $version changes the regression suite; apply it here" >&2
      exit 1
    fi
    rm -rf "$work"

    # The C functions the suite loads (pg_regress's GNUmakefile builds
    # regress.so and copies contrib/spi's autoinc.so and refint.so into
    # the --dlpath folder); built with PGXS against the server's headers.
    cd "$tree/src/test/regress"
    cp "$tree/contrib/spi/autoinc.c" "$tree/contrib/spi/refint.c" .
    cat >Makefile.gatehouse <<'EOF'
MODULES = regress autoinc refint
# As contrib/spi/Makefile builds refint "for the regression tests".
PG_CPPFLAGS = -DREFINT_VERBOSE
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
EOF
    # with_llvm=no: no JIT bitcode, only the shared objects.
    make -s -f Makefile.gatehouse PG_CONFIG="$pg_config" with_llvm=no >&2
    # pg_regress's output folder: the COPY and large-object tests write
    # files there from the server, which runs as the postgres user.
    mkdir -p results
    chmod 1777 results
  ) || {
    echo "pg-regress-sources.sh: fetching or building the regression suite failed" >&2
    return 1
  }
  echo "$recipe" >"$dest/.complete"
  echo "$tree/src/test/regress"
}

# Whether apt can fetch source package postgresql-15 at version $1.
_gatehouse_has_source() {
  local versions
  versions=$(apt-cache showsrc postgresql-15 2>/dev/null | sed -n 's/^Version: //p')
  grep -qxF "$1" <<<"$versions"
}

# Add deb-src twins of apt's deb entries for release $1 (deb822 .sources
# and one-line .list files alike) in files of our own.
_gatehouse_add_deb_src() {
  local codename=$1 base=/etc/apt/sources.list.d/gatehouse-deb-src f tmp files=()
  [ -n "$codename" ] || {
    echo "pg-regress-sources.sh: /etc/os-release names no VERSION_CODENAME" >&2
    return 1
  }
  shopt -s nullglob
  files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
  shopt -u nullglob
  tmp=$(mktemp -d)
  : >"$tmp/sources"
  : >"$tmp/list"
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    case "$f" in
      "$base".*) continue ;;
      *.sources)
        # Stanzas of type deb naming this release, retyped deb-src.
        awk -v rel="$codename" '
          function flush() {
            if (n > 0 && is_deb && has_rel && !off) {
              print "Types: deb-src"
              for (i = 1; i <= n; i++) print lines[i]
              print ""
            }
            n = 0; is_deb = 0; has_rel = 0; off = 0
          }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); next }
          /^Types:/ { if ($0 ~ /[ \t]deb([ \t]|$)/) is_deb = 1; next }
          /^Enabled:[ \t]*[Nn]o/ { off = 1 }
          /^Suites:/ { if ($0 ~ ("[ \t]" rel "([-/ \t]|$)")) has_rel = 1 }
          { lines[++n] = $0 }
          END { flush() }
        ' "$f" >>"$tmp/sources"
        ;;
      *)
        # deb [options] URI SUITE COMPONENTS...
        awk -v rel="$codename" '
          $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            suite = $(i + 1)
            if (suite == rel || index(suite, rel "-") == 1 || index(suite, rel "/") == 1) {
              line = $0; sub(/^deb/, "deb-src", line); print line
            }
          }
        ' "$f" >>"$tmp/list"
        ;;
    esac
  done
  if [ ! -s "$tmp/sources" ] && [ ! -s "$tmp/list" ]; then
    rm -rf "$tmp"
    echo "pg-regress-sources.sh: found no deb entry for $codename to pair a deb-src entry with" >&2
    return 1
  fi
  for f in sources list; do
    if [ -s "$tmp/$f" ]; then
      { echo "# Added by gatehouse scripts/pg-regress-sources.sh: the source"
        echo "# packages of the deb entries for $codename."
        cat "$tmp/$f"; } >"$base.$f"
      chmod 644 "$base.$f"
      echo "pg-regress-sources.sh: added deb-src entries for $codename to $base.$f"
    fi
  done
  rm -rf "$tmp"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  _gatehouse_pg_regress
else
  GATEHOUSE_PG_REGRESS_DIR=$(_gatehouse_pg_regress) && export GATEHOUSE_PG_REGRESS_DIR
fi
