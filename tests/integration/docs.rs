//! The reference pages under `docs/` checked against the code, as the README's grpcurl
//! cookbook is (`grpcurl.rs`): what a page lists is compared, both ways where the page
//! claims to be complete, with what the binary's `--help`, the compiled proto, a running
//! server's `/metrics` and OTLP export, and the sources say. A flag, RPC, field, metric,
//! test hook or fuzz target added, renamed or removed in the code fails here until the
//! page follows; so does a link to a file or heading that no longer exists.

mod api;
mod flags;
mod markdown;
mod metrics;
mod modules;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use self::markdown::{code_spans, is_screaming, read, section, table};

/// Fails naming what `code` has and `page` lacks, and what `page` has and `code` lacks.
pub fn assert_same(what: &str, page: &BTreeSet<String>, code: &BTreeSet<String>) {
    let missing: Vec<_> = code.difference(page).collect();
    let unknown: Vec<_> = page.difference(code).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{what}: in the code but not on the page: {missing:?}; on the page but not in the code: {unknown:?}"
    );
}

#[test]
fn the_module_map_lists_every_module_and_every_import_it_makes() {
    let page = read("docs/ARCHITECTURE.md");
    let mut allowed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in table(section(&page, "10. The module map")) {
        let imports: BTreeSet<String> =
            row[2].split(", ").filter(|m| *m != "none").map(str::to_owned).collect();
        for module in code_spans(&row[0]) {
            allowed.insert(module, imports.clone());
        }
    }
    let actual = modules::imports();
    let (listed, present): (BTreeSet<String>, BTreeSet<String>) =
        (allowed.keys().cloned().collect(), actual.keys().cloned().collect());
    assert_same("top-level modules of src/ in the module map", &listed, &present);
    for (module, imports) in &actual {
        let extra: Vec<&String> = imports.difference(&allowed[module]).collect();
        assert!(extra.is_empty(), "{module} imports {extra:?}, which the module map does not allow it");
    }
    // Together with the check above, no cycle: the allowed imports form an order.
    let mut placed: BTreeSet<String> = BTreeSet::new();
    while placed.len() < allowed.len() {
        let next: Vec<String> = allowed
            .iter()
            .filter(|(m, deps)| !placed.contains(*m) && deps.iter().all(|d| placed.contains(d)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(
            !next.is_empty(),
            "the module map has a cycle among {:?}",
            allowed.keys().filter(|m| !placed.contains(*m)).collect::<Vec<_>>()
        );
        placed.extend(next);
    }
}

#[test]
fn the_testing_page_lists_every_test_hook_and_fuzz_target() {
    let page = read("docs/testing.md");
    let hooks_source = read("src/worker/test_hooks.rs");
    let in_code: BTreeSet<String> = hooks_source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("TESSERA_TEST_") && is_screaming(s))
        .map(str::to_owned)
        .collect();
    let on_page: BTreeSet<String> = code_spans(&page)
        .iter()
        .filter(|s| s.starts_with("TESSERA_TEST_"))
        .map(|s| s.split('=').next().unwrap().to_owned())
        .collect();
    assert_same("test hooks", &on_page, &in_code);

    let targets: BTreeSet<String> = std::fs::read_dir(markdown::root().join("fuzz/fuzz_targets"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_string_lossy().strip_suffix(".rs").map(str::to_owned))
        .collect();
    let listed: BTreeSet<String> =
        table(section(&page, "Fuzzing")).iter().flat_map(|row| code_spans(&row[0])).collect();
    assert_same("fuzz targets", &listed, &targets);
}

/// A test named `module::name` (an integration test) or `a::b::tests::name` (a unit test
/// under `src/a/b`) exists.
fn test_exists(path: &str) -> bool {
    let parts: Vec<&str> = path.split("::").collect();
    let (name, modules) = parts.split_last().unwrap();
    let needle = format!("fn {name}(");
    let files: Vec<String> = if let [module] = modules {
        vec![format!("tests/integration/{module}.rs")]
    } else {
        let dir = modules.iter().filter(|m| **m != "tests").copied().collect::<Vec<_>>().join("/");
        vec![format!("src/{dir}.rs"), format!("src/{dir}/mod.rs"), format!("src/{dir}/tests.rs")]
    };
    files.iter().any(|f| std::fs::read_to_string(markdown::root().join(f)).is_ok_and(|t| t.contains(&needle)))
}

#[test]
fn the_tests_and_files_the_docs_name_exist() {
    let security = read("docs/security.md");
    let mut named = 0;
    for row in table(section(&security, "The hostile catalogue")) {
        for span in code_spans(row.last().unwrap()) {
            assert!(test_exists(&span), "docs/security.md names the test {span}, which does not exist");
            named += 1;
        }
    }
    assert!(named > 20, "only {named} tests named in the hostile catalogue");
    for page in markdown::pages().iter().filter(|p| p.starts_with("docs/") || *p == "README.md") {
        for span in code_spans(&read(page)) {
            let extension = Path::new(&span).extension().and_then(|e| e.to_str());
            let is_path = !span.starts_with('/')
                && !span.contains(['*', '<', ' '])
                && matches!(
                    extension,
                    Some("rs" | "py" | "toml" | "md" | "proto" | "binpb" | "yaml" | "txt")
                );
            // A path under one of the repository's own top-level folders.
            let top = span.split('/').next().unwrap();
            if is_path && span.contains('/') && markdown::exists(Path::new(top)) {
                // docs/ARCHITECTURE.md names modules from src/.
                let found =
                    markdown::exists(Path::new(&span)) || markdown::exists(&Path::new("src").join(&span));
                assert!(found, "{page} names {span}, which does not exist");
            } else if page == "docs/testing.md" && is_path && extension == Some("rs") {
                let test = format!("tests/integration/{span}");
                assert!(markdown::exists(Path::new(&test)), "{page} names {test}, which does not exist");
            }
        }
    }
}

#[test]
fn links_in_the_readme_and_docs_lead_to_files_and_headings_of_the_repository() {
    let readme = read("README.md");
    assert!(!readme.contains("://"), "the README points outside the repository");
    for page in markdown::pages() {
        let dir = Path::new(&page).parent().unwrap();
        for link in markdown::links(&read(&page)) {
            if link.contains("://") {
                continue;
            }
            let (file, anchor) = link.split_once('#').map_or((link.as_str(), None), |(f, a)| (f, Some(a)));
            let target = if file.is_empty() { Path::new(&page).to_path_buf() } else { dir.join(file) };
            let target = markdown::root().join(&target);
            assert!(target.exists(), "{page} links to {link}: no such file");
            if let Some(anchor) = anchor {
                let text = std::fs::read_to_string(&target).unwrap();
                assert!(
                    markdown::anchors(&text).iter().any(|a| a == anchor),
                    "{page} links to {link}: no such heading"
                );
            }
        }
    }
}
