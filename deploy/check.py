#!/usr/bin/env python3
"""Validates deploy/: renders each kustomization, checks every manifest against the
Kubernetes schemas (kubernetes-validate --strict), and checks that the manifests agree
with the server's config file and the Dockerfile. `make deploy-check` runs it.

No kustomize binary is needed: this renders the small subset of kustomize the
kustomizations here use (resources, namespace, images, configMapGenerator with files,
strategic-merge patches of plain maps) and refuses anything else, so a kustomization
that grows past the subset fails here instead of being checked wrongly. The
ConfigMap's name suffix is a content hash like kustomize's, not the same digits.

Usage: check.py [--kubernetes-validate PATH]
"""

import argparse
import copy
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
KUSTOMIZATIONS = [DEPLOY / "k8s/base", DEPLOY / "k8s/overlays/example"]
# Oldest and newest Kubernetes minor versions the manifests are checked against.
KUBERNETES_VERSIONS = ["1.31.0", "1.37.0"]
# Tessera stops its workers within this long after the drain (server.rs: pool.shutdown).
WORKER_STOP = 2.0
SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "configMapGenerator", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


class CheckError(Exception):
    """A finding that fails the check."""


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def render(directory):
    """The resources of a kustomization directory, transformed as kustomize would."""
    kfile = directory / "kustomization.yaml"
    k = load_docs(kfile)[0]
    unknown = set(k) - SUPPORTED_KEYS
    if unknown:
        raise CheckError(f"{kfile}: {sorted(unknown)} not supported by deploy/check.py's renderer")
    resources = []
    for entry in k.get("resources", []):
        path = directory / entry
        resources += render(path) if path.is_dir() else load_docs(path)
    renames = {}
    for gen in k.get("configMapGenerator", []):
        if set(gen) - {"name", "files"}:
            raise CheckError(f"{kfile}: configMapGenerator supports name and files only")
        data = {}
        for spec in gen["files"]:
            key, _, rel = spec.rpartition("=")
            rel_path = directory / rel
            data[key or rel_path.name] = rel_path.read_text(encoding="utf-8")
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}
        digest = hashlib.sha256(json.dumps(cm, sort_keys=True).encode()).hexdigest()[:10]
        cm["metadata"]["name"] = renames[gen["name"]] = f"{gen['name']}-{digest}"
        resources.append(cm)
    for r in resources:
        rename_config_maps(r, renames)
    if "namespace" in k:
        for r in resources:
            if r["kind"] not in CLUSTER_SCOPED:
                r["metadata"]["namespace"] = k["namespace"]
    for image in k.get("images", []):
        for r in resources:
            for c in containers(r):
                set_image(c, image)
    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            raise CheckError(f"{kfile}: only `patches: - path: FILE` (strategic merge) is supported")
        for p in load_docs(directory / patch["path"]):
            target = [r for r in resources if same_object(r, p)]
            if len(target) != 1:
                raise CheckError(f"{kfile}: patch {patch['path']} matches {len(target)} resources, not 1")
            merge_maps(target[0], p, f"{patch['path']}")
    return resources


def same_object(r, p):
    group = lambda obj: obj["apiVersion"].rpartition("/")[0]  # noqa: E731
    return (r["kind"], group(r), r["metadata"]["name"]) == (p["kind"], group(p), p["metadata"]["name"])


def merge_maps(target, patch, where):
    for key, value in patch.items():
        if isinstance(value, list):
            raise CheckError(f"{where}: lists in patches are not supported by this renderer ({key})")
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_maps(target[key], value, f"{where}.{key}")
        else:
            target[key] = copy.deepcopy(value)


