//! Render parity on a corpus of the kinds of GeoTIFF users have, made here with gdal-bin
//! (`gdal_translate`, `gdalwarp`, `gdaladdo`, `rgb2pct.py`) from one demo scene, once
//! per test cache, and compared with rio-tiler 9.4 (`tests/parity/reference.py`, mode
//! "corpus").
//!
//! Every file is tiled at rio-tiler's min, middle and max zoom (or zooms of its own where
//! rio-tiler's range says nothing: the whole world, a pole, the antimeridian), on the tile
//! at the centre of its lon/lat bounds, with the nearest and the bilinear read kernel
//! (`reproject` unset: a nearest warp in both). NPY tiles must be identical: the same data
//! type and shape, the same mask, every valid value bit for bit.
//!
//! One file is compared through a copy: JPEG-YCbCr. Debian's GDAL 3.6 (libjpeg-turbo
//! 2.1) and the GDAL 3.10 in rasterio's wheels decode the same JPEG blocks differently:
//! measured on this corpus's file, 17.0% of the full-resolution pixels differ (by up to
//! 69, mean 0.19 per sample), 23.5% of the 2x overview's and 47.6% of the 4x's. So
//! rio-tiler reads a copy decoded by GDAL 3.6 (`gdal_translate -co COPY_SRC_OVERVIEWS=YES`,
//! overviews included) and Tessera the JPEG file: every pixel must still match, which
//! leaves the decoder as the only difference. The share of pixels that differ from
//! rio-tiler's own decoding is printed.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use serde_json::{Value, json};
use tessera::pb::v1;

use crate::harness::{self, Server, ServerOptions, differing_pixels, fixtures, npy_tile, parse_npy};

/// The corpus directory under the fixtures (the server's data directory).
const DIR: &str = "corpus-v1";

/// Four GCPs at the scene's corners and one at its centre (pixel, line, lon, lat), a
/// little off the scene's own lon/lat grid so the GCP transformer has work to do.
const GCPS: &str = "-gcp 0 0 -75.0410 39.9706 -gcp 1024 0 -75.0170 39.9710 -gcp 0 1024 -75.0408 39.9522 \
                    -gcp 1024 1024 -75.0168 39.9525 -gcp 512 512 -75.0290 39.9617";

/// One corpus file: how it is made and how it is compared.
struct Recipe {
    name: &'static str,
    /// Commands run in order in the corpus directory, split on whitespace: `{src}` is
    /// the demo scene (`utm_rgb_00.tif`: UTM 18N, 3 x uint8, nodata 0, 1024 px of 2 m,
    /// tiled, overviews 512 and 256), `{out}` this file, `{name}` its name.
    steps: &'static [&'static str],
    /// Zooms to compare; empty: rio-tiler's min, middle and max.
    zooms: &'static [u32],
    /// The file rio-tiler reads instead, when not `{out}` itself.
    reference: Option<&'static str>,
    /// Also compare the PNG drawn with the file's own colour table (a paletted file).
    rgba: bool,
}

const TILED: &str = "-co TILED=YES -co BLOCKXSIZE=256 -co BLOCKYSIZE=256";
const OVERVIEWS: &str = "gdaladdo -q -r nearest {out} 2 4";

