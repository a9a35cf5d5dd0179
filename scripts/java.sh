#!/usr/bin/env bash
# What Spark needs besides pyspark (make spark): a Java runtime, 17 or later, on the PATH or in
# JAVA_HOME, and the PostgreSQL JDBC driver (/usr/share/java/postgresql.jar) for Spark's
# executors to read through JDBC; Debian's openjdk-17-jre-headless and libpostgresql-jdbc-java
# when this user can run apt-get. Without them it says so and exits 0: the tests that need
# them are then skipped, saying why, and the rest of make test runs.
set -euo pipefail
JAR=/usr/share/java/postgresql.jar
java_major() {
  local java=java
  [ -n "${JAVA_HOME:-}" ] && java="$JAVA_HOME/bin/java"
  command -v "$java" >/dev/null 2>&1 || return 1
  "$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}
missing=()
major=$(java_major || true)
if [ -n "$major" ] && [ "$major" -ge 17 ]; then
  echo "make spark: Java $major found"
else
  missing+=(openjdk-17-jre-headless)
fi
if [ -f "$JAR" ]; then
  echo "make spark: the PostgreSQL JDBC driver found ($JAR)"
else
  missing+=(libpostgresql-jdbc-java)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "make spark: installing Debian's ${missing[*]}"
  apt-get install -y -qq "${missing[@]}" >/dev/null || {
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  }
  exit 0
fi
echo "make spark: ${missing[*]} missing here and no apt-get as root: engine spark needs Java 17" \
  "or later (JAVA_HOME or java on the PATH), and reading through JDBC the PostgreSQL JDBC" \
  "driver (options.spark.conf spark.jars); the tests needing them are skipped" >&2
