#!/usr/bin/env python3
"""Checks generated CRDs with tools that are not ours.

1. Each CRD is valid apiextensions.k8s.io/v1 (kubernetes-validate --strict).
2. Each schema is structural as the API server demands: every node typed,
   no $ref, no keywords JSONSchemaProps lacks.
3. Every Istio document in the given directories validates against the
   openAPIV3Schema of its kind and version (jsonschema, not our serde types),
   and a document broken on purpose does not.

Usage: check_crds.py CRDS_YAML TESTDATA_DIR...
"""
import copy
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.34.0"
# Keywords of JSON Schema that apiextensions.k8s.io/v1 does not accept.
FORBIDDEN = {"$ref", "$schema", "definitions", "$defs", "propertyNames", "const",
             "examples", "contains", "if", "then", "else", "dependentRequired"}


def structural_problems(schema, path="openAPIV3Schema"):
    problems = []
    bad = FORBIDDEN.intersection(schema)
    if bad:
        problems.append(f"{path}: forbidden keywords {sorted(bad)}")
    exempt = schema.get("x-kubernetes-int-or-string") or schema.get("x-kubernetes-preserve-unknown-fields")
    if "type" not in schema and not exempt:
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: both properties and additionalProperties")
    for name, sub in schema.get("properties", {}).items():
        problems += structural_problems(sub, f"{path}.properties.{name}")
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}.items")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.additionalProperties")
    for keyword in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(schema.get(keyword, [])):
            # Inside these, k8s allows only value validations, never types.
            if "type" in sub or "properties" in sub and any("type" in p for p in sub["properties"].values()):
                problems.append(f"{path}.{keyword}[{i}]: types are not allowed inside {keyword}")
    return problems


def main():
    crds_file, *dirs = sys.argv[1:]
    crds = [d for d in yaml.safe_load_all(open(crds_file)) if d]
    if len(crds) < 9:
        sys.exit(f"expected at least 9 CRDs, found {len(crds)}")
    schemas = {}
    failures = []
    for crd in crds:
        name = crd["metadata"]["name"]
        try:
            kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            failures.append(f"{name}: not a valid CRD: {err.message} at {list(err.path)}")
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            failures += [f"{name}/{version['name']}: {p}" for p in structural_problems(schema)]
            key = (crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"])
            schemas[key] = schema
    checked = 0
    for directory in dirs:
        for file in sorted(pathlib.Path(directory).rglob("*.yaml")):
            for doc in yaml.safe_load_all(file.read_text()):
                if not doc or "/" not in doc.get("apiVersion", ""):
                    continue
                group, version = doc["apiVersion"].split("/")
                schema = schemas.get((group, version, doc.get("kind")))
                if schema is None:
                    continue
                errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
                failures += [f"{file}: {doc['kind']} {doc['metadata']['name']}: {e.message} at {list(e.path)}" for e in errors]
                checked += 1
                broken = copy.deepcopy(doc)
                broken["spec"] = "not an object"
                if jsonschema.Draft7Validator(schema).is_valid(broken):
                    failures.append(f"{file}: a broken {doc['kind']} passed its schema")
    if checked == 0:
        failures.append("no Istio document was checked")
    for failure in failures:
        print(failure)
    print(f"{len(crds)} CRDs, {checked} documents checked: {len(failures)} problems")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
