"""Generate Python code from protos/ (``make protos``) and lint the contracts with buf.

Generated code goes to ``gen/`` with a descriptor set (``gen/mbt_descriptors.binpb``)
that the gateway reads its REST routes from. Nothing in ``gen/`` is edited by hand.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

DESCRIPTOR_SET = "mbt_descriptors.binpb"
# Third-party protos our contracts import; they ship in googleapis-common-protos.
THIRD_PARTY = (
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/api/field_behavior.proto",
    "google/type/date.proto",
)


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _well_known_include() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).parent / "_proto"


def generate(proto_root: Path, out: Path) -> None:
    from grpc_tools import protoc

    files = sorted(str(p.relative_to(proto_root)) for p in proto_root.rglob("*.proto"))
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{proto_root}",
        f"-I{_site_packages()}",
        f"-I{_well_known_include()}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--descriptor_set_out={out / DESCRIPTOR_SET}",
        "--include_imports",
        "--include_source_info",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package_dir in [out / "mbt", *(p for p in (out / "mbt").rglob("*") if p.is_dir())]:
        (package_dir / "__init__.py").touch()


def lint(proto_root: Path, buf: Path) -> int:
    """Run `buf lint` on our protos; third-party imports are copied beside them unlinted."""
    deps = Path("build/buf-deps")
    shutil.rmtree(deps, ignore_errors=True)
    for name in THIRD_PARTY:
        target = deps / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_site_packages() / name, target)
    return subprocess.call([str(buf), "lint"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lint", action="store_true", help="buf lint instead of generating")
    parser.add_argument("proto_root", type=Path)
    parser.add_argument("target", type=Path, help="output dir, or the buf binary with --lint")
    args = parser.parse_args(argv)
    if args.lint:
        return lint(args.proto_root, args.target)
    generate(args.proto_root, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
