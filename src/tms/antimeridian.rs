//! Longitude/latitude boxes that may cross the antimeridian.
//!
//! An asset whose footprint straddles ±180° (a UTM zone 60 or zone 1 scene, Fiji, the
//! Aleutians) has lon/lat bounds whose west edge lies east of its east edge: GDAL's
//! `OCTTransformBounds`, which the workers' info job uses, answers
//! `[179.77, 51.36, -179.77, 51.65]` for such a scene, and RFC 7946 (GeoJSON, §5.2)
//! writes a crossing bbox the same way. Tessera keeps that convention everywhere a lon/lat
//! box is stored or returned: **west > east means the box wraps across ±180°**.
//!
//! Such a box is never compared as a plane box. [`BBox::lon_lat_parts`] cuts it at the
//! antimeridian into two boxes that do not cross; [`BBox::intersects_lon_lat`] compares
//! parts; [`lon_lat_union`] and [`BBox::lon_lat_centre`] work on the circle of
//! longitudes, so the union of a crossing footprint with its neighbours is the narrow
//! box over the Pacific rather than the whole world, and its centre lies over the data.

use super::BBox;

/// Degrees of longitude around the world.
const FULL_TURN: f64 = 360.0;

impl BBox {
    /// Whether the box, read as longitude/latitude, crosses the antimeridian (its west
    /// edge lies east of its east edge).
    #[must_use]
    pub fn crosses_antimeridian(&self) -> bool {
        self.min_x > self.max_x
    }

    /// The lon/lat box as boxes that do not cross the antimeridian: itself, or for a
    /// crossing box the part from its west edge to 180° and the part from -180° to its
    /// east edge.
    pub fn lon_lat_parts(&self) -> impl Iterator<Item = BBox> + use<> {
        let b = *self;
        let (first, second) = if b.crosses_antimeridian() {
            (BBox { max_x: 180.0, ..b }, Some(BBox { min_x: -180.0, ..b }))
        } else {
            (b, None)
        };
        std::iter::once(first).chain(second)
    }

    /// Whether two lon/lat boxes share area (touching edges do not count), either of
    /// which may cross the antimeridian.
    #[must_use]
    pub fn intersects_lon_lat(&self, other: &BBox) -> bool {
        self.lon_lat_parts().any(|a| other.lon_lat_parts().any(|b| a.intersects(&b)))
    }

    /// The middle of the lon/lat box: for a crossing box, the middle of the arc from its
    /// west edge eastwards over the antimeridian to its east edge, in -180..=180.
    #[must_use]
    pub fn lon_lat_centre(&self) -> (f64, f64) {
        let width = if self.crosses_antimeridian() {
            self.max_x + FULL_TURN - self.min_x
        } else {
            self.max_x - self.min_x
        };
        let mut lon = self.min_x + width / 2.0;
        if lon > 180.0 {
            lon -= FULL_TURN;
        }
        (lon, f64::midpoint(self.min_y, self.max_y))
    }
}

