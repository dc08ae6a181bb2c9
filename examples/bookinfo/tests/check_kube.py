#!/usr/bin/env python3
"""Checks the Kubernetes manifests against the real Kubernetes OpenAPI schema
(kubernetes-validate --strict) and against what the Bookinfo walkthrough
needs: each Deployment's pods carry app and version labels its Service
selects, run as their own ServiceAccount and listen on 9080.

Usage: check_kube.py MANIFEST
"""
import sys

import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.34.0"


def main(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    problems = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{doc['kind']} {doc['metadata']['name']}: {err.message}")
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    accounts = by_kind.get("ServiceAccount", {})
    services = by_kind.get("Service", {})
    for name, deployment in by_kind.get("Deployment", {}).items():
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        if set(labels) < {"app", "version"}:
            problems.append(f"Deployment {name}: pods need app and version labels")
        selecting = [s for s in services.values() if s["spec"]["selector"].items() <= labels.items()]
        if not selecting:
            problems.append(f"Deployment {name}: no Service selects its pods")
        if pod["spec"].get("serviceAccountName") not in accounts:
            problems.append(f"Deployment {name}: its ServiceAccount is not defined")
        ports = [p.get("containerPort") for c in pod["spec"]["containers"] for p in c.get("ports", [])]
        if ports != [9080]:
            problems.append(f"Deployment {name}: listens on {ports}, not 9080")
    if len(by_kind.get("Deployment", {})) != 6:
        problems.append("expected six Deployments: details, ratings, productpage, reviews v1-v3")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
