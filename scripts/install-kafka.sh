#!/usr/bin/env bash
# Installs Apache Kafka (broker and Kafka Connect) and the Debezium Postgres connector from Maven Central, at
# the versions scripts/kafka-versions.env pins, into a cache outside the repository:
#
#   $SOCIAL_INGEST_JVM_HOME (default ~/.cache/social-ingest/jvm)
#     kafka-<KAFKA_VERSION>/libs/*.jar                 the broker's and Connect's classpath (`java -cp 'libs/*'`)
#     debezium-<DEBEZIUM_VERSION>/plugins/debezium-connector-postgres/*.jar   Connect's plugin.path
#
# With --jdbc-sink, also Debezium's JDBC sink connector, which only the drain bench runs (as a peer of the
# inserter):
#     debezium-jdbc-sink-<JDBC_SINK_VERSION>/plugins/debezium-connector-jdbc/*.jar
#
# testkit starts both from there. Needs Java 17 or later and Maven. Idempotent: a directory is complete once
# its `.installed` file names the pins it was made from, and a second run only checks that (about a second).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=kafka-versions.env
. scripts/kafka-versions.env

JVM_HOME=${SOCIAL_INGEST_JVM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/social-ingest/jvm}
KAFKA_DIR=$JVM_HOME/kafka-$KAFKA_VERSION
DEBEZIUM_DIR=$JVM_HOME/debezium-$DEBEZIUM_VERSION
JDBC_SINK_DIR=$JVM_HOME/debezium-jdbc-sink-$JDBC_SINK_VERSION

jdbc_sink=false
for arg in "$@"; do
    case $arg in
        --jdbc-sink) jdbc_sink=true ;;
        *) printf 'usage: %s [--jdbc-sink]\n' "$0" >&2; exit 2 ;;
    esac
done

log() { printf '[install-kafka] %s\n' "$*" >&2; }

for tool in java mvn; do
    command -v "$tool" >/dev/null || { log "missing $tool: install OpenJDK 17 and Maven (apt-get install openjdk-17-jdk-headless maven)"; exit 1; }
done
java_major=$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')
if [ "${java_major%%.*}" -lt 17 ]; then
    log "Kafka $KAFKA_VERSION needs Java 17 or later; java is $java_major"
    exit 1
fi

# Maven's own chatter goes to a log that is shown only when it fails.
maven() {
    local out
    out=$(mktemp)
    if ! mvn -B -q "$@" >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        log "mvn $* failed"
        exit 1
    fi
    rm -f "$out"
}

# Builds a directory beside its final place and renames it there, so that an interrupted run leaves nothing
# that looks installed.
install_kafka() {
    local stamp="kafka $KAFKA_VERSION log4j $LOG4J_VERSION slf4j $SLF4J_VERSION"
    if [ "$(cat "$KAFKA_DIR/.installed" 2>/dev/null)" = "$stamp" ]; then return; fi
    log "resolving Apache Kafka $KAFKA_VERSION (broker and Connect) from Maven Central into $KAFKA_DIR"
    local work
    work=$(mktemp -d "$JVM_HOME/.kafka.XXXXXX")
    cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.social-ingest</groupId>
  <artifactId>kafka-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
    maven -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/libs"
    rm "$work/pom.xml"
    printf '%s\n' "$stamp" >"$work/.installed"
    rm -rf "$KAFKA_DIR"
    mv "$work" "$KAFKA_DIR"
}

# Debezium publishes each connector as a Connect plugin archive: the connector and the jars it needs that Kafka
# does not provide, in one directory, as its connect image carries it. install_plugin NAME VERSION DIR.
install_plugin() {
    local name=$1 version=$2 dir=$3
    local stamp="$name $version"
    if [ "$(cat "$dir/.installed" 2>/dev/null)" = "$stamp" ]; then return; fi
    log "resolving $name $version from Maven Central into $dir"
    local work
    work=$(mktemp -d "$JVM_HOME/.plugin.XXXXXX")
    maven dependency:copy -Dartifact="io.debezium:$name:$version:tar.gz:plugin" -DoutputDirectory="$work"
    mkdir "$work/plugins"
    tar -xzf "$work/$name-$version-plugin.tar.gz" -C "$work/plugins"
    rm "$work/$name-$version-plugin.tar.gz"
    printf '%s\n' "$stamp" >"$work/.installed"
    rm -rf "$dir"
    mv "$work" "$dir"
}

mkdir -p "$JVM_HOME"
install_kafka
install_plugin debezium-connector-postgres "$DEBEZIUM_VERSION" "$DEBEZIUM_DIR"
log "ready: Apache Kafka $KAFKA_VERSION in $KAFKA_DIR, Debezium $DEBEZIUM_VERSION in $DEBEZIUM_DIR"
if $jdbc_sink; then
    install_plugin debezium-connector-jdbc "$JDBC_SINK_VERSION" "$JDBC_SINK_DIR"
    log "ready: Debezium's JDBC sink $JDBC_SINK_VERSION in $JDBC_SINK_DIR"
fi
