# Sourced by scripts/demo and scripts/walkthrough: a private loopback mosquitto for one run.
# free_port prints a free 127.0.0.1 TCP port; start_broker WORKDIR PORT [WS_PORT] starts mosquitto (TCP, plus a
# WebSockets listener when WS_PORT is given), sets $broker to its pid and waits until PORT accepts connections.
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_broker() {
  local work="$1" port="$2" ws_port="${3:-}"
  {
    echo "listener $port 127.0.0.1"
    if [ -n "$ws_port" ]; then echo "listener $ws_port 127.0.0.1"; echo "protocol websockets"; fi
    echo "allow_anonymous true"
    echo "persistence false"
    if [ "$(id -u)" -eq 0 ]; then echo "user root"; fi
  } > "$work/mosquitto.conf"
  /usr/sbin/mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
  broker=$!
  for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; sleep 0.1; done
  echo "mosquitto did not start on port $port: $(cat "$work/mosquitto.log")" >&2
  return 1
}
