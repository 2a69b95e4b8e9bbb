//! The flags the docs name: docs/configuration.md against `tessera serve --help`
//! (every flag with its variable and default), and every `--flag` of every page against
//! the flags `tessera` has.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use super::{
    assert_same,
    markdown::{self, code_spans, read, section, table},
};
use crate::harness::BIN;

/// One option of a `--help` text.
#[derive(Debug)]
struct HelpFlag {
    env: Option<String>,
    /// The `[default: …]` the help gives, if any.
    default: Option<String>,
}

/// `tessera ARGS --help`: the text, and its options by long name.
fn help(args: &[&str]) -> (String, BTreeMap<String, HelpFlag>) {
    let out = Command::new(BIN).args(args).arg("--help").env("NO_COLOR", "1").output().unwrap();
    assert!(out.status.success(), "tessera {args:?} --help failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut flags = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') && line.starts_with("  ") && line.len() - trimmed.len() <= 6 {
            let long = trimmed.split([' ', ',', '=', '[']).find(|w| w.starts_with("--"));
            current = long.map(str::to_owned);
            if let Some(long) = &current {
                flags.insert(long.clone(), HelpFlag { env: None, default: None });
            }
        }
        let Some(flag) = current.as_ref().and_then(|c| flags.get_mut(c)) else { continue };
        if let Some(rest) = line.split("[env: ").nth(1) {
            flag.env = rest.split('=').next().map(str::to_owned);
        }
        if let Some(rest) = line.split("[default: ").nth(1) {
            flag.default = rest.split(']').next().map(str::to_owned);
        }
    }
    flags.remove("--help");
    flags.remove("--version");
    (text, flags)
}

/// Every long flag of every `tessera` command, hidden ones (`bench --floor`, the
/// worker's) included: the clap definitions the binary is built from, and the global
/// flags `serve --help` shows.
fn every_flag() -> BTreeSet<String> {
    use clap::{Args, Command as Cli};
    let commands = [
        tessera::config::ServeArgs::augment_args(Cli::new("serve")),
        tessera::client::GetArgs::augment_args(Cli::new("get")),
        tessera::client::InfoArgs::augment_args(Cli::new("info")),
        tessera::client::BuildOverviewArgs::augment_args(Cli::new("build-overview")),
        tessera::client::BenchArgs::augment_args(Cli::new("bench")),
        tessera::client::ChaosArgs::augment_args(Cli::new("chaos")),
        tessera::ipc::limits::WorkerLimits::augment_args(Cli::new("worker")),
    ];
    let mut flags: BTreeSet<String> = commands
        .iter()
        .flat_map(|c| c.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")))
        .collect();
    flags.extend(help(&["serve"]).1.into_keys());
    flags.extend(["--help", "--version"].map(str::to_owned));
    flags
}

#[test]
fn the_configuration_page_lists_every_flag_of_serve_with_its_variable_and_default() {
    let (help_text, flags) = help(&["serve"]);
    let page = read("docs/configuration.md");
    let rows = table(section(&page, "Configuration"));
    let mut documented = BTreeSet::new();
    for row in &rows {
        let row_flags: Vec<String> = code_spans(&row[0]).iter().flat_map(|s| markdown::flags_in(s)).collect();
        let envs: Vec<String> =
            code_spans(&row[1]).into_iter().filter(|s| s.starts_with("TESSERA_")).collect();
        for (i, flag) in row_flags.iter().enumerate() {
            let Some(help) = flags.get(flag) else { continue };
            assert_eq!(envs.get(i), help.env.as_ref(), "{flag}: the variable on the page is not the flag's");
            // A default the help gives as one value (up to a ',' or ';') opens the cell.
            let default = help.default.as_deref().and_then(|d| d.split([',', ';']).next()).map(str::trim);
            if let Some(value) = default.filter(|d| !d.contains(' ')) {
                let cell = row[2].replace('`', "");
                let after = cell.strip_prefix(value).unwrap_or_else(|| {
                    panic!("{flag}: the help's default is {value:?}, the page says {:?}", row[2])
                });
                assert!(
                    !after.starts_with(|c: char| c.is_ascii_alphanumeric()),
                    "{flag}: {value:?} vs {cell:?}"
                );
            }
        }
        documented.extend(row_flags);
    }
    assert_same("tessera serve's flags", &documented, &flags.keys().cloned().collect());
    // Every flag and variable the page names anywhere exists.
    for span in code_spans(&page) {
        for flag in markdown::flags_in(&span).into_iter().filter(|f| f != "--help") {
            assert!(flags.contains_key(&flag), "the page names {flag}, which tessera serve does not have");
        }
        if span.starts_with("TESSERA_") {
            // Named in the help as a whole word (TESSERA_AUTH_TOKEN, not only _FILE).
            let named = help_text.match_indices(span.as_str()).any(|(i, _)| {
                !help_text[i + span.len()..].starts_with(|c: char| c == '_' || c.is_ascii_alphanumeric())
            });
            assert!(named, "the page names {span}, which tessera serve --help does not");
        }
    }
}

#[test]
fn every_flag_the_docs_name_is_a_flag_of_tessera() {
    let known = every_flag();
    for page in markdown::pages() {
        for span in code_spans(&read(&page)) {
            // Commands of other programs quoted in the text.
            if ["cargo ", "make ", "gdalwarp ", "kubernetes-validate "].iter().any(|p| span.starts_with(p)) {
                continue;
            }
            for flag in markdown::flags_in(&span) {
                assert!(known.contains(&flag), "{page} names {flag}, a flag of no tessera command");
            }
        }
    }
}
