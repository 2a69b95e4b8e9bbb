//! Fuzzes the asset policy: the input is an asset name as a request carries it,
//! resolved against the data directory and two allowed remote prefixes, and parsed as
//! a remote URL on its own. Whatever is accepted must be a canonical file under the
//! data directory or a GDAL path under an allowed prefix that the network layer cannot
//! steer elsewhere.
#![no_main]

mod common;

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::mosaic::{AssetResolver, RemoteUrl};

/// The GDAL paths of the allowed prefixes.
const ALLOWED: [&str; 2] = ["/vsicurl/https://data.example.com/cogs/", "/vsis3/naip-bucket/pa/"];

fn resolver() -> &'static AssetResolver {
    static RESOLVER: OnceLock<AssetResolver> = OnceLock::new();
    RESOLVER.get_or_init(|| {
        AssetResolver::new(common::data_dir())
            .expect("data directory resolves")
            .with_remote(&["https://data.example.com/cogs/".into(), "s3://naip-bucket/pa/".into()])
            .expect("remote prefixes parse")
    })
}

/// The URL scheme of `name`, if it has one.
fn scheme(name: &str) -> Option<String> {
    name.split_once("://").map(|(s, _)| s.to_ascii_lowercase())
}

/// Checks a GDAL path made from a remote URL: `/vsicurl/http[s]://authority/path[?query]`
/// or `/vsis3/bucket/key`. The path (for S3 the whole key: S3 has no query) is what a
/// client library normalises, so it may hold no `.` or `..` segment.
fn check_gdal_path(name: &str, gdal: &str) {
    let (authority_and_path, is_s3) = if let Some(rest) = gdal.strip_prefix("/vsis3/") {
        (rest, true)
    } else if let Some(rest) =
        gdal.strip_prefix("/vsicurl/https://").or_else(|| gdal.strip_prefix("/vsicurl/http://"))
    {
        (rest, false)
    } else {
        panic!("{name:?} became {gdal:?}, not a /vsicurl/ or /vsis3/ path");
    };
    let split = authority_and_path.find(['/', '?']).unwrap_or(authority_and_path.len());
    let (authority, path) = authority_and_path.split_at(split);
    assert!(!authority.is_empty(), "{name:?} became {gdal:?}: no host or bucket");
    assert!(!authority.contains('@'), "{name:?} became {gdal:?}: user information");
    assert!(
        !gdal.chars().any(|c| c == '#' || c.is_whitespace() || c.is_control()),
        "{name:?} became {gdal:?}: '#', whitespace or a control character"
    );
    let segments = if is_s3 { path } else { path.split('?').next().unwrap_or("") };
    assert!(
        !segments.split('/').any(|s| s == "." || s == ".."),
        "{name:?} became {gdal:?}: a '.' or '..' segment"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else { return };
    let resolver = resolver();

    let parsed = RemoteUrl::parse(name);
    if let Ok(url) = &parsed {
        assert!(matches!(scheme(name).as_deref(), Some("http" | "https" | "s3")), "{name:?} parsed as a URL");
        check_gdal_path(name, &url.gdal_path());
    }

    let Ok(asset) = resolver.resolve(name) else { return };
    assert_eq!(asset.name, name);
    assert!(!name.starts_with("/vsi"), "{name:?} accepted: a GDAL virtual file system path");
    let path = asset.path.to_str().expect("accepted asset paths are UTF-8");
    if name.contains("://") {
        assert!(
            matches!(scheme(name).as_deref(), Some("http" | "https" | "s3")),
            "{name:?} accepted with another scheme"
        );
        let url = parsed.unwrap_or_else(|e| panic!("{name:?} resolved but does not parse: {e}"));
        assert_eq!(path, url.gdal_path(), "{name:?}: resolve and parse disagree");
        assert!(
            ALLOWED.iter().any(|p| path.starts_with(p)),
            "{name:?} became {path:?}, under no allowed prefix"
        );
        check_gdal_path(name, path);
    } else {
        assert!(!path.starts_with("/vsi"), "{name:?} became {path:?}, a GDAL virtual path");
        let root = resolver.root();
        assert!(asset.path.starts_with(root), "{name:?} became {path:?}, outside {root:?}");
        let canonical = asset.path.canonicalize();
        assert!(
            canonical.as_deref().ok() == Some(asset.path.as_path()),
            "{name:?} became {path:?}, which is not canonical ({canonical:?})"
        );
        assert!(Path::new(path).is_file(), "{name:?} became {path:?}, which is not a file");
    }
});
