//! The config file of `--config`: every group's keys, flat at the top level (named as
//! the flags, with `_`), and the `[[layers]]` tables.
//!
//! Each group's struct is flattened into [`FileConfig`]. Two things serde does not do
//! for flattened structs are done here: refusing an unknown key (`deny_unknown_fields`
//! does not work with `flatten`), and saying where in the file a bad value is (serde
//! buffers a flattened struct's values, which loses their place in the file).

use std::{path::Path, sync::OnceLock};

use serde::{
    Deserialize,
    de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor},
};

use super::{
    ConfigError, ConnectionArgs, DataArgs, LimitsArgs, PoolArgs, RemoteArgs, SecurityArgs, ServerArgs,
    TileCacheArgs,
};

/// The config file's shape: every key optional. Public so that the `config_file` fuzz
/// target parses files exactly as `--config` does ([`FileConfig::parse`]).
#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    #[serde(flatten)]
    pub(super) server: ServerArgs,
    #[serde(flatten)]
    pub(super) data: DataArgs,
    #[serde(flatten)]
    pub(super) pool: PoolArgs,
    #[serde(flatten)]
    pub(super) limits: LimitsArgs,
    #[serde(flatten)]
    pub(super) connections: ConnectionArgs,
    #[serde(flatten)]
    pub(super) security: SecurityArgs,
    #[serde(flatten)]
    pub(super) remote: RemoteArgs,
    #[serde(flatten)]
    pub(super) tile_cache: TileCacheArgs,
    /// The `[[layers]]` tables: the file's own section, no flag sets it.
    #[serde(default)]
    pub(super) layers: Vec<crate::layers::LayerConfig>,
}

/// A group of [`FileConfig`]: the keys it reads, and its error for a file when it reads
/// the file alone.
struct Section {
    keys: fn() -> &'static [&'static str],
    error: fn(&str) -> Option<toml::de::Error>,
}

impl Section {
    const fn of<T: DeserializeOwned>() -> Self {
        Self { keys: keys_of::<T>, error: error_of::<T> }
    }
}

/// The error of `text` read as a `T` alone (whose own keys keep their place in the file).
fn error_of<T: DeserializeOwned>(text: &str) -> Option<toml::de::Error> {
    toml::from_str::<T>(text).err()
}

/// Every flattened field of [`FileConfig`], in its order.
const SECTIONS: [Section; 8] = [
    Section::of::<ServerArgs>(),
    Section::of::<DataArgs>(),
    Section::of::<PoolArgs>(),
    Section::of::<LimitsArgs>(),
    Section::of::<ConnectionArgs>(),
    Section::of::<SecurityArgs>(),
    Section::of::<RemoteArgs>(),
    Section::of::<TileCacheArgs>(),
];

/// The key of the `[[layers]]` tables, read by [`FileConfig`] itself.
const LAYERS_KEY: &str = "layers";

impl FileConfig {
    /// Parses the text of the config file `path`. Reads nothing the file names: that,
    /// and the merge with the flags, is [`super::ServeArgs::resolve`]'s.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let fail = |e: toml::de::Error| ConfigError::File { path: path.to_owned(), reason: e.to_string() };
        toml::from_str::<KnownKeys>(text).map_err(fail)?;
        toml::from_str(text).map_err(|e| {
            // The same error from the one section that has it, with its line and column.
            fail(SECTIONS.iter().find_map(|section| (section.error)(text)).unwrap_or(e))
        })
    }

    /// The `[[layers]]` tables, as written (checked by [`crate::layers::validate`]).
    #[must_use]
    pub fn layers(&self) -> &[crate::layers::LayerConfig] {
        &self.layers
    }
}

/// Every key of the file, in the order of [`SECTIONS`].
fn known_keys() -> &'static [&'static str] {
    static KEYS: OnceLock<Vec<&'static str>> = OnceLock::new();
    KEYS.get_or_init(|| {
        SECTIONS.iter().flat_map(|section| (section.keys)().iter().copied()).chain([LAYERS_KEY]).collect()
    })
}

/// A file whose top-level keys are all known: an unknown one is refused with serde's
/// "unknown field" error, at its place in the file.
struct KnownKeys;

