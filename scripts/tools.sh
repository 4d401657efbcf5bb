#!/usr/bin/env bash
# Builds the tools the chart tests need into the virtualenv: helm, from its Go module (the Go
# module proxy is the one place it can come from here). Skipped when the right version is there.
set -euo pipefail
HELM_VERSION=v3.22.0
BIN="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin"
if [ -x "$BIN/helm" ] && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  exit 0
fi
GO="$(command -v go || true)"
[ -n "$GO" ] || GO=/usr/local/go/bin/go
if [ ! -x "$GO" ]; then
  echo "Go is needed to build helm $HELM_VERSION for the chart tests; install Go 1.24 or newer." >&2
  exit 1
fi
echo "Building helm $HELM_VERSION (once)..." >&2
GOBIN="$BIN" CGO_ENABLED=0 "$GO" install -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
