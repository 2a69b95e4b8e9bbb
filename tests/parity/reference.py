"""The peer's answer for Tessera's parity tests (tests/integration/parity.rs).

Reads one case as JSON from stdin and writes what rio-tiler makes of it as two .npy
files: `data.npy` (bands, height, width) and `mask.npy` (height, width, uint8: the
alpha, 255 = valid). Prints a JSON line with the dtype and shape.

Tile modes:

- "peer": rio-tiler does everything, reading the assets itself (its own GDAL, 3.10 in
  rasterio's wheels, and its own read path: a WarpedVRT, then a decimated read).
- "post": rio-tiler gets Tessera's own per-asset tiles (NPY, from single-asset
  requests) and does only the steps after the read: the expression, the pixel
  selection, rescale and the colormap. The reads being identical, the outputs must be
  identical too.

Case fields: mode, out (directory), assets (paths), z, x, y, tms, tilesize,
pixel_selection (rio-tiler's name), expression, rescale ([[min, max], ...]),
colormap_name, colormap ({"values": [[v, [r,g,b,a]], ...]} or
{"intervals": [[[min, max], [r,g,b,a]], ...]}), nodata, buffer, padding, resampling,
reproject; for "post": inputs ([[data.npy, mask.npy], ...] per asset, in asset order).

Mode "corpus" (tests/integration/corpus.rs): `files` ([{label, reference (path),
zooms (optional), rgba (optional)}]), `kernels`, `reproject` (optional), `out`; see
`corpus` below.

Modes of the other reads (GetPoint, GetStatistics, GetPreview in
tests/integration/reads.rs), each rio-tiler's own Reader method on the files:

- "point": `Reader.point(lon, lat)` of each of `assets`; prints a JSON list, one
  object per asset: values, valid (per band), band_descriptions, dtype, or the name of
  the exception rio-tiler raised in `error`.
- "statistics": `Reader.statistics` of `asset`, or with `bbox` (lon/lat) of
  `Reader.part(bbox, dst_crs=<the asset's CRS>, align_bounds_with_dataset=True)`;
  prints a JSON object per band name, plus the read's width and height.
- "preview": `Reader.preview` (with `expression`), then rescale and colormap as for a
  tile; writes data.npy and mask.npy into `out` (the mask as rio-tiler's
  ImageData.mask, or the colormap's alpha, 255 = valid) and prints dtype, shape,
  bounds and CRS.

Floats are printed as strings (Python's repr: shortest exact, "nan" for NaN), so that
the Rust side parses every value exactly. Options shared by these modes: bands
(1-based indexes), nodata, max_size, width, height, resampling, percentiles, bins,
range, categorical, categories.
"""

import json
import os
import sys
import warnings

import numpy

from rio_tiler.colormap import cmap
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.mosaic import mosaic_reader
from rio_tiler.mosaic.methods import PixelSelectionMethod

warnings.simplefilter("ignore")


def colormap_of(case):
    if case.get("colormap_name"):
        return cmap.get(case["colormap_name"])
    custom = case.get("colormap")
    if not custom:
        return None
    if custom.get("values"):
        return {v: tuple(c) for v, c in custom["values"]}
    return [((lo, hi), tuple(c)) for (lo, hi), c in custom["intervals"]]


def peer_image(case):
    import morecantile

    tms = morecantile.tms.get(case.get("tms") or "WebMercatorQuad")
    options = {"tilesize": case.get("tilesize", 256)}
    for key, name in [
        ("expression", "expression"),
        ("nodata", "nodata"),
        ("buffer", "buffer"),
        ("padding", "padding"),
        ("resampling", "resampling_method"),
        ("reproject", "reproject_method"),
    ]:
        if case.get(key) not in (None, "", 0):
            options[name] = case[key]

    def tiler(asset, x, y, z, **kwargs):
        with Reader(asset, tms=tms) as src:
            return src.tile(x, y, z, **kwargs)

    method = PixelSelectionMethod[case.get("pixel_selection", "first")].value
    image, _ = mosaic_reader(
        case["assets"], tiler, case["x"], case["y"], case["z"], pixel_selection=method(), threads=0, **options
    )
    return image


def post_image(case):
    method = PixelSelectionMethod[case.get("pixel_selection", "first")].value()
    for data_path, mask_path in case["inputs"]:
        data = numpy.load(data_path)
        valid = numpy.load(mask_path) > 0
        array = numpy.ma.MaskedArray(data, mask=numpy.repeat(~valid[None], data.shape[0], axis=0))
        image = ImageData(array)
        if case.get("expression"):
            image = image.apply_expression(case["expression"])
        method.feed(image.array)
        if method.is_done:
            break
    return ImageData(method.data)


