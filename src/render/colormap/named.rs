//! The named colormaps: rio-tiler 9.4.12's tables, embedded from `colormaps.bin`
//! (written by `tools/colormaps/generate.py`; format in `tools/colormaps/README.md`).
//!
//! The file is checked while compiling: its magic, its size, that every name is ASCII
//! and that names are in strictly increasing byte order (so lookup is a binary search).
//! A damaged file is a build error, never a request error.

/// Bytes of one colour table: 256 RGBA entries.
pub(super) const TABLE_LEN: usize = 256 * 4;

const DATA: &[u8] = include_bytes!("colormaps.bin");
const MAGIC: &[u8; 8] = b"TSCMAP01";
/// Names are ASCII, right-padded with spaces to this many bytes.
const NAME_LEN: usize = 32;
const RECORD_LEN: usize = NAME_LEN + TABLE_LEN;
const COUNT: usize = (DATA.len() - MAGIC.len()) / RECORD_LEN;

/// One named colormap: 256 RGBA entries, entry `i` for the value `i`.
#[derive(Clone, Copy)]
pub(super) struct NamedTable {
    pub(super) name: &'static str,
    pub(super) table: &'static [u8; TABLE_LEN],
}

static TABLES: [NamedTable; COUNT] = parse();

const fn parse() -> [NamedTable; COUNT] {
    let (magic, mut rest) = DATA.split_at(MAGIC.len());
    let mut i = 0;
    while i < MAGIC.len() {
        assert!(magic[i] == MAGIC[i], "colormaps.bin: bad magic");
        i += 1;
    }
    assert!(rest.len() == COUNT * RECORD_LEN, "colormaps.bin: size is not a whole number of records");
    let mut out = [NamedTable { name: "", table: &[0; TABLE_LEN] }; COUNT];
    let mut i = 0;
    while i < COUNT {
        let (record, tail) = rest.split_at(RECORD_LEN);
        let (name, table) = record.split_at(NAME_LEN);
        let name = name.trim_ascii_end();
        assert!(!name.is_empty() && name.is_ascii(), "colormaps.bin: names must be non-empty ASCII");
        if i > 0 {
            assert!(bytes_less(out[i - 1].name.as_bytes(), name), "colormaps.bin: names must be sorted");
        }
        let Ok(name) = std::str::from_utf8(name) else { panic!("colormaps.bin: name is not UTF-8") };
        let Some(table) = table.first_chunk::<TABLE_LEN>() else { panic!("colormaps.bin: short table") };
        out[i] = NamedTable { name, table };
        rest = tail;
        i += 1;
    }
    out
}

/// `a < b` in byte order, usable in a const context.
const fn bytes_less(a: &[u8], b: &[u8]) -> bool {
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// The table called exactly `name` (case-sensitive, as rio-tiler).
pub(super) fn find(name: &str) -> Option<NamedTable> {
    TABLES.binary_search_by(|t| t.name.cmp(name)).ok().map(|i| TABLES[i])
}

/// Every colormap name, in byte order.
#[must_use]
pub fn names() -> impl ExactSizeIterator<Item = &'static str> {
    TABLES.iter().map(|t| t.name)
}

/// How many named colormaps exist.
#[must_use]
pub fn count() -> usize {
    COUNT
}

/// Edit distance at which a name is suggested.
const SUGGEST_DISTANCE: usize = 2;

