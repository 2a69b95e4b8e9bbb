//! docs/api.md against the compiled proto (the descriptor set reflection serves): the
//! RPCs, the tile request's fields, and the enum values, gRPC codes and messages named.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost::Message as _;
use prost_types::{DescriptorProto, FileDescriptorSet};
use tonic::Code;

use super::{
    assert_same,
    markdown::{self, code_spans, is_screaming, is_snake, read, section, table},
};

/// The compiled API: every message (by full name, `.tessera.v1.GetTileRequest`), every
/// enum value, and the tile service's methods with their input and output types.
struct Api {
    messages: HashMap<String, DescriptorProto>,
    enum_values: BTreeSet<String>,
    methods: BTreeMap<String, (String, String)>,
}

impl Api {
    fn load() -> Self {
        let set = FileDescriptorSet::decode(tessera::pb::FILE_DESCRIPTOR_SET).unwrap();
        let compiled: BTreeSet<&str> = set.file.iter().map(prost_types::FileDescriptorProto::name).collect();
        for entry in std::fs::read_dir(markdown::root().join("proto/tessera/v1")).unwrap() {
            let name = format!("tessera/v1/{}", entry.unwrap().file_name().to_string_lossy());
            assert!(
                compiled.contains(name.as_str()),
                "{name} is not in the descriptor set build.rs compiles"
            );
        }
        let mut api =
            Self { messages: HashMap::new(), enum_values: BTreeSet::new(), methods: BTreeMap::new() };
        for file in &set.file {
            let package = format!(".{}", file.package());
            for message in &file.message_type {
                api.add_message(&package, message);
            }
            for e in &file.enum_type {
                api.add_enum(e);
            }
            for service in file.service.iter().filter(|s| s.name() == "TileService") {
                for m in &service.method {
                    api.methods
                        .insert(m.name().to_owned(), (m.input_type().to_owned(), m.output_type().to_owned()));
                }
            }
        }
        api
    }

    fn add_message(&mut self, scope: &str, message: &DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        for nested in &message.nested_type {
            self.add_message(&name, nested);
        }
        for e in &message.enum_type {
            self.add_enum(e);
        }
        self.messages.insert(name, message.clone());
    }

    /// An enum's values, in full (`PIXEL_SELECTION_FIRST`) and without the enum's
    /// prefix (`FIRST`), as the docs write them.
    fn add_enum(&mut self, e: &prost_types::EnumDescriptorProto) {
        let prefix: String = e.name().chars().fold(String::new(), |mut s, c| {
            if c.is_ascii_uppercase() && !s.is_empty() {
                s.push('_');
            }
            s.push(c.to_ascii_uppercase());
            s
        }) + "_";
        for value in &e.value {
            self.enum_values.insert(value.name().to_owned());
            if let Some(short) = value.name().strip_prefix(&prefix) {
                self.enum_values.insert(short.to_owned());
            }
        }
    }

    fn fields(&self, message: &str) -> BTreeSet<String> {
        self.messages[message].field.iter().map(|f| f.name().to_owned()).collect()
    }

    /// The fields of `message` and of every message reachable from it.
    fn reachable_fields(&self, message: &str, seen: &mut BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if !seen.insert(message.to_owned()) {
            return out;
        }
        let Some(m) = self.messages.get(message) else { return out };
        for field in &m.field {
            out.insert(field.name().to_owned());
            if !field.type_name().is_empty() {
                out.extend(self.reachable_fields(field.type_name(), seen));
            }
        }
        out
    }
}

/// The gRPC status codes by their canonical names (`INVALID_ARGUMENT`).
fn grpc_code_names() -> BTreeSet<String> {
    (0..=16)
        .map(|i| {
            let camel = format!("{:?}", Code::from_i32(i));
            let mut name = String::new();
            for (j, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && j > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        })
        .collect()
}

#[test]
fn the_api_page_lists_every_rpc_and_names_only_fields_values_and_codes_the_proto_has() {
    let api = Api::load();
    let codes = grpc_code_names();
    assert!(codes.contains("INVALID_ARGUMENT") && codes.contains("OK"), "{codes:?}");
    let page = read("docs/api.md");

    // The RPC table: every method once, and only fields its messages can carry.
    let mut rpcs = BTreeSet::new();
    for row in table(section(&page, "RPCs")) {
        let name = code_spans(&row[0]).concat();
        let (input, output) = api.methods.get(&name).unwrap_or_else(|| panic!("no RPC {name} in the proto"));
        let mut seen = BTreeSet::new();
        let mut fields = api.reachable_fields(input, &mut seen);
        fields.extend(api.reachable_fields(output, &mut seen));
        for span in code_spans(&row[1]).into_iter().filter(|s| is_snake(s)) {
            assert!(fields.contains(&span), "{name}'s row names `{span}`, not a field of its messages");
        }
        rpcs.insert(name);
    }
    assert_same("RPCs of TileService", &rpcs, &api.methods.keys().cloned().collect());

    // The tile request: its table names every field once; the options below name fields.
    let request = api.fields(".tessera.v1.GetTileRequest");
    let tile_section = section(&page, "A tile request");
    let listed: BTreeSet<String> = table(tile_section).iter().flat_map(|row| code_spans(&row[0])).collect();
    assert_same("fields of GetTileRequest", &listed, &request);
    for line in tile_section.lines().filter(|l| l.starts_with("- `")) {
        let lead = line[2..].split([':', '(']).next().unwrap();
        for span in code_spans(lead) {
            assert!(request.contains(&span), "the option `{span}` is not a field of GetTileRequest");
        }
    }

    // Errors: each row's answer is a gRPC code, with details the descriptor set holds
    // and fields of the tile request.
    for row in table(section(&page, "Errors")) {
        let spans = code_spans(&row[1]);
        assert!(spans.iter().any(|s| codes.contains(s)), "no gRPC code in {:?}", row[1]);
        for span in spans {
            if is_screaming(&span) {
                assert!(codes.contains(&span), "{span} is not a gRPC code");
            } else if is_snake(&span) {
                assert!(request.contains(&span), "`{span}` is not a field of GetTileRequest");
            } else {
                assert!(api.messages.contains_key(&format!(".{span}")), "no message {span} in the API");
            }
        }
    }

    // Anywhere on the page: upper-case names are codes or enum values, and the
    // google.rpc messages named are served.
    for span in code_spans(&page) {
        if is_screaming(&span) {
            assert!(
                codes.contains(&span) || api.enum_values.contains(&span),
                "{span}: no such code or value"
            );
        } else if span.starts_with("google.rpc.") {
            assert!(api.messages.contains_key(&format!(".{span}")), "no message {span} in the API");
        }
    }
}