impl<'de> Deserialize<'de> for KnownKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(KnownKeys)
    }
}

impl<'de> Visitor<'de> for KnownKeys {
    type Value = Self;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table of settings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        while map.next_key_seed(KnownKey)?.is_some() {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(self)
    }
}

/// A key of [`KnownKeys`]; checked while it is read, so that the error carries its place.
struct KnownKey;

impl<'de> DeserializeSeed<'de> for KnownKey {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let key = String::deserialize(d)?;
        if known_keys().contains(&key.as_str()) {
            Ok(())
        } else {
            Err(serde::de::Error::unknown_field(&key, known_keys()))
        }
    }
}

/// The keys a struct deriving `Deserialize` reads: serde passes them to
/// `deserialize_struct`, which is all this deserializer answers.
fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut keys: &'static [&'static str] = &[];
    let _ = T::deserialize(StructKeys(&mut keys));
    keys
}

/// See [`keys_of`].
struct StructKeys<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for StructKeys<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("only a struct's keys are asked for"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("only a struct's keys are asked for"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, String> {
        FileConfig::parse(Path::new("t.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_key_belongs_to_one_group_only() {
        let mut keys = known_keys().to_vec();
        assert!(keys.len() > 50, "{keys:?}");
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before, "a key is read by two groups");
    }

    #[test]
    fn every_flag_is_a_key_of_the_file_and_every_key_but_layers_a_flag() {
        use clap::Args as _;
        let serve = super::super::ServeArgs::augment_args(clap::Command::new("serve"));
        let mut flags: Vec<&str> =
            serve.get_arguments().map(|a| a.get_id().as_str()).filter(|id| *id != "config").collect();
        let mut keys: Vec<&str> = known_keys().iter().copied().filter(|k| *k != LAYERS_KEY).collect();
        flags.sort_unstable();
        keys.sort_unstable();
        assert_eq!(flags, keys);
    }

    #[test]
    fn an_unknown_key_is_refused_at_its_line() {
        let err = parse("workers = 2\nwrkers = 3\n").unwrap_err();
        assert!(err.starts_with("config file t.toml: TOML parse error at line 2, column 1"), "{err}");
        assert!(err.contains("unknown field `wrkers`, expected one of `listen`"), "{err}");
    }

    #[test]
    fn a_bad_value_is_reported_at_its_line() {
        let err =
            parse("workers = 2\nlisten = \"0.0.0.0:1\"\n\nread_timeout = \"10 parsecs\"\n").unwrap_err();
        assert!(err.starts_with("config file t.toml: TOML parse error at line 4, column 16"), "{err}");
        assert!(err.contains("unknown time unit \"parsecs\""), "{err}");
        let err = parse("max_tile_size = -3\n").unwrap_err();
        assert!(err.contains("line 1, column 17"), "{err}");
        assert!(err.contains("invalid value: integer `-3`, expected u32"), "{err}");
    }

    #[test]
    fn every_group_reads_its_keys_from_the_file() {
        let file = parse(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"/d\"\nworkers = 3\nmax_tile_size = 512\n\
             max_connection_age = \"1m\"\ntls_cert = \"c.pem\"\ns3_region = \"eu\"\n\
             tile_cache_size = \"1MiB\"\ngdal_config = { GDAL_CACHEMAX = \"64\" }\n\
             [[layers]]\nname = \"l\"\nmosaicjson = \"m.json\"\n",
        )
        .unwrap();
        assert_eq!(file.server.listen, Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(file.data.data_dir, Some("/d".into()));
        assert_eq!(file.pool.workers, Some(3));
        assert_eq!(file.limits.max_tile_size, Some(512));
        assert_eq!(file.connections.max_connection_age, Some(std::time::Duration::from_secs(60)));
        assert_eq!(file.security.tls_cert, Some("c.pem".into()));
        assert_eq!(file.remote.s3_region.as_deref(), Some("eu"));
        assert_eq!(file.remote.gdal_config_table.get("GDAL_CACHEMAX").map(String::as_str), Some("64"));
        assert_eq!(file.tile_cache.tile_cache_size, Some(1 << 20));
        assert_eq!(file.layers().len(), 1);
    }
}