/// Up to five names close to `name`: compared in lowercase, those at edit distance at
/// most 2 or that start with it, nearest first.
///
/// The edit distance is computed only for names whose length is within 2 of `name`'s
/// (a larger difference alone puts them further away), so the cost is bounded by the
/// longest colormap name, not by what the caller sent.
pub(super) fn similar_names(name: &str) -> Vec<&'static str> {
    // A name over 2 bytes longer than every table's is near none and a prefix of none;
    // comparing it anyway costs its length times every name's (a 4 MB request name
    // would take seconds).
    let longest = TABLES.iter().map(|t| t.name.len()).max().unwrap_or(0);
    if name.len() > longest + 2 {
        return Vec::new();
    }
    let wanted = name.to_ascii_lowercase();
    let mut scored: Vec<(usize, &'static str)> = TABLES
        .iter()
        .filter_map(|t| {
            let prefix = wanted.len() >= 2 && t.name.starts_with(&wanted);
            let distance =
                if near_in_length(&wanted, t.name) { edit_distance(&wanted, t.name) } else { usize::MAX };
            (distance <= SUGGEST_DISTANCE || prefix).then_some((distance, t.name))
        })
        .collect();
    scored.sort_unstable();
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

/// Whether `a` and `b` differ in length by at most [`SUGGEST_DISTANCE`]: only then can
/// their edit distance be within it, so only then is it computed.
fn near_in_length(a: &str, b: &str) -> bool {
    a.len().abs_diff(b.len()) <= SUGGEST_DISTANCE
}

/// Levenshtein distance over bytes (names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, index: usize) -> [u8; 4] {
        let t = find(name).unwrap().table;
        [t[index * 4], t[index * 4 + 1], t[index * 4 + 2], t[index * 4 + 3]]
    }

    fn reversed(table: &[u8; TABLE_LEN]) -> Vec<u8> {
        table.chunks_exact(4).rev().flatten().copied().collect()
    }

    #[test]
    fn every_map_rio_tiler_ships_is_embedded() {
        // 211 files in rio-tiler 9.4.12's cmap_data: 104 maps with their "_r" reversal,
        // plus cfastie, rplumbo and schwarzwald.
        assert_eq!(count(), 211);
        assert_eq!(names().len(), 211);
        assert_eq!(names().filter(|n| n.ends_with("_r")).count(), 104);
        assert_eq!(names().next(), Some("accent"));
        assert!(
            names().all(|n| n.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'))
        );
    }

    #[test]
    fn entries_match_rio_tilers_npy_files() {
        // Read with numpy.load(rio_tiler/cmap_data/<name>.npy)[index] from rio-tiler 9.4.12.
        assert_eq!(entry("viridis", 0), [68, 1, 84, 255]);
        assert_eq!(entry("viridis", 128), [32, 144, 140, 255]);
        assert_eq!(entry("viridis", 255), [253, 231, 36, 255]);
        assert_eq!(entry("cfastie", 200), [255, 212, 1, 255]);
        assert_eq!(entry("rplumbo", 77), [51, 51, 51, 255]);
        assert_eq!(entry("schwarzwald", 3), [176, 242, 208, 255]);
        assert_eq!(entry("gist_ncar_r", 10), [246, 201, 247, 255]);
        assert_eq!(entry("twilight_shifted_r", 42), [140, 43, 80, 255]);
        assert_eq!(entry("tab10", 100), [214, 39, 40, 255]);
    }

    #[test]
    fn reversed_maps_are_rio_tilers_own_tables_not_computed_reversals() {
        // Every "_r" map has its base and the base's end colours swapped, but rio-tiler's
        // "_r" tables were sampled from matplotlib's reversed maps, so only 52 of the 104
        // are exact reversals: the others differ by rounding (gray_r, 26 entries off by
        // one) or, for qualitative maps, by where the colour steps fall (tab10_r).
        let mut exact = 0;
        for name in names().filter(|n| n.ends_with("_r")) {
            let table = find(name).unwrap().table;
            let base = find(&name[..name.len() - 2]).unwrap().table;
            assert_eq!(table[..4], base[TABLE_LEN - 4..], "{name}");
            assert_eq!(table[TABLE_LEN - 4..], base[..4], "{name}");
            exact += usize::from(table.as_slice() == reversed(base));
        }
        assert_eq!(exact, 52);
        assert_eq!(find("viridis_r").unwrap().table.as_slice(), reversed(find("viridis").unwrap().table));
        assert_eq!(entry("gray_r", 11), [244, 244, 244, 255]);
        assert_eq!(entry("gray", 255 - 11), [243, 243, 243, 255]);
        assert_eq!(entry("tab10_r", 51), [127, 127, 127, 255]);
        assert_eq!(entry("tab10", 255 - 51), [188, 189, 34, 255]);
    }

    #[test]
    fn names_are_case_sensitive_and_unknown_ones_get_suggestions() {
        assert!(find("Viridis").is_none());
        assert_eq!(similar_names("Viridis"), vec!["viridis", "cividis", "viridis_r"]);
        assert_eq!(similar_names("virdis"), vec!["viridis"]);
        assert_eq!(
            similar_names("twilight"),
            vec!["twilight", "twilight_r", "twilight_shifted", "twilight_shifted_r"]
        );
        assert!(similar_names("no-such-map-at-all").is_empty());
    }

    #[test]
    fn a_huge_name_gets_no_suggestion_and_costs_no_edit_distance() {
        // 4 MB took 13 s of a runtime thread when its distance to every name was computed.
        let huge = "v".repeat(4 << 20);
        assert_eq!(names().filter(|n| near_in_length(&huge, n)).count(), 0);
        assert!(similar_names(&huge).is_empty());
        assert!(names().filter(|n| near_in_length("virdis", n)).count() > 10);
        // Lengths within the distance are still compared: a missing letter, an extra one.
        assert_eq!(similar_names("virdis")[0], "viridis");
        assert_eq!(similar_names("viridiss")[0], "viridis");
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("virdis", "viridis"), 1);
        assert_eq!(edit_distance("magma", "magma"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("jet", "hot"), 2);
    }
}
