"""What contains a devbox: no reaching other devboxes over the network, a reduced capability set that
still lets sudo and package tools work, and no access to the server's API port."""

from __future__ import annotations

import docker


def _run(http, devbox_id: str, command: str) -> dict:
    response = http.post(f"/v1/devboxes/{devbox_id}/execute_sync", json={"command": command})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_devbox_cannot_reach_another(http, devbox_factory):
    a, b = devbox_factory(), devbox_factory()
    serving = _run(
        http,
        b["id"],
        "nohup python3 -m http.server 8080 >/dev/null 2>&1 & "
        "for i in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:8080/ && break; sleep 0.1; done; "
        "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/",
    )
    assert serving["stdout"] == "200"  # b's server answers inside b
    address = _run(http, b["id"], "hostname -I")["stdout"].split()[0]
    reach = _run(http, a["id"], f"curl -s -o /dev/null --max-time 3 http://{address}:8080/; echo $?")
    assert reach["stdout"].strip() != "0", "devbox a reached devbox b"


def test_devboxes_are_on_the_isolated_network(server, devbox_factory):
    devbox = devbox_factory()
    client = docker.from_env(version="1.41")
    try:
        attrs = client.api.inspect_container(f"devbox-{devbox['id']}")
        assert list(attrs["NetworkSettings"]["Networks"]) == ["devboxd"]
        assert attrs["HostConfig"]["Privileged"] is False
        assert attrs["HostConfig"]["CapDrop"] == ["ALL"]
        assert "MKNOD" not in attrs["HostConfig"]["CapAdd"] and "NET_RAW" not in attrs["HostConfig"]["CapAdd"]
        assert attrs["HostConfig"]["PidsLimit"] > 0 and attrs["HostConfig"]["Memory"] > 0
        assert attrs["HostConfig"]["NanoCpus"] > 0
        assert not any("docker.sock" in (m.get("Source") or "") for m in attrs["Mounts"])
        options = client.api.inspect_network("devboxd")["Options"]
        assert options.get("com.docker.network.bridge.enable_icc") == "false"
        # The environment (and secrets) are not in the container's configuration.
        assert not any(e.startswith("FOO=") for e in attrs["Config"]["Env"] or [])
    finally:
        client.close()


def test_sudo_works_but_dropped_capabilities_stay_dropped(http, devbox_factory):
    devbox = devbox_factory(environment_variables={"FOO": "bar"})
    result = _run(http, devbox["id"], "sudo whoami; sudo mknod /tmp/node c 1 3; echo mknod=$?; echo FOO=$FOO")
    assert result["stdout"].splitlines()[0] == "root"
    assert "mknod=1" in result["stdout"]
    assert "FOO=bar" in result["stdout"]
    assert "Operation not permitted" in result["stderr"]


def test_the_api_port_is_not_reachable_from_a_devbox(server, http, devbox_factory):
    devbox = devbox_factory()
    client = docker.from_env(version="1.41")
    try:
        gateways = [c.get("Gateway") for c in client.api.inspect_network("devboxd")["IPAM"]["Config"]]
    finally:
        client.close()
    targets = [t for t in (*gateways, "172.17.0.1") if t]  # the host, as seen from the devbox network
    assert targets
    for target in targets:
        probe = _run(
            http, devbox["id"], f"curl -s -o /dev/null --max-time 3 http://{target}:{server.port}/health; echo $?"
        )
        assert probe["stdout"].strip() != "0", f"reached the API at {target}"
