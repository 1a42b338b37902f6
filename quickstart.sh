#!/usr/bin/env bash
# berth quickstart: sets everything up and runs the main job end to end, offline, on the
# embedded defaults:
#   1. installs the npm dependencies and builds berth (npm ci);
#   2. makes an image from this machine's busybox (berth create) in an OCI layout;
#   3. starts berth's embedded registry (berth serve) on a free loopback port;
#   4. pushes the image to it (berth copy), lists and inspects it (berth tags, berth inspect);
#   5. pulls it into berth's local image store (berth pull) and into a layout (berth copy);
#   6. unpacks it into a runtime bundle (berth unpack) and runs it with berth-runtime (as root).
# Everything lives in a temp dir that is removed at the end (KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "quickstart: Node.js 20 or newer is needed" >&2; exit 1
fi
if [ ! -x /bin/busybox ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing busybox-static (the image's contents)"
    apt-get install -y --no-install-recommends busybox-static >/dev/null || { apt-get update >/dev/null && apt-get install -y --no-install-recommends busybox-static >/dev/null; }
  else
    echo "quickstart: /bin/busybox is missing: install Debian's busybox-static" >&2; exit 1
  fi
fi

if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ] && [ -x native/build/berth-runtime ]; then
  say "dependencies are installed: building (npm run build)"
  npm run --silent build
else
  say "installing dependencies and building (npm ci)"
  npm ci --no-audit --no-fund
fi

berth() { bin/berth "$@"; }  # npm's entry (the native front end); the server below runs node directly, so that $! is its pid
work=$(mktemp -d /tmp/berth-quickstart.XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  [ "${KEEP:-}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

say "making an image from /bin/busybox (berth create)"
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in sh echo cat ls uname id hostname; do ln -s busybox "$work/rootfs/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/rootfs/etc/group"
berth create "$work/rootfs" "oci:$work/layout:v1" \
  --cmd '["/bin/sh","-c","echo hello from berth: $(id -un) on $(hostname), $(uname -s)"]' \
  --env GREETING=hello --label org.opencontainers.image.title=quickstart
berth layout verify "oci:$work/layout"

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
say "starting the embedded registry (berth serve --addr 127.0.0.1:$port; its log: $work/registry.log)"
node bin/berth.cjs serve --addr "127.0.0.1:$port" --data "$work/registry" > "$work/registry.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  node -e "require('http').get('http://127.0.0.1:$port/v2/',r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))" && break
  sleep 0.1
done

reg="127.0.0.1:$port/demo/busybox"
say "pushing to it (berth copy), listing and inspecting"
berth copy "oci:$work/layout:v1" "docker://$reg:v1"
berth tags "$reg"
berth inspect "docker://$reg:v1"
berth digest "$reg:v1"

say "pulling it back (berth pull into the local store; berth copy into a layout)"
BERTH_ROOT="$work/store" berth pull "$reg:v1"
berth copy "docker://$reg:v1" "oci:$work/pulled:v1"

say "unpacking it into a runtime bundle (berth unpack)"
berth unpack "oci:$work/pulled:v1" "$work/bundle"
ls "$work/bundle"

if [ "$(id -u)" = 0 ]; then
  say "running the bundle (berth-runtime run, as runc run)"
  bin/berth-runtime --root "$work/runtime-state" run --bundle "$work/bundle" "quickstart-$$"
  # Without nftables there is no bridge network: the container gets none (docker's default is bridge).
  net=(); command -v nft >/dev/null || net=(--network none)
  say "one command from a reference to a running process (berth run --rm $reg:v1 ${net[*]})"
  BERTH_ROOT="$work/store" berth run --rm "${net[@]}" "$reg:v1"
else
  say "skipping the runs: containers need root (namespaces, cgroups, mounts)"
fi
say "done"
