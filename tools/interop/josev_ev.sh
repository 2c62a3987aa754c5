#!/usr/bin/env bash
# Interoperability check by hand (not CI): the third-party EV simulator of the PyPI package
# `iso15118` ("Josev", EXI through a Java VM) against our `evse secc`, over a real veth pair
# between the root network namespace (charger) and a namespace `evns` (EV): SDP multicast on
# ff02::1, -20 over plain TCP (--allow-plain-tcp-iso20). Needs root, Java, and PyPI access.
# iso2_dc / iso2_ac: Josev's ISO 15118-2 EIM configurations (its supportedProtocols =
# ISO_15118_2 only, plain TCP) against a charger offering iso20 and iso2 (`--protocols`).
#
#   tools/interop/josev_ev.sh dc|dc_bpt|ac|ac_bpt|iso2_dc|iso2_ac [extra `evse secc` options]
#   e.g. tools/interop/josev_ev.sh dc_bpt --discharge-window 5,15
#        tools/interop/josev_ev.sh dc_bpt --control-modes dynamic
#        tools/interop/josev_ev.sh iso2_dc --protocols iso20,iso2
# JOSEV_CONFIG: another Josev EVCC config file (e.g. several supportedProtocols).
# NETNS and VETH name the namespace and the veth pair (default evns, veth: veth-secc/veth-ev),
# so that two runs on one machine do not share a link.
set -euo pipefail
cfg=${1:?usage: $0 dc|dc_bpt|ac|ac_bpt|iso2_dc|iso2_ac [evse secc options]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${JOSEV_VENV:-/tmp/josev-venv}
logs=${LOGS:-/tmp/interop-$cfg}
ns=${NETNS:-evns}
veth=${VETH:-veth}
mkdir -p "$logs"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q iso15118 aiofile
fi
if ! ip netns list | grep -q "^$ns\b"; then
  ip netns add "$ns"
  ip link add "$veth-secc" type veth peer name "$veth-ev"
  ip link set "$veth-ev" netns "$ns"
  ip link set "$veth-secc" up
  ip netns exec "$ns" ip link set "$veth-ev" up
  ip netns exec "$ns" ip link set lo up
  sleep 3  # IPv6 duplicate address detection of the link-local addresses
fi

case "$cfg" in
  iso2_*) josev_cfg="iso15118_2/evcc_config_eim_${cfg#iso2_}.json" ;;
  *) josev_cfg="iso15118_20/evcc_config_$cfg.json" ;;
esac
cd "$root"
python=${PYTHON:-python3}
PYTHONPATH="$root" "$python" -m evse secc --interface "$veth-secc" --allow-plain-tcp-iso20 -v "$@" \
  > "$logs/secc.log" 2>&1 &
secc=$!
trap 'kill $secc 2>/dev/null || true' EXIT
sleep 2.5

examples=$("$venv/bin/python" -c 'import iso15118, os; print(os.path.dirname(iso15118.__file__))')
cd "$logs"
ip netns exec "$ns" env NETWORK_INTERFACE="$veth-ev" LOG_LEVEL=INFO \
  EVCC_CONFIG_PATH="${JOSEV_CONFIG:-$examples/shared/examples/evcc/$josev_cfg}" \
  timeout 120 "$venv/bin/python" -m iso15118.evcc.main > "$logs/ev.log" 2>&1 || true

grep -E "Entered state|ERROR|validation failed|Reason" "$logs/ev.log" \
  | sed 's/.*states ([0-9]*): //' | uniq -c | cut -c1-200
grep -q "Entered state SessionStop" "$logs/ev.log" && echo "RESULT: session completed" \
  || { echo "RESULT: session did not complete (logs in $logs)"; exit 1; }