def pod_spec(r):
    if r["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return r["spec"]["template"]["spec"]
    return None


def containers(r):
    spec = pod_spec(r)
    return (spec.get("containers", []) + spec.get("initContainers", [])) if spec else []


def rename_config_maps(r, renames):
    spec = pod_spec(r)
    if not spec:
        return
    for v in spec.get("volumes", []):
        if "configMap" in v:
            v["configMap"]["name"] = renames.get(v["configMap"]["name"], v["configMap"]["name"])
    for c in containers(r):
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                src["configMapRef"]["name"] = renames.get(src["configMapRef"]["name"], src["configMapRef"]["name"])
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("configMapKeyRef")
            if ref:
                ref["name"] = renames.get(ref["name"], ref["name"])


def set_image(container, image):
    """kustomize `images`: a container whose image name (without tag or digest) matches."""
    name, digest_sep, _ = container["image"].partition("@")
    repo, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:  # no tag, or the colon belonged to a registry port
        repo, tag = name, ""
    if repo != image["name"]:
        return
    suffix = f"@{image['digest']}" if "digest" in image else f":{image['newTag']}" if "newTag" in image else ""
    if not suffix:
        suffix = container["image"][len(repo) :]
    container["image"] = image.get("newName", repo) + suffix


def duration_seconds(text, what):
    """A humantime duration ("5s", "1m 30s", "500ms") in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+)\s*([a-z]+)", text)
    if not parts or re.sub(r"(\d+)\s*([a-z]+)|\s", "", text):
        raise CheckError(f"{what} = {text!r} is not a duration this check understands")
    try:
        return sum(int(n) * units[u] for n, u in parts)
    except KeyError as e:
        raise CheckError(f"{what} = {text!r}: unknown unit {e}") from None


def validate_schemas(name, docs, validator):
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, doc in enumerate(docs):
            path = Path(tmp) / f"{i:02}-{doc['kind']}-{doc['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
            files.append(str(path))
        for version in KUBERNETES_VERSIONS:
            cmd = [validator, "--strict", "--quiet", "-k", version, *files]
            run = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
            output = (run.stdout + run.stderr).strip()
            if run.returncode != 0 or "WARN" in output.upper() or "ERROR" in output.upper():
                raise CheckError(f"{name}: kubernetes-validate --strict -k {version} failed:\n{output}")
        print(f"  {len(docs)} manifests valid for Kubernetes {', '.join(KUBERNETES_VERSIONS)} (strict)")


def check_consistency(name, docs):
    """The Deployment, its Services and NetworkPolicy agree with tessera.toml and the image."""
    fail = lambda msg: CheckError(f"{name}: {msg}")  # noqa: E731
    deployments = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "tessera"]
    if len(deployments) != 1:
        raise fail("expected one Deployment named tessera")
    spec = pod_spec(deployments[0])
    container = next(c for c in spec["containers"] if c["name"] == "tessera")

    # The config file: TESSERA_CONFIG, inside a ConfigMap volume.
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    config_path = env.get("TESSERA_CONFIG")
    if not config_path:
        raise fail("the container has no TESSERA_CONFIG")
    mount = next((m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"] + "/")), None)
    volume = mount and next((v for v in spec["volumes"] if v["name"] == mount["name"]), None)
    if not volume or "configMap" not in volume:
        raise fail(f"TESSERA_CONFIG={config_path} is not in a mounted ConfigMap")
    cm = next((d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]), None)
    if cm is None:
        raise fail(f"the ConfigMap {volume['configMap']['name']} is not rendered")
    key = config_path[len(mount["mountPath"]) + 1 :]
    try:
        config = tomllib.loads(cm["data"][key])
    except (KeyError, tomllib.TOMLDecodeError) as e:
        raise fail(f"ConfigMap key {key}: {e}") from None

    # Ports: listen = containerPort = every gRPC probe = Services' targets = NetworkPolicy.
    listen_port = int(config.get("listen", "0.0.0.0:50051").rpartition(":")[2])
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    if ports.get("grpc") != listen_port:
        raise fail(f"containerPort grpc={ports.get('grpc')} but tessera.toml listens on {listen_port}")
    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_name)
        if probe is None:
            raise fail(f"no {probe_name}")
        if probe.get("grpc", {}).get("port") != listen_port:
            raise fail(f"{probe_name} is not a gRPC probe on port {listen_port}: {probe}")
    if container["readinessProbe"]["grpc"].get("service", "") not in ("", "tessera.v1.TileService"):
        raise fail("readinessProbe must ask for '' or tessera.v1.TileService, which follow the pool")
    for svc in (d for d in docs if d["kind"] == "Service"):
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            if ports.get(target, target) != listen_port:
                raise fail(f"Service {svc['metadata']['name']} targets {target}, not {listen_port}")
    for np in (d for d in docs if d["kind"] == "NetworkPolicy"):
        allowed = {p["port"] for rule in np["spec"].get("ingress", []) for p in rule.get("ports", [])}
        if listen_port not in allowed:
            raise fail(f"NetworkPolicy {np['metadata']['name']} does not admit port {listen_port}")

    # Drain: preStop sleep, then shutdown_delay + shutdown_grace + stopping the workers.
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if len(command) != 2 or not command[0].endswith("sleep"):
        raise fail(f"preStop must be exec [sleep, N], is {command}")
    pre_stop = float(command[1])
    delay = duration_seconds(config.get("shutdown_delay", "0s"), "shutdown_delay")
    grace = duration_seconds(config.get("shutdown_grace", "10s"), "shutdown_grace")
    needed = pre_stop + delay + grace + WORKER_STOP
    period = spec.get("terminationGracePeriodSeconds", 30)
    if not period > needed:
        raise fail(
            f"terminationGracePeriodSeconds={period} must exceed preStop {pre_stop}s + shutdown_delay "
            f"{delay}s + shutdown_grace {grace}s + {WORKER_STOP}s to stop workers = {needed}s"
        )

    # The image: its USER and EXPOSE match the securityContext and the listen port.
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    user = re.findall(r"^USER\s+(\d+)", dockerfile, re.M)[-1]
    if int(user) != container["securityContext"]["runAsUser"]:
        raise fail(f"runAsUser {container['securityContext']['runAsUser']} but the Dockerfile has USER {user}")
    exposed = re.findall(r"^EXPOSE\s+(\d+)", dockerfile, re.M)
    if str(listen_port) not in exposed:
        raise fail(f"the Dockerfile does not EXPOSE {listen_port}")
    print(f"  port {listen_port} consistent; drain {needed:g}s < terminationGracePeriodSeconds {period}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-validate", default="kubernetes-validate", help="the validator to run")
    args = parser.parse_args()
    try:
        for directory in KUSTOMIZATIONS:
            name = str(directory.relative_to(DEPLOY.parent))
            print(f"deploy-check: {name}")
            docs = render(directory)
            validate_schemas(name, docs, args.kubernetes_validate)
            check_consistency(name, docs)
        yaml.safe_load(open(DEPLOY / "otel-collector.yaml", encoding="utf-8"))
    except (CheckError, OSError, yaml.YAMLError) as e:
        print(f"deploy-check: FAILED: {e}", file=sys.stderr)
        return 1
    print("deploy-check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
