#!/usr/bin/env bash
# Installs what the project needs from Debian when it is missing: a JDK/JRE for the local Kafka
# broker, Maven to fetch the broker's jars once, Python's venv module, and Prometheus (promtool).
set -euo pipefail
need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
# promtool checks and unit-tests the alert rules; the Prometheus server scrapes a demo run in the tests.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages: ${need[*]}. Install them (sudo apt-get install ${need[*]}) and retry." >&2
    exit 1
  fi
  echo "Installing system packages: ${need[*]}" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
