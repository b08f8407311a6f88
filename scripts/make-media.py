"""Write the store walk video that the demo and the molecule scenarios feed to the client.

It is made from the photos of Debian's darknet package (see tests/media.py); an existing file
is kept, so a second run does nothing.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from media import make_walk_video


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".cache/media/store-walk.mp4")
    if out.is_file():
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".part.mp4")
    make_walk_video(tmp, frames=90)
    tmp.replace(out)
    print(f"make-media: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
