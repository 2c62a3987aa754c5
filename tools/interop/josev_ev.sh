#!/usr/bin/env bash
# Interoperability check by hand (not CI): the third-party EV simulator of the PyPI package
# `iso15118` ("Josev", EXI through a Java VM) against our `evse secc`, over a real veth pair
# between the root network namespace (charger) and a namespace `evns` (EV): SDP multicast on
# ff02::1, -20 over plain TCP (--allow-plain-tcp-iso20). Needs root, Java, and PyPI access.
#
#   tools/interop/josev_ev.sh dc|dc_bpt|ac|ac_bpt [extra `evse secc` options]
#   e.g. tools/interop/josev_ev.sh dc_bpt --discharge-window 5,15
#        tools/interop/josev_ev.sh dc_bpt --control-modes dynamic
set -euo pipefail
cfg=${1:?usage: $0 dc|dc_bpt|ac|ac_bpt [evse secc options]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${JOSEV_VENV:-/tmp/josev-venv}
logs=${LOGS:-/tmp/interop-$cfg}
mkdir -p "$logs"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q iso15118 aiofile
fi
if ! ip netns list | grep -q '^evns'; then
  ip netns add evns
  ip link add veth-secc type veth peer name veth-ev
  ip link set veth-ev netns evns
  ip link set veth-secc up
  ip netns exec evns ip link set veth-ev up
  ip netns exec evns ip link set lo up
  sleep 3  # IPv6 duplicate address detection of the link-local addresses
fi

cd "$root"
PYTHONPATH="$root" python3 -m evse secc --interface veth-secc --allow-plain-tcp-iso20 -v "$@" \
  > "$logs/secc.log" 2>&1 &
secc=$!
trap 'kill $secc 2>/dev/null || true' EXIT
sleep 2.5

examples=$("$venv/bin/python" -c 'import iso15118, os; print(os.path.dirname(iso15118.__file__))')
cd "$logs"
ip netns exec evns env NETWORK_INTERFACE=veth-ev LOG_LEVEL=INFO \
  EVCC_CONFIG_PATH="$examples/shared/examples/evcc/iso15118_20/evcc_config_$cfg.json" \
  timeout 120 "$venv/bin/python" -m iso15118.evcc.main > "$logs/ev.log" 2>&1 || true

grep -E "Entered state|ERROR|validation failed|Reason" "$logs/ev.log" \
  | sed 's/.*states ([0-9]*): //' | uniq -c | cut -c1-200
grep -q "Entered state SessionStop" "$logs/ev.log" && echo "RESULT: session completed" \
  || { echo "RESULT: session did not complete (logs in $logs)"; exit 1; }
