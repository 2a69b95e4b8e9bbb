//! The top-level modules of `src/` and the `crate::` modules each one imports, read from
//! the sources (comments left out), for the module map of `docs/ARCHITECTURE.md`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use super::markdown::root;

/// Module → the other top-level modules its files name as `crate::module`.
pub fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let mut modules: BTreeSet<String> = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if (path.is_dir() || path.extension().is_some_and(|e| e == "rs")) && name != "main" && name != "lib" {
            modules.insert(name);
        }
    }
    let mut out: BTreeMap<String, BTreeSet<String>> =
        modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    let mut files = Vec::new();
    collect(&src, &mut files);
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
        if !modules.contains(&module) {
            continue;
        }
        let text = without_comments(&std::fs::read_to_string(&file).unwrap());
        for name in named_modules(&text) {
            if modules.contains(&name) && name != module {
                out.get_mut(&module).unwrap().insert(name);
            }
        }
    }
    out
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The text with `//` comments removed (doc links name modules without importing them).
fn without_comments(text: &str) -> String {
    text.lines().map(|l| l.find("//").map_or(l, |i| &l[..i])).collect::<Vec<_>>().join("\n")
}

/// The first path segment after each `crate::`, and the top-level names of each
/// `crate::{...}` group.
fn named_modules(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (0, true);
            let mut word = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        start = true;
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 && start {
                    if c.is_alphanumeric() || c == '_' {
                        word.push(c);
                    } else if !word.is_empty() {
                        names.push(std::mem::take(&mut word));
                        start = false;
                    }
                }
            }
            if !word.is_empty() {
                names.push(word);
            }
        } else {
            names.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    names
}
