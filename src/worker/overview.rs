//! Which overview a tile is warped from, chosen as rio-tiler's read chooses it, so
//! tiles at zooms coarser than the asset match rio-tiler's pixel for pixel.
//!
//! rio-tiler reads a tile from a warped VRT of the tile's extent at the asset's own
//! resolution (in the tile's CRS), decimated to the tile's size. GDAL serves such a read
//! from the VRT's implicit overview (one per overview of the asset) whose resolution is
//! the coarsest not beyond the requested one, allowing 20% oversampling for the
//! nearest read kernel and 1% for the others, and warps from that overview. Tessera
//! computes the same choice and hands it to `gdalwarp -ovr`, whose own `AUTO` rule
//! differs (no oversampling allowance).

/// The sizes a choice is made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    /// The tile's extent in its CRS: width, height.
    pub extent: (f64, f64),
    /// The tile's size in pixels.
    pub out: (u32, u32),
    /// The asset's pixel size warped to the tile's CRS (GDAL's suggested warp output).
    pub native_resolution: (f64, f64),
    /// The asset's size in pixels.
    pub asset: (usize, usize),
    /// Its overviews' sizes, in GDAL's order.
    pub overviews: Vec<(usize, usize)>,
}

/// The overview to warp from (GDAL's index), or `None` for full resolution.
#[must_use]
pub fn choose(sizes: &Sizes, nearest_read_kernel: bool) -> Option<usize> {
    let (out_w, out_h) = (f64::from(sizes.out.0.max(1)), f64::from(sizes.out.1.max(1)));
    let (extent_w, extent_h) = sizes.extent;
    // rio-tiler's VRT: the asset's resolution, or the tile's when that is finer.
    let res_x = sizes.native_resolution.0.min(extent_w / out_w);
    let res_y = sizes.native_resolution.1.min(extent_h / out_h);
    if !(res_x > 0.0 && res_y > 0.0) {
        return None;
    }
    let vrt_w = (extent_w / res_x).round().max(1.0);
    let vrt_h = (extent_h / res_y).round().max(1.0);
    let desired = (vrt_w / out_w).min(vrt_h / out_h);
    // GDAL 3.10 (rio-tiler's) allows 1.01 rather than exactly 1.0 for the other
    // kernels, against numerical noise: an overview 0.6% finer than wanted is taken.
    let threshold = if nearest_read_kernel { 1.2 } else { 1.01 };
    let (asset_w, asset_h) = (sizes.asset.0 as f64, sizes.asset.1 as f64);
    let mut best = (None, 1.0);
    for (i, &(ovr_w, ovr_h)) in sizes.overviews.iter().enumerate() {
        if ovr_w == 0 || ovr_h == 0 {
            continue;
        }
        // The VRT's implicit overview: the VRT scaled by the asset overview's ratio.
        let implicit_w = (vrt_w / (asset_w / ovr_w as f64) + 0.5).floor().max(1.0);
        let implicit_h = (vrt_h / (asset_h / ovr_h as f64) + 0.5).floor().max(1.0);
        let resolution = (vrt_w / implicit_w).min(vrt_h / implicit_h);
        if resolution > best.1 && resolution <= desired * threshold {
            best = (Some(i), resolution);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// utm_rgb_00.tif of the demo data (1024 px, overviews 512 and 256) under Web
    /// Mercator tiles: rio-tiler's VRT is 3746 px wide at z12 and 936 px at z14.
    fn demo(extent: f64, out: u32) -> Sizes {
        Sizes {
            extent: (extent, extent),
            out: (out, out),
            native_resolution: (2.612_f64, 2.612),
            asset: (1024, 1024),
            overviews: vec![(512, 512), (256, 256)],
        }
    }

    #[test]
    fn a_tile_takes_the_coarsest_overview_within_the_oversampling_allowance() {
        let z12 = 40_075_016.685_578_49 / 4096.0;
        let z14 = z12 / 4.0;
        // z12: 3746 / 256 = 14.6 wanted; the 4x overview.
        assert_eq!(choose(&demo(z12, 256), true), Some(1));
        // z14: 936 / 256 = 3.66 wanted; 4x is within 20% for nearest, not for others.
        assert_eq!(choose(&demo(z14, 256), true), Some(1));
        assert_eq!(choose(&demo(z14, 256), false), Some(0));
        // z16: 234 px of VRT for 256: full resolution.
        assert_eq!(choose(&demo(z14 / 4.0, 256), true), None);
        // Over-zoomed: the VRT takes the tile's resolution.
        assert_eq!(choose(&demo(z14 / 64.0, 256), true), None);
    }

    #[test]
    fn other_kernels_take_an_overview_up_to_one_percent_finer_than_wanted() {
        // A 508 px VRT for 256: 1.984x wanted, the 2x overview is 0.8% beyond it. GDAL
        // 3.10 takes it (threshold 1.01; measured on a lon/lat asset over a pole at z1).
        let sizes = Sizes {
            extent: (508.0, 508.0),
            out: (256, 256),
            native_resolution: (1.0, 1.0),
            asset: (1024, 1024),
            overviews: vec![(512, 512)],
        };
        assert_eq!(choose(&sizes, false), Some(0));
        let coarser = Sizes { extent: (500.0, 500.0), ..sizes };
        assert_eq!(choose(&coarser, false), None);
    }

    #[test]
    fn degenerate_sizes_read_full_resolution() {
        let mut sizes = demo(1000.0, 256);
        sizes.native_resolution = (0.0, 0.0);
        assert_eq!(choose(&sizes, true), None);
        sizes.native_resolution = (f64::NAN, 1.0);
        assert_eq!(choose(&sizes, true), None);
        let mut no_overviews = demo(1_000_000.0, 256);
        no_overviews.overviews.clear();
        assert_eq!(choose(&no_overviews, true), None);
    }
}
