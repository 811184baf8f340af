"""Turn a run's checkpoint into a shippable pretrained-model file (issue 15).

    python scripts/export_pretrained.py RUN_OR_CHECKPOINT OUT.safetensors [--g-only] [--notes parzen.json]

Writes OUT atomically (G and D weights + the run's config as safetensors
metadata; see advnets.pretrained) and prints its SHA-256 and size, and the
fields a REGISTRY entry needs. A run directory means its latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from advnets.checkpoint import resolve_checkpoint
from advnets.errors import AdvnetsError
from advnets.pretrained import export_pretrained


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a run directory (its latest checkpoint) or a checkpoint file")
    p.add_argument("out", type=Path, help="the .safetensors file to write")
    p.add_argument(
        "--g-only", action="store_true", help="leave D out: a smaller file (sampling and evaluation need only G)"
    )
    p.add_argument("--notes", type=Path, default=None, metavar="JSON", help="a JSON file stored as the 'notes'")
    args = p.parse_args(argv)
    try:
        if args.out.suffix != ".safetensors":
            raise AdvnetsError(f"{args.out}: expected a file name ending in .safetensors")
        notes = None
        if args.notes is not None:
            try:
                notes = json.loads(args.notes.read_text())
            except (OSError, ValueError) as e:
                raise AdvnetsError(f"--notes {args.notes}: expected a readable JSON file ({e})") from None
        source = resolve_checkpoint(args.checkpoint)
        out = export_pretrained(source, args.out, include_discriminator=not args.g_only, notes=notes)
    except AdvnetsError as e:
        print(f"export_pretrained: error: {e}", file=sys.stderr)
        return 2
    print(f"{source} -> {out.path}")
    print(f"sha256 {out.sha256}")
    print(f"size {out.size_bytes} bytes ({out.size_bytes / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
