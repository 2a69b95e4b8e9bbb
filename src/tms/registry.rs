//! The tile matrix sets one server offers: the built-in ones plus those loaded from
//! OGC TMS 2.0 JSON files at start.

use std::path::PathBuf;

use super::{TileMatrixSet, TmsError, parse_ogc_json};

/// The server's tile matrix sets, looked up by id.
#[derive(Debug, Clone)]
pub struct TileMatrixSets {
    sets: Vec<TileMatrixSet>,
}

impl Default for TileMatrixSets {
    fn default() -> Self {
        Self { sets: vec![TileMatrixSet::WEB_MERCATOR_QUAD, TileMatrixSet::WORLD_CRS84_QUAD] }
    }
}

impl TileMatrixSets {
    /// The built-in sets plus one per file (OGC TMS 2.0 JSON); an id may appear once.
    pub fn load(files: &[PathBuf]) -> Result<Self, TmsError> {
        let mut sets = Self::default();
        for file in files {
            let path = file.display().to_string();
            let text =
                std::fs::read_to_string(file).map_err(|error| TmsError::Io { path: path.clone(), error })?;
            let tms = parse_ogc_json(&path, &text)?;
            if sets.get(tms.id()).is_some() {
                return Err(TmsError::Invalid {
                    path,
                    message: format!(
                        "id {:?} is already taken (by a built-in set or another file)",
                        tms.id()
                    ),
                });
            }
            sets.sets.push(tms);
        }
        Ok(sets)
    }

    /// The set named `id`; the empty id means `WebMercatorQuad`.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<TileMatrixSet> {
        if id.is_empty() {
            return Some(TileMatrixSet::WEB_MERCATOR_QUAD);
        }
        self.sets.iter().copied().find(|s| s.id() == id)
    }

    /// Every set, built-in ones first.
    #[must_use]
    pub fn all(&self) -> &[TileMatrixSet] {
        &self.sets
    }

    /// The ids, comma-separated, for error messages.
    #[must_use]
    pub fn names(&self) -> String {
        self.sets.iter().map(|s| s.id()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_add_sets_and_ids_stay_unique() {
        let dir = tempfile::tempdir().unwrap();
        let utm = dir.path().join("utm.json");
        std::fs::write(&utm, super::super::ogc::tests::UTM_GRID).unwrap();
        let sets = TileMatrixSets::load(std::slice::from_ref(&utm)).unwrap();
        assert_eq!(sets.names(), "WebMercatorQuad, WorldCRS84Quad, UTM18NQuad");
        assert_eq!(sets.get("").unwrap(), TileMatrixSet::WEB_MERCATOR_QUAD);
        assert!(sets.get("UTM18NQuad").unwrap().is_custom());
        assert!(sets.get("utm18nquad").is_none());
        let e = TileMatrixSets::load(&[utm.clone(), utm]).unwrap_err().to_string();
        assert!(e.ends_with("id \"UTM18NQuad\" is already taken (by a built-in set or another file)"), "{e}");
        let web = dir.path().join("web.json");
        std::fs::write(&web, super::super::ogc::tests::UTM_GRID.replace("UTM18NQuad", "WebMercatorQuad"))
            .unwrap();
        assert!(TileMatrixSets::load(&[web]).is_err());
    }
}
