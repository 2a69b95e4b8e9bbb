"""The peer's answer for Tessera's parity tests (tests/integration/parity.rs).

Reads one case as JSON from stdin and writes what rio-tiler makes of it as two .npy
files: `data.npy` (bands, height, width) and `mask.npy` (height, width, uint8: the
alpha, 255 = valid). Prints a JSON line with the dtype and shape.

Two modes:

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


def main():
    case = json.load(sys.stdin)
    image = peer_image(case) if case["mode"] == "peer" else post_image(case)
    if case.get("rescale"):
        image.rescale(in_range=[tuple(r) for r in case["rescale"]])
    colormap = colormap_of(case)
    if colormap is not None:
        image = image.apply_colormap(colormap)
        alpha = image.alpha_mask.astype(numpy.uint8)
        data = image.array.data
    else:
        data = image.array.data
        alpha = numpy.where(image.mask > 0, 255, 0).astype(numpy.uint8)
    os.makedirs(case["out"], exist_ok=True)
    numpy.save(os.path.join(case["out"], "data.npy"), data)
    numpy.save(os.path.join(case["out"], "mask.npy"), alpha)
    print(json.dumps({"dtype": str(data.dtype), "shape": list(data.shape)}))


if __name__ == "__main__":
    main()
