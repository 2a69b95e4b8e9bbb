"""Writes src/render/colormap/colormaps.bin, Tessera's table of named colormaps.

Development-time tool: reads every 256 x RGBA uint8 `.npy` table that the installed
rio-tiler ships in its `cmap_data` package and packs them into one file that the Rust
code embeds with `include_bytes!`. See README.md beside this file for the format.

Usage (from the repository root, with rio-tiler and numpy installed):

    python tools/colormaps/generate.py [OUTPUT]
"""

import pathlib
import sys
from importlib.metadata import version
from importlib.resources import as_file, files

import numpy

MAGIC = b"TSCMAP01"
NAME_LEN = 32
DEFAULT_OUTPUT = pathlib.Path("src/render/colormap/colormaps.bin")


def load_tables() -> dict[str, numpy.ndarray]:
    """Every colormap table shipped by rio-tiler, by name (the file stem)."""
    tables = {}
    with as_file(files("rio_tiler") / "cmap_data") as folder:
        for path in sorted(pathlib.Path(folder).glob("*.npy")):
            table = numpy.load(path)
            if table.shape != (256, 4) or table.dtype != numpy.uint8:
                raise SystemExit(f"{path.name}: expected 256 x 4 uint8, got {table.shape} {table.dtype}")
            tables[path.stem] = table
    if not tables:
        raise SystemExit("no .npy colormap found in rio_tiler/cmap_data")
    return tables


def pack(tables: dict[str, numpy.ndarray]) -> bytes:
    """MAGIC, then one record per map in byte order of the names: the name in ASCII,
    right-padded with spaces to NAME_LEN bytes, then 256 RGBA entries (1024 bytes)."""
    out = bytearray(MAGIC)
    for name in sorted(tables, key=lambda n: n.encode("ascii")):
        encoded = name.encode("ascii")
        if len(encoded) > NAME_LEN or encoded != encoded.strip() or b" " in encoded:
            raise SystemExit(f"colormap name {name!r} does not fit the format")
        out += encoded.ljust(NAME_LEN, b" ")
        out += numpy.ascontiguousarray(tables[name]).tobytes()
    return bytes(out)


def main() -> None:
    output = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    tables = load_tables()
    data = pack(tables)
    output.write_bytes(data)
    print(f"wrote {output}: {len(tables)} colormaps from rio-tiler {version('rio-tiler')}, {len(data)} bytes")


if __name__ == "__main__":
    main()
