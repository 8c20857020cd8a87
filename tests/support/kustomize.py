"""Rendering deploy/kubernetes without kustomize, for machines without `kubectl`.

It understands exactly the kustomization fields our manifests use (``resources``,
``namespace``, ``labels`` without selectors, ``images`` and ``patches`` given by path, as
strategic merge patches) and refuses any other, so a manifest change that needs more is
noticed instead of rendered wrongly. Lists that Kubernetes merges by name (containers,
environment, volumes, mounts) are merged by name; every other list is replaced, as a
strategic merge patch does for lists without a merge key. Where `kubectl` is present the
tests check that this renders the same objects as `kubectl kustomize`.
"""

import copy
from pathlib import Path

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
# Lists the Kubernetes API merges by their items' `name` in a strategic merge patch.
MERGED_BY_NAME = {"containers", "initContainers", "env", "volumes", "volumeMounts"}
# Objects that are not namespaced (kustomize leaves their namespace alone).
CLUSTER_SCOPED = {"Namespace"}


class UnsupportedKustomization(Exception):
    """The kustomization uses a field this renderer does not implement."""


def identity(document: dict) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


def _load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [document for document in yaml.safe_load_all(handle) if document]


def strategic_merge(target, patch, field: str = ""):
    """``patch`` merged into a copy of ``target``."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(target)
        for key, value in patch.items():
            merged[key] = strategic_merge(target[key], value, key) if key in target else value
        return merged
    if isinstance(target, list) and isinstance(patch, list) and field in MERGED_BY_NAME:
        merged = copy.deepcopy(target)
        positions = {item["name"]: index for index, item in enumerate(merged)}
        for item in patch:
            if item["name"] in positions:
                index = positions[item["name"]]
                merged[index] = strategic_merge(merged[index], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def _set_images(document: dict, images: list[dict]) -> None:
    def visit(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers"):
                    for container in value:
                        name, _, tag = container["image"].partition(":")
                        for image in images:
                            if image["name"] == name:
                                container["image"] = (
                                    f"{image.get('newName', name)}:{image.get('newTag', tag)}"
                                )
                else:
                    visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(document)


def render(directory: Path) -> list[dict]:
    """The objects ``kubectl kustomize directory`` would print, in no particular order."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise UnsupportedKustomization(f"{directory}: {sorted(unknown)} are not implemented")
    documents = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        documents.extend(render(path) if path.is_dir() else _load(path))
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise UnsupportedKustomization(f"{directory}: only patches by path are implemented")
        for patch in _load(directory / patch_entry["path"]):
            matches = [i for i, d in enumerate(documents) if identity(d) == identity(patch)]
            if len(matches) != 1:
                raise UnsupportedKustomization(f"{patch_entry['path']} matches {len(matches)}")
            documents[matches[0]] = strategic_merge(documents[matches[0]], patch)
    for document in documents:
        metadata = document["metadata"]
        if "namespace" in kustomization and document["kind"] not in CLUSTER_SCOPED:
            metadata["namespace"] = kustomization["namespace"]
        for label_set in kustomization.get("labels", []):
            if set(label_set) != {"pairs"}:
                raise UnsupportedKustomization(f"{directory}: labels only as plain pairs")
            metadata.setdefault("labels", {}).update(label_set["pairs"])
        _set_images(document, kustomization.get("images", []))
    return documents