impl Recipe {
    const fn new(name: &'static str, steps: &'static [&'static str]) -> Self {
        Self { name, steps, zooms: &[], reference: None, rgba: false }
    }

    const fn zooms(self, zooms: &'static [u32]) -> Self {
        Self { zooms, ..self }
    }

    fn file(&self) -> String {
        format!("{}.tif", self.name)
    }
}

fn recipes() -> Vec<Recipe> {
    vec![
        // Georeferencing.
        Recipe::new("gcp", &["gdal_translate -q {tiled} -a_srs EPSG:4326 {gcps} {src} {out}"]),
        Recipe::new("gcp_overviews", &["gdal_translate -q {tiled} -a_srs EPSG:4326 {gcps} {src} {out}", OVERVIEWS]),
        // UTM 60S, 20 m pixels, across 180° at 40°S.
        Recipe::new(
            "antimeridian",
            &["gdal_translate -q {tiled} -a_srs EPSG:32760 -a_ullr 745860 5578171 766340 5557691 {src} {out}", OVERVIEWS],
        )
        .zooms(&[8, 10, 12]),
        Recipe::new("north_down", &["gdal_translate -q {tiled} -a_ullr 496500 4422452 498548 4424500 {src} {out}"]),
        Recipe::new(
            "whole_world_4326",
            &["gdal_translate -q {tiled} -a_srs EPSG:4326 -a_ullr -180 90 180 -90 -outsize 1024 512 {src} {out}", OVERVIEWS],
        )
        .zooms(&[0, 1, 2]),
        Recipe::new(
            "north_pole_4326",
            &["gdal_translate -q {tiled} -a_srs EPSG:4326 -a_ullr -180 90 180 70 -outsize 1024 256 {src} {out}", OVERVIEWS],
        )
        .zooms(&[0, 1, 2]),
        // Masks and values.
        Recipe { rgba: true, ..Recipe::new("palette", &["rgb2pct.py {src} {name}.rgb.tif", "gdal_translate -q {tiled} {name}.rgb.tif {out}", OVERVIEWS]) },
        Recipe::new(
            "mask_internal",
            &["gdal_translate -q {tiled} -b 1 -b 2 -b 3 -mask 1 -a_nodata none --config GDAL_TIFF_INTERNAL_MASK YES {src} {out}", OVERVIEWS],
        ),
        Recipe::new(
            "mask_external",
            &["gdal_translate -q {tiled} -b 1 -b 2 -b 3 -mask 1 -a_nodata none --config GDAL_TIFF_INTERNAL_MASK NO {src} {out}"],
        ),
        Recipe::new("overviews_external", &["gdal_translate -q {tiled} {src} {out}", "gdaladdo -q -ro -r nearest {out} 2 4"]),
        Recipe::new("alpha", &["gdal_translate -q {tiled} -b 1 -b 2 -b 3 -b mask -colorinterp_4 alpha -a_nodata none {src} {out}", OVERVIEWS]),
        Recipe::new(
            "nan_float32",
            &["gdal_translate -q -b 1 {src} {name}.band1.tif", "gdalwarp -q -ot Float32 -srcnodata 0 -dstnodata nan {tiled} {name}.band1.tif {out}", OVERVIEWS],
        ),
        Recipe::new("scale_offset", &["gdal_translate -q {tiled} -b 1 -ot Int16 -a_scale 0.01 -a_offset -5 {src} {out}", OVERVIEWS]),
        // Data types.
        Recipe::new("int16", &["gdal_translate -q {tiled} -b 1 -ot Int16 -scale 0 255 -2000 2000 -a_nodata -2000 {src} {out}", OVERVIEWS]),
        Recipe::new(
            "int8",
            &["gdal_translate -q {tiled} -b 1 -ot Byte -co PIXELTYPE=SIGNEDBYTE -scale 0 255 -128 127 -a_nodata -128 {src} {out}", OVERVIEWS],
        ),
        Recipe::new("uint32", &["gdal_translate -q {tiled} -b 1 -ot UInt32 -scale 0 255 0 4000000000 -a_nodata 0 {src} {out}", OVERVIEWS]),
        Recipe::new("float64", &["gdal_translate -q {tiled} -b 1 -ot Float64 -scale 0 255 -1.5 1.5 -a_nodata -1.5 {src} {out}", OVERVIEWS]),
        // Layout and compression.
        Recipe::new("striped", &["gdal_translate -q -co TILED=NO {src} {out}"]),
        Recipe {
            reference: Some("{name}.decoded.tif"),
            ..Recipe::new(
                "jpeg_ycbcr",
                &[
                    "gdal_translate -q {tiled} -co COMPRESS=JPEG -co PHOTOMETRIC=YCBCR -a_nodata none {src} {out}",
                    "gdaladdo -q -r average --config COMPRESS_OVERVIEW JPEG --config PHOTOMETRIC_OVERVIEW YCBCR {out} 2 4",
                    "gdal_translate -q {tiled} -co COPY_SRC_OVERVIEWS=YES {out} {name}.decoded.tif",
                ],
            )
        },
        Recipe::new("lzw_predictor", &["gdal_translate -q {tiled} -co COMPRESS=LZW -co PREDICTOR=2 {src} {out}", OVERVIEWS]),
        Recipe::new("zstd", &["gdal_translate -q {tiled} -co COMPRESS=ZSTD {src} {out}", OVERVIEWS]),
        Recipe::new("lerc", &["gdal_translate -q {tiled} -co COMPRESS=LERC {src} {out}", OVERVIEWS]),
        // Read at rio-tiler's min zoom (the whole scene in a 256 px tile) from full resolution.
        Recipe::new("no_overviews", &["gdal_translate -q {tiled} {src} {out}"]),
    ]
}

/// The corpus, made once (atomically, so parallel test processes agree).
fn corpus() -> &'static Path {
    static CORPUS: OnceLock<PathBuf> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = fixtures().join(DIR);
        if dir.join("complete").exists() {
            return dir;
        }
        let staging = fixtures().join(format!("{DIR}-staging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).unwrap();
        let src = fixtures().join("utm_rgb_00.tif");
        for recipe in recipes() {
            for step in recipe.steps {
                let line = step
                    .replace("{tiled}", TILED)
                    .replace("{gcps}", GCPS)
                    .replace("{src}", &src.to_string_lossy())
                    .replace("{out}", &recipe.file())
                    .replace("{name}", recipe.name);
                let mut words = line.split_whitespace();
                let program = words.next().unwrap();
                let out = Command::new(program).args(words).current_dir(&staging).output().unwrap();
                assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        std::fs::write(staging.join("complete"), b"").unwrap();
        if std::fs::rename(&staging, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
            assert!(dir.join("complete").exists());
        }
        dir
    })
}

fn request(asset: &str, tile: &Value, kernel: &str, format: v1::ImageFormat) -> v1::GetTileRequest {
    let kernel = match kernel {
        "nearest" => v1::Resampling::Nearest,
        "bilinear" => v1::Resampling::Bilinear,
        other => panic!("kernel {other}"),
    };
    v1::GetTileRequest {
        z: tile["z"].as_u64().unwrap() as u32,
        x: tile["x"].as_u64().unwrap() as u32,
        y: tile["y"].as_u64().unwrap() as u32,
        assets: vec![asset.to_owned()],
        format: format as i32,
        resampling: kernel as i32,
        ..Default::default()
    }
}

/// RGBA samples of a PNG, band by band (as NumPy's (4, height, width)).
fn png_planes(bytes: &[u8]) -> Vec<u8> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.color_type, info.bit_depth), (png::ColorType::Rgba, png::BitDepth::Eight));
    let pixels = (info.width * info.height) as usize;
    (0..4).flat_map(|c| (0..pixels).map(move |p| (c, p))).map(|(c, p)| buf[p * 4 + c]).collect()
}

