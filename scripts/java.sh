#!/usr/bin/env bash
# A Java runtime for Spark (make spark): 17 or later on the PATH or in JAVA_HOME; else Debian's
# openjdk-17-jre-headless when this user can run apt-get. Without either it says so and exits
# 0: Spark's tests are then skipped, saying why, and the rest of make test runs.
set -euo pipefail
java_major() {
  local java=java
  [ -n "${JAVA_HOME:-}" ] && java="$JAVA_HOME/bin/java"
  command -v "$java" >/dev/null 2>&1 || return 1
  "$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}
major=$(java_major || true)
if [ -n "$major" ] && [ "$major" -ge 17 ]; then
  echo "make spark: Java $major found"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "make spark: installing Debian's openjdk-17-jre-headless"
  apt-get install -y -qq openjdk-17-jre-headless >/dev/null || {
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  }
  exit 0
fi
echo "make spark: no Java 17 or later here and no apt-get as root: training with engine spark" \
  "needs one (JAVA_HOME or java on the PATH); its tests are skipped" >&2