/// The smallest lon/lat box holding every box of `boxes` (any of which may cross the
/// antimeridian), `None` when there is none.
///
/// Latitudes are the plain extremes. While no box reaches the antimeridian (crosses it
/// or touches ±180°), longitudes are the plain extremes too, as they always were: a
/// layer over the Americas and Asia keeps bounds a client without antimeridian support
/// can use. Once one does, longitudes are the shortest arc of the circle covering every
/// box, the complement of the widest stretch no box reaches: when that stretch lies
/// around ±180° (or ties with the widest one elsewhere) the answer is the plain box,
/// otherwise it crosses and is written west > east. Boxes covering every longitude give
/// -180..180.
pub fn lon_lat_union(boxes: impl IntoIterator<Item = BBox>) -> Option<BBox> {
    let mut spans: Vec<(f64, f64)> = Vec::new();
    let (mut south, mut north) = (f64::INFINITY, f64::NEG_INFINITY);
    for b in boxes {
        south = south.min(b.min_y);
        north = north.max(b.max_y);
        spans.extend(b.lon_lat_parts().map(|p| (p.min_x, p.max_x)));
    }
    let reaches_antimeridian = spans.iter().any(|&(west, east)| west <= -180.0 || east >= 180.0);
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Overlapping or touching spans merged, west to east.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(spans.len());
    for (west, east) in spans {
        match merged.last_mut() {
            Some(last) if west <= last.1 => last.1 = last.1.max(east),
            _ => merged.push((west, east)),
        }
    }
    let (&(first_west, _), &(_, last_east)) = (merged.first()?, merged.last()?);
    let plain = BBox { min_x: first_west, min_y: south, max_x: last_east, max_y: north };
    if !reaches_antimeridian {
        return Some(plain);
    }
    // The gap over the antimeridian, then the widest gap between neighbouring spans.
    let around = first_west + FULL_TURN - last_east;
    let widest = merged
        .windows(2)
        .map(|pair| (pair[1].0 - pair[0].1, pair[1].0, pair[0].1))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Some(match widest {
        Some((gap, west, east)) if gap > around => {
            BBox { min_x: west, min_y: south, max_x: east, max_y: north }
        }
        _ => plain,
    })
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the values are exact sums of the inputs
mod tests {
    use super::*;

    fn bbox([min_x, min_y, max_x, max_y]: [f64; 4]) -> BBox {
        BBox { min_x, min_y, max_x, max_y }
    }

    /// The lon/lat bounds GDAL 3.6's transform_bounds gives the UTM zone 60 scene of the
    /// integration tests (tests/integration/antimeridian.rs).
    const ALEUTIAN_SCENE: [f64; 4] = [179.773, 51.362, -179.767, 51.649];

    #[test]
    fn a_crossing_box_splits_at_the_antimeridian_and_a_plain_one_does_not() {
        let parts: Vec<BBox> = bbox(ALEUTIAN_SCENE).lon_lat_parts().collect();
        assert_eq!(parts, [bbox([179.773, 51.362, 180.0, 51.649]), bbox([-180.0, 51.362, -179.767, 51.649])]);
        let plain = bbox([-75.0, 40.0, -74.0, 41.0]);
        assert_eq!(plain.lon_lat_parts().collect::<Vec<_>>(), [plain]);
        assert!(bbox(ALEUTIAN_SCENE).crosses_antimeridian());
        assert!(!plain.crosses_antimeridian());
        // The whole world is written -180..180 and does not cross.
        assert!(!bbox([-180.0, -90.0, 180.0, 90.0]).crosses_antimeridian());
    }

    #[test]
    fn tiles_on_either_side_of_the_antimeridian_meet_a_crossing_scene() {
        let scene = bbox(ALEUTIAN_SCENE);
        // Web Mercator z10 tiles 1023/340 (west of 180°) and 0/340 (east of -180°).
        let west_of = bbox([179.648_437_5, 51.399_206, 180.0, 51.618_017]);
        let east_of = bbox([-180.0, 51.399_206, -179.648_437_5, 51.618_017]);
        for tile in [west_of, east_of] {
            assert!(scene.intersects_lon_lat(&tile), "{tile:?}");
            assert!(tile.intersects_lon_lat(&scene), "{tile:?}");
            // The plane test, which the front used before, misses both.
            assert!(!scene.intersects(&tile));
        }
        // Far away in longitude, or at the right longitude and the wrong latitude.
        assert!(!scene.intersects_lon_lat(&bbox([0.0, 51.4, 0.35, 51.6])));
        assert!(!scene.intersects_lon_lat(&bbox([179.8, 10.0, 180.0, 11.0])));
        // Just outside either edge, touching it, and sharing only the antimeridian line.
        assert!(!scene.intersects_lon_lat(&bbox([179.0, 51.4, 179.773, 51.6])));
        assert!(!scene.intersects_lon_lat(&bbox([-179.767, 51.4, -179.0, 51.6])));
        assert!(scene.intersects_lon_lat(&bbox([179.0, 51.4, 179.774, 51.6])));
        assert!(!bbox([170.0, 0.0, 180.0, 1.0]).intersects_lon_lat(&bbox([-180.0, 0.0, -170.0, 1.0])));
    }

    #[test]
    fn two_crossing_boxes_meet_across_the_antimeridian() {
        let a = bbox([179.0, 0.0, -179.0, 1.0]);
        assert!(a.intersects_lon_lat(&bbox([179.5, 0.5, -170.0, 2.0])));
        assert!(a.intersects_lon_lat(&a));
        // The same longitudes, touching along a parallel only.
        assert!(!a.intersects_lon_lat(&bbox([178.0, 1.0, -179.5, 2.0])));
    }

    #[test]
    fn plain_boxes_intersect_as_before() {
        let a = bbox([0.0, 0.0, 1.0, 1.0]);
        for other in
            [[1.0, 0.0, 2.0, 1.0], [0.5, 0.5, 2.0, 2.0], [-1.0, -1.0, 0.0, 0.5], [0.2, 0.2, 0.3, 0.3]]
        {
            assert_eq!(a.intersects_lon_lat(&bbox(other)), a.intersects(&bbox(other)), "{other:?}");
        }
    }

    #[test]
    fn the_centre_of_a_crossing_box_lies_over_the_antimeridian() {
        assert_eq!(bbox([177.0, -20.0, -178.0, -16.0]).lon_lat_centre(), (179.5, -18.0));
        assert_eq!(bbox([179.0, -20.0, -177.0, -16.0]).lon_lat_centre(), (-179.0, -18.0));
        assert_eq!(bbox([179.0, 0.0, -179.0, 2.0]).lon_lat_centre(), (180.0, 1.0));
        assert_eq!(bbox([-75.0, 40.0, -73.0, 41.0]).lon_lat_centre(), (-74.0, 40.5));
    }

    #[test]
    fn the_union_of_boxes_away_from_the_antimeridian_is_their_extremes() {
        let union = lon_lat_union([bbox([-75.0, 40.0, -74.0, 41.0]), bbox([-74.5, 39.0, -73.0, 40.5])]);
        assert_eq!(union, Some(bbox([-75.0, 39.0, -73.0, 41.0])));
        assert_eq!(lon_lat_union([]), None);
        // Far apart, even with the widest gap over Greenwich: the plain extremes.
        let union = lon_lat_union([bbox([-120.0, 0.0, -110.0, 1.0]), bbox([110.0, 0.0, 120.0, 1.0])]);
        assert_eq!(union, Some(bbox([-120.0, 0.0, 120.0, 1.0])));
    }

    #[test]
    fn the_union_with_a_crossing_box_stays_over_the_antimeridian() {
        let scene = bbox([177.0, -20.0, -178.0, -15.0]);
        assert_eq!(lon_lat_union([scene]), Some(scene));
        // Neighbours on either side widen it; one inside leaves it as it is.
        let union =
            lon_lat_union([bbox([175.0, -18.0, 176.0, -17.0]), scene, bbox([-179.0, -21.0, -176.0, -19.0])]);
        assert_eq!(union, Some(bbox([175.0, -21.0, -176.0, -15.0])));
        assert_eq!(lon_lat_union([scene, bbox([179.0, -18.0, 179.5, -17.0])]), Some(scene));
        // Two plain boxes that each touch ±180° from their own side (a footprint cut at
        // the antimeridian, as some catalogues store it).
        let union = lon_lat_union([bbox([170.0, 0.0, 180.0, 1.0]), bbox([-180.0, 0.0, -170.0, 1.0])]);
        assert_eq!(union, Some(bbox([170.0, 0.0, -170.0, 1.0])));
        // A crossing box and one far away: the shorter way round holds both.
        let union = lon_lat_union([scene, bbox([20.0, 0.0, 21.0, 1.0])]);
        assert_eq!(union, Some(bbox([20.0, -20.0, -178.0, 1.0])));
        // A box touching 180° and one whose gaps to it either way round tie: plain.
        let union = lon_lat_union([bbox([170.0, 0.0, 180.0, 1.0]), bbox([-10.0, 0.0, 0.0, 1.0])]);
        assert_eq!(union, Some(bbox([-10.0, 0.0, 180.0, 1.0])));
        // Boxes covering every longitude between them: the whole world, not crossing.
        let union = lon_lat_union([scene, bbox([-178.5, 0.0, 177.5, 1.0])]);
        assert_eq!(union, Some(bbox([-180.0, -20.0, 180.0, 1.0])));
    }
}