#[tokio::test]
async fn a_corpus_of_varied_rasters_renders_as_rio_tiler_renders_it() {
    let dir = corpus();
    let recipes = recipes();
    let out = tempfile::tempdir().unwrap();
    let files: Vec<Value> = recipes
        .iter()
        .map(|r| {
            let reference = r.reference.map_or_else(|| r.file(), |f| f.replace("{name}", r.name));
            json!({ "label": r.name, "reference": dir.join(reference), "zooms": r.zooms, "rgba": r.rgba })
        })
        .collect();
    let case =
        json!({ "mode": "corpus", "out": out.path(), "kernels": ["nearest", "bilinear"], "files": files });
    let tiles: Vec<Value> = serde_json::from_slice(&harness::reference_script(&case)).unwrap();

    let server = Server::start_with(ServerOptions { workers: 2, ..ServerOptions::default() });
    let mut client = server.client().await;
    let mut failures = Vec::new();
    let mut compared = 0;
    for recipe in &recipes {
        let asset = format!("{DIR}/{}", recipe.file());
        let mine: Vec<&Value> = tiles.iter().filter(|t| t["label"] == recipe.name).collect();
        assert!(mine.len() >= 2, "{}: rio-tiler gave {} tiles", recipe.name, mine.len());
        for tile in mine {
            let kernel = tile["kernel"].as_str().unwrap();
            let label = format!("{} z{} {}/{} {kernel}", recipe.name, tile["z"], tile["x"], tile["y"]);
            let at = PathBuf::from(tile["out"].as_str().unwrap());
            let read = |name: &str| parse_npy(&std::fs::read(at.join(name)).unwrap());
            let theirs = (read("data.npy"), read("mask.npy"));
            let ours = match client.get_tile(request(&asset, tile, kernel, v1::ImageFormat::Npy)).await {
                Ok(t) => npy_tile(&t.into_inner()),
                Err(e) => {
                    failures.push(format!("{label}: {:?} {}", e.code(), e.message()));
                    continue;
                }
            };
            assert!(theirs.1.values.iter().any(|m| *m > 0.0), "{label}: rio-tiler's tile has no valid pixel");
            let n = differing_pixels(&label, &ours, &theirs);
            compared += 1;
            if n > 0 {
                failures.push(format!("{label}: {n} pixels differ from rio-tiler"));
            }
            if recipe.rgba {
                let png = client
                    .get_tile(request(&asset, tile, kernel, v1::ImageFormat::Png))
                    .await
                    .unwrap_or_else(|e| panic!("{label}: PNG: {e:?}"))
                    .into_inner();
                let expected = read("rgba.npy");
                let got = png_planes(&png.data);
                let expected: Vec<u8> = expected.values.iter().map(|v| *v as u8).collect();
                let off = got.iter().zip(&expected).filter(|(a, b)| a != b).count();
                if got.len() != expected.len() || off > 0 {
                    failures.push(format!(
                        "{label}: the PNG in the file's colours differs from TiTiler's in {off} samples"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {compared} tiles differ:\n{}", failures.len(), failures.join("\n"));
    eprintln!("{compared} corpus tiles identical to rio-tiler's");
}

/// The JPEG-YCbCr file against rio-tiler's own decoding of it (not a test of Tessera: a
/// measurement of the two GDALs' JPEG decoders, printed for the record).
#[tokio::test]
async fn jpeg_ycbcr_decoding_differs_between_gdal_3_6_and_3_10_by_a_measured_share() {
    let dir = corpus();
    let out = tempfile::tempdir().unwrap();
    let case = json!({ "mode": "corpus", "out": out.path(), "kernels": ["nearest"],
        "files": [{ "label": "jpeg_ycbcr", "reference": dir.join("jpeg_ycbcr.tif") }] });
    let tiles: Vec<Value> = serde_json::from_slice(&harness::reference_script(&case)).unwrap();
    let server = Server::start();
    let mut client = server.client().await;
    let mut report = Vec::new();
    for tile in &tiles {
        let at = PathBuf::from(tile["out"].as_str().unwrap());
        let read = |name: &str| parse_npy(&std::fs::read(at.join(name)).unwrap());
        let theirs = (read("data.npy"), read("mask.npy"));
        let asset = format!("{DIR}/jpeg_ycbcr.tif");
        let ours = npy_tile(
            &client
                .get_tile(request(&asset, tile, "nearest", v1::ImageFormat::Npy))
                .await
                .unwrap()
                .into_inner(),
        );
        let share = differing_pixels("jpeg", &ours, &theirs) as f64 / ours.1.values.len() as f64;
        // The decoders disagree on 17-48% of the pixels by level (module docs): any
        // more would be something other than decoding.
        assert!(share <= 0.48, "z{}: {:.1}% of pixels differ", tile["z"], share * 100.0);
        report.push(format!("z{}: {:.1}%", tile["z"], share * 100.0));
    }
    eprintln!("JPEG-YCbCr, GDAL 3.6 vs rio-tiler's 3.10, pixels that differ: {}", report.join(", "));
}

/// An interpolating warp (`reproject` bilinear) asked for explicitly: at zooms that read
/// an overview GDAL 3.6 and rio-tiler's 3.10 interpolate a little differently (Tessera
/// equals GDAL 3.6's `gdalwarp` exactly there, see `pixels.rs`). Measured on these
/// files: GCPs z13 2.01% of the pixels, z14 3.16%; whole world z1 5.56%; int16 z14
/// 0.60%, z15 2.66%; LZW z14 2.56%, z15 0.20%; each by at most 2; none at full
/// resolution nor at the world's z0 and z2. The tolerance is 6% of the pixels and 2,
/// masks exact.
#[tokio::test]
async fn an_explicit_bilinear_warp_is_within_the_measured_gdal_difference() {
    let dir = corpus();
    let out = tempfile::tempdir().unwrap();
    let names = ["lzw_predictor", "int16", "gcp_overviews", "whole_world_4326"];
    let files: Vec<Value> = recipes()
        .iter()
        .filter(|r| names.contains(&r.name))
        .map(|r| json!({ "label": r.name, "reference": dir.join(r.file()), "zooms": r.zooms }))
        .collect();
    let case = json!({ "mode": "corpus", "out": out.path(), "kernels": ["bilinear"], "reproject": "bilinear", "files": files });
    let tiles: Vec<Value> = serde_json::from_slice(&harness::reference_script(&case)).unwrap();
    assert_eq!(tiles.len(), 3 * names.len());
    let server = Server::start();
    let mut client = server.client().await;
    let mut report = Vec::new();
    for tile in &tiles {
        let label = format!("{} z{}", tile["label"].as_str().unwrap(), tile["z"]);
        let at = PathBuf::from(tile["out"].as_str().unwrap());
        let read = |name: &str| parse_npy(&std::fs::read(at.join(name)).unwrap());
        let (data, mask) = (read("data.npy"), read("mask.npy"));
        let mut request = request(
            &format!("{DIR}/{}.tif", tile["label"].as_str().unwrap()),
            tile,
            "bilinear",
            v1::ImageFormat::Npy,
        );
        request.reproject = v1::Resampling::Bilinear as i32;
        let (ours, our_mask) = npy_tile(&client.get_tile(request).await.unwrap().into_inner());
        assert_eq!(ours.descr, data.descr, "{label}");
        assert!(our_mask.values == mask.values, "{label}: masks differ");
        let n = mask.values.len();
        let (mut pixels, mut largest) = (0, 0.0_f64);
        for p in (0..n).filter(|&p| mask.values[p] > 0.0) {
            let gap = (0..data.shape[0])
                .map(|b| (ours.values[b * n + p] - data.values[b * n + p]).abs())
                .fold(0.0, f64::max);
            pixels += usize::from(gap > 0.0);
            largest = largest.max(gap);
        }
        let share = pixels as f64 / n as f64;
        report.push((label, share, largest));
    }
    let lines: Vec<String> = report
        .iter()
        .map(|(label, share, largest)| format!("{label}: {:.2}% (max {largest})", share * 100.0))
        .collect();
    eprintln!("explicit bilinear warp vs rio-tiler: {}", lines.join(", "));
    for (label, share, largest) in &report {
        assert!(
            *share <= 0.06 && *largest <= 2.0,
            "{label}: {:.2}% of pixels differ, by up to {largest}",
            share * 100.0
        );
    }
}

/// Files that cannot be placed on a map: one sentence each, FAILED_PRECONDITION, and the
/// server goes on serving.
#[tokio::test]
async fn files_that_cannot_be_placed_on_a_map_say_why_in_one_sentence() {
    let dir = fixtures().join(format!("{DIR}-unplaceable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixtures().join("utm_rgb_00.tif");
    let make = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).current_dir(&dir).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let src = src.to_string_lossy();
    make(&["gdal_create", "-q", "-outsize", "64", "64", "-bands", "1", "no_georeferencing.tif"]);
    make(&[
        "gdal_translate",
        "-q",
        "-a_srs",
        "LOCAL_CS[\"site grid\",UNIT[\"metre\",1]]",
        &src,
        "engineering.tif",
    ]);
    make(&[
        "gdal_translate",
        "-q",
        "-a_srs",
        "IAU_2015:49900",
        "-a_ullr",
        "10",
        "10",
        "11",
        "9",
        &src,
        "mars.tif",
    ]);
    let server = Server::start();
    let mut client = server.client().await;
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    for (file, why) in [
        (
            "no_georeferencing.tif",
            "the file is not georeferenced: it has neither a geotransform nor ground control points",
        ),
        (
            "engineering.tif",
            "its CRS \"site grid\" has no transformation to longitude/latitude, so it cannot be placed on a map tile",
        ),
        (
            "mars.tif",
            "its CRS \"Mars (2015) - Sphere / Ocentric\" is not on the Earth, so it cannot be placed on a map tile",
        ),
    ] {
        let asset = format!("{name}/{file}");
        let status = client.get_tile(harness::tile_request(5, 9, 12, &[&asset])).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{file}: {status:?}");
        assert_eq!(status.message(), format!("asset '{asset}' cannot be read: {why}"), "{file}");
    }
    // Still serving.
    client.get_tile(harness::tile_request(14, 4777, 6204, &["utm_rgb_00.tif"])).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
