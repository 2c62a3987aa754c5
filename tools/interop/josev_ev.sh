#!/usr/bin/env bash
# Interoperability check by hand (not CI): the third-party EV simulator of the PyPI package
# `iso15118` ("Josev", EXI through a Java VM) against our `evse secc`, over a real veth pair
# between the root network namespace (charger) and a namespace `evns` (EV): SDP multicast on
# ff02::1, -20 over plain TCP (--allow-plain-tcp-iso20). Needs root, Java, and PyPI access.
# `din`: Josev's DIN SPEC 70121 DC EV (its config offers DIN only, plain TCP); iso2_dc /
# iso2_ac: Josev's ISO 15118-2 EIM configurations (supportedProtocols = ISO_15118_2 only, plain
# TCP); give the standards the charger offers with --protocols (e.g. --protocols iso20,iso2,din).
#
#   tools/interop/josev_ev.sh dc|dc_bpt|ac|ac_bpt|din|iso2_dc|iso2_ac [extra `evse secc` options]
#   e.g. tools/interop/josev_ev.sh dc_bpt --discharge-window 5,15
#        tools/interop/josev_ev.sh dc_bpt --control-modes dynamic
#        tools/interop/josev_ev.sh din --protocols iso20,iso2,din
#        tools/interop/josev_ev.sh iso2_dc --protocols iso20,iso2,din
# JOSEV_CONFIG: another Josev EVCC config file (e.g. several supportedProtocols); PYTHON: the
# interpreter that runs `evse secc`.
# NETNS, VETH_SECC, VETH_EV name the namespace and the veth pair (default evns, veth-secc,
# veth-ev), so that several runs on one machine stay apart.
set -euo pipefail
cfg=${1:?usage: $0 dc|dc_bpt|ac|ac_bpt|din|iso2_dc|iso2_ac [evse secc options]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${JOSEV_VENV:-/tmp/josev-venv}
logs=${LOGS:-/tmp/interop-$cfg}
mkdir -p "$logs"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q iso15118 aiofile
fi
ns=${NETNS:-evns}
vsecc=${VETH_SECC:-veth-secc}
vev=${VETH_EV:-veth-ev}
if ! ip netns list | grep -q "^$ns "; then
  ip netns add "$ns"
  ip link add "$vsecc" type veth peer name "$vev"
  ip link set "$vev" netns "$ns"
  ip link set "$vsecc" up
  ip netns exec "$ns" ip link set "$vev" up
  ip netns exec "$ns" ip link set lo up
  sleep 3  # IPv6 duplicate address detection of the link-local addresses
fi

cd "$root"
python=${PYTHON:-python3}
PYTHONPATH="$root" "$python" -m evse secc --interface "$vsecc" --allow-plain-tcp-iso20 -v "$@" \
  > "$logs/secc.log" 2>&1 &
secc=$!
trap 'kill $secc 2>/dev/null || true' EXIT
sleep 2.5

examples=$("$venv/bin/python" -c 'import iso15118, os; print(os.path.dirname(iso15118.__file__))')
case "$cfg" in
  din) config="$examples/shared/examples/evcc/DIN/evcc_config.json" ;;
  iso2_*) config="$examples/shared/examples/evcc/iso15118_2/evcc_config_eim_${cfg#iso2_}.json" ;;
  *) config="$examples/shared/examples/evcc/iso15118_20/evcc_config_$cfg.json" ;;
esac
config=${JOSEV_CONFIG:-$config}
cd "$logs"
ip netns exec "$ns" env NETWORK_INTERFACE="$vev" LOG_LEVEL=INFO EVCC_CONFIG_PATH="$config" \
  timeout 120 "$venv/bin/python" -m iso15118.evcc.main > "$logs/ev.log" 2>&1 || true

grep -E "Entered state|ERROR|validation failed|Reason" "$logs/ev.log" \
  | grep -v -E "Message to encode|Decoded message" \
  | sed 's/.*states ([0-9]*): //' | uniq -c | cut -c1-200
if grep -E "FAILED" "$logs/ev.log" | grep -v "EVErrorCode" | head -5 | grep .; then
  echo "RESULT: a FAILED response code (logs in $logs)"; exit 1
fi
grep -q "Entered state SessionStop" "$logs/ev.log" && echo "RESULT: session completed" \
  || { echo "RESULT: session did not complete (logs in $logs)"; exit 1; }