def exact(value):
    """Floats as exact strings, recursively (JSON has no NaN, and parsers round)."""
    if isinstance(value, dict):
        return {k: exact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [exact(v) for v in value]
    if isinstance(value, (float, numpy.floating)):
        return repr(float(value))
    if isinstance(value, numpy.integer):
        return int(value)
    return value


def read_options(case):
    options = {}
    if case.get("bands"):
        options["indexes"] = case["bands"]
    if case.get("nodata") is not None:
        options["nodata"] = case["nodata"]
    if case.get("resampling"):
        options["resampling_method"] = case["resampling"]
    return options


def point(case):
    answers = []
    for asset in case["assets"]:
        with Reader(asset) as src:
            try:
                pt = src.point(case["lon"], case["lat"], **read_options(case))
            except Exception as e:  # the exception's name is the answer
                answers.append({"error": type(e).__name__})
                continue
        answers.append(
            {
                "values": [float(v) for v in pt.array.data],
                "valid": [bool(m) for m in ~numpy.ma.getmaskarray(pt.array)],
                "band_descriptions": list(pt.band_descriptions),
                "dtype": str(pt.array.dtype),
            }
        )
    return answers


def statistics(case):
    options = read_options(case)
    hist = {}
    if case.get("bins"):
        hist["bins"] = case["bins"]
    if case.get("range"):
        hist["range"] = tuple(case["range"])
    with Reader(case["asset"]) as src:
        max_size = case.get("max_size") or 1024
        if case.get("bbox"):
            image = src.part(
                case["bbox"], dst_crs=src.crs, max_size=max_size, align_bounds_with_dataset=True, **options
            )
        else:
            image = src.read(max_size=max_size, **options)
    stats = image.statistics(
        categorical=case.get("categorical", False),
        categories=case.get("categories") or None,
        percentiles=case.get("percentiles") or None,
        hist_options=hist,
    )
    return {
        "width": image.width,
        "height": image.height,
        "bands": {name: s.model_dump() for name, s in stats.items()},
    }


def preview(case):
    options = read_options(case)
    for key in ("max_size", "width", "height"):
        if case.get(key):
            options[key] = case[key]
    if case.get("expression"):
        options["expression"] = case["expression"]
    with Reader(case["asset"]) as src:
        image = src.preview(**options)
        crs = src.crs.to_string()
    return {**finish(image, case), "bounds": list(image.bounds), "crs": crs}


def finish(image, case):
    """Rescale and colormap as the case asks, then data.npy and mask.npy into `out`."""
    if case.get("rescale"):
        image.rescale(in_range=[tuple(r) for r in case["rescale"]])
    colormap = colormap_of(case)
    if colormap is not None:
        image = image.apply_colormap(colormap)
        alpha = image.alpha_mask.astype(numpy.uint8)
    else:
        alpha = numpy.where(image.mask > 0, 255, 0).astype(numpy.uint8)
    data = image.array.data
    os.makedirs(case["out"], exist_ok=True)
    numpy.save(os.path.join(case["out"], "data.npy"), data)
    numpy.save(os.path.join(case["out"], "mask.npy"), alpha)
    return {"dtype": str(data.dtype), "shape": list(data.shape)}


def corpus(case):
    """Every file of the corpus at rio-tiler's min, middle and max zoom (or the case's
    own zooms), on the tile at the centre of the file's lon/lat bounds (across the
    antimeridian when west > east), with each kernel: data and mask NPY files per tile,
    and for `rgba` files also TiTiler's PNG of the tile (drawn with the file's own
    colour table), decoded, as `rgba.npy` (4, height, width)."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = []
    for item in case["files"]:
        with Reader(item["reference"]) as src:
            west, south, east, north = src.get_geographic_bounds(tms.rasterio_geographic_crs)
            zooms = item.get("zooms") or sorted({src.minzoom, (src.minzoom + src.maxzoom) // 2, src.maxzoom})
            colormap = src.colormap
        lon = (west + east) / 2 if west <= east else ((west + east + 360) / 2 + 180) % 360 - 180
        lat = (south + north) / 2
        for z in zooms:
            t = tms.tile(lon, lat, z)
            for kernel in case["kernels"]:
                out = os.path.join(case["out"], f"{item['label']}-{z}-{t.x}-{t.y}-{kernel}")
                with Reader(item["reference"]) as src:
                    image = src.tile(
                        t.x, t.y, z, resampling_method=kernel, reproject_method=case.get("reproject") or "nearest"
                    )
                found = {"label": item["label"], "z": z, "x": t.x, "y": t.y, "kernel": kernel, "out": out}
                found.update(finish(image, {"out": out}))
                if item.get("rgba"):
                    # TiTiler's PNG of a paletted file: the file's own colormap.
                    from rasterio.io import MemoryFile

                    with MemoryFile(image.render(img_format="PNG", colormap=colormap)) as m, m.open() as png:
                        numpy.save(os.path.join(out, "rgba.npy"), png.read())
                tiles.append(found)
    return tiles


def main():
    case = json.load(sys.stdin)
    if case["mode"] == "corpus":
        print(json.dumps(corpus(case)))
        return
    reads = {"point": point, "statistics": statistics, "preview": preview}
    if case["mode"] in reads:
        print(json.dumps(exact(reads[case["mode"]](case))))
        return
    image = peer_image(case) if case["mode"] == "peer" else post_image(case)
    print(json.dumps(finish(image, case)))


if __name__ == "__main__":
    main()
