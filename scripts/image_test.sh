#!/usr/bin/env bash
# `make image-test`: run the image as an operator would and use it.
#   CONTAINERS_CONF=deploy/containers.conf scripts/image_test.sh localhost/local-search-appliance:VERSION
# A named volume at /data, the port published on loopback only, an admin key handed in as a
# podman secret (APPLIANCE_ADMIN_KEY_FILE). Waits for /ready and for the HEALTHCHECK to say
# healthy, then creates a collection, ingests and searches with the key (a request without
# one is refused), stops and starts the container, and finds the same documents. The sample
# corpus is off: its first-start ingest would hold up the stop (and the CPU) for a minute.
set -euo pipefail

image=$1
podman=podman
repo=$(cd "$(dirname "$0")/.." && pwd)
port=${IMAGE_TEST_PORT:-18766}
name=appliance-image-test-$$
volume=$name-data
secret=$name-admin-key
work=$(mktemp -d /tmp/image-test.XXXXXX)

cleanup() {
    $podman rm --force --time 5 "$name" > /dev/null 2>&1 || true
    $podman volume rm --force "$volume" > /dev/null 2>&1 || true
    $podman secret rm "$secret" > /dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "image-test: FAILED: $*; the container said:" >&2
    $podman logs --tail 40 "$name" >&2 || true
    exit 1
}

mb=$($podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f", $1 / 1e6}')
echo "image-test: $image: $mb MB"

# An admin key shaped like the appliance's own (lsa_<id>_<secret>), never on a command line.
umask 077
python3 -c 'import secrets; print(f"lsa_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}")' \
    > "$work/admin_key"
$podman secret create "$secret" "$work/admin_key" > /dev/null
key=$(cat "$work/admin_key")

$podman volume create "$volume" > /dev/null

wait_healthy() {
    local deadline=$((SECONDS + 180))
    until $podman healthcheck run "$name" > /dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "the HEALTHCHECK never passed"
        sleep 1
    done
    local health
    health=$($podman inspect --format '{{.State.Health.Status}}' "$name")
    [ "$health" = healthy ] || fail "podman reports the container $health"
    echo "image-test: HEALTHCHECK: $health"
}

start=$SECONDS
$podman run --detach --name "$name" \
    --volume "$volume:/data" \
    --publish "127.0.0.1:$port:8000" \
    --secret "$secret,target=admin_key,uid=10001,gid=10001,mode=0400" \
    --env APPLIANCE_ADMIN_KEY_FILE=/run/secrets/admin_key \
    --env APPLIANCE_LOAD_SAMPLE=false \
    "$image" > /dev/null
smoke() {
    python3 "$repo/scripts/smoke_http.py" "http://127.0.0.1:$port" "$@" --key "$key" \
        --expect-auth || fail "smoke $1"
}
smoke write
wait_healthy
echo "image-test: first start to /ready and a search: $((SECONDS - start)) s"
user=$($podman exec "$name" id -un)
[ "$user" = appliance ] || fail "the server runs as $user, not as appliance"

$podman stop --time 60 "$name" > /dev/null
start=$SECONDS
$podman start "$name" > /dev/null
smoke check
wait_healthy
echo "image-test: restart to /ready, same documents: $((SECONDS - start)) s"
echo "image-test: passed"
