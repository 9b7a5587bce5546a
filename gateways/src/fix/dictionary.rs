//! Validation tables built from the `fefix` data dictionaries.
//!
//! `fefix` ships the QuickFIX XML specifications (FIX 4.4, FIXT 1.1,
//! FIX 5.0 SP2) and parses them; this module flattens them once, at
//! start-up, into the lookups the validator needs per message: the field
//! types and enumerated values, the required tags (components expanded,
//! a field inside an optional component is optional), the tags allowed at
//! the top level of each message type, the repeating groups with their
//! delimiters, and the length/data field pairs that framing must honour.
//!
//! `fefix` 0.7 resolves a component reference to the first component of
//! that name it saw, which for a component nested in another and defined
//! later in the XML is an empty placeholder. Components are therefore
//! looked up here by name, taking the definition with the most items.
//!
//! Built once and shared read-only ([`Dictionaries::shared`]) by every
//! session on every thread.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use fefix::dict::{FixDatatype, LayoutItem, LayoutItemKind};

/// The tables' maps, hashed with [`FxHasher`](crate::hash::FxHasher): the tables are built from
/// the compiled-in dictionaries and only read after that, so input cannot
/// choose colliding keys, and decoding and validating one message looks
/// tags up several times per field (with SipHash those lookups were most
/// of the validation time).
pub type HashMap<K, V> = crate::hash::FxHashMap<K, V>;
/// The tables' sets, hashed with [`FxHasher`](crate::hash::FxHasher).
pub type HashSet<K> = crate::hash::FxHashSet<K>;

/// How a field's value is checked ("data format" in QuickFIX's terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// Optional `-` and at least one digit.
    Int,
    /// Optional `-`, digits with at most one `.`, at least one digit.
    Float,
    /// Exactly one byte.
    Char,
    /// `Y` or `N`.
    Boolean,
    /// `YYYYMMDD-HH:MM:SS[.fraction]`.
    UtcTimestamp,
    /// `HH:MM:SS[.fraction]`.
    UtcTimeOnly,
    /// `YYYYMMDD`.
    UtcDate,
    /// Anything (strings, currencies, month-year, data, ...).
    Text,
}

/// One field of the dictionary.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// Its name, for messages.
    pub name: String,
    /// How its value is checked.
    pub format: ValueFormat,
    /// The enumerated values, when the field has any.
    pub values: Option<HashSet<String>>,
    /// A space-separated list of values (each checked against `values`).
    pub multiple: bool,
}

impl FieldSpec {
    /// Whether `value` has this field's data format.
    pub fn format_ok(&self, value: &[u8]) -> bool {
        match self.format {
            ValueFormat::Int => {
                let digits = value.strip_prefix(b"-").unwrap_or(value);
                !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
            }
            ValueFormat::Float => {
                let body = value.strip_prefix(b"-").unwrap_or(value);
                let dots = body.iter().filter(|&&b| b == b'.').count();
                let digits = body.iter().filter(|b| b.is_ascii_digit()).count();
                dots <= 1 && digits >= 1 && digits + dots == body.len()
            }
            ValueFormat::Char => value.len() == 1,
            ValueFormat::Boolean => value == b"Y" || value == b"N",
            ValueFormat::UtcTimestamp => super::time::parse_timestamp(value).is_some(),
            ValueFormat::UtcTimeOnly => super::time::parse_time_of_day(value).is_some(),
            ValueFormat::UtcDate => super::time::parse_date(value).is_some(),
            ValueFormat::Text => true,
        }
    }

    /// Whether `value` is one of the enumerated values (always true for a
    /// field without enumerated values).
    pub fn value_ok(&self, value: &[u8]) -> bool {
        let Some(values) = &self.values else {
            return true;
        };
        let Ok(text) = std::str::from_utf8(value) else {
            return false;
        };
        if self.multiple {
            text.split(' ').all(|v| values.contains(v))
        } else {
            values.contains(text)
        }
    }
}

/// The fields of a message, component-expanded, or of one repeating group.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Tags allowed at this level (group count tags included, group members not).
    pub fields: HashSet<u32>,
    /// Tags in definition order, for the group delimiter.
    pub order: Vec<u32>,
    /// Required tags, in ascending order (QuickFIX reports the lowest missing).
    pub required: BTreeSet<u32>,
    /// Repeating groups at this level, by their count (NumInGroup) tag.
    pub groups: HashMap<u32, Group>,
}

/// A repeating group.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The first field of every entry.
    pub delimiter: u32,
    /// The fields of one entry.
    pub layout: Layout,
}

/// One message type.
#[derive(Debug, Clone)]
pub struct MessageSpec {
    /// Its name (e.g. `NewOrderSingle`).
    pub name: String,
    /// Its fields.
    pub layout: Layout,
}

/// One FIX dictionary, flattened for validation.
#[derive(Debug, Clone)]
pub struct Dictionary {
    /// `FIX.4.4`, `FIXT.1.1` or `FIX.5.0SP2`.
    pub version: String,
    /// Every field, by tag.
    pub fields: HashMap<u32, FieldSpec>,
    /// The standard header.
    pub header: Layout,
    /// The standard trailer.
    pub trailer: Layout,
    /// Every message type, by MsgType.
    pub messages: HashMap<String, MessageSpec>,
    /// Length field tag to the data field it sizes (e.g. 95 to 96).
    pub data_fields: HashMap<u32, u32>,
}

fn value_format(dt: FixDatatype) -> ValueFormat {
    match dt {
        FixDatatype::Int
        | FixDatatype::Length
        | FixDatatype::NumInGroup
        | FixDatatype::SeqNum
        | FixDatatype::TagNum
        | FixDatatype::DayOfMonth => ValueFormat::Int,
        FixDatatype::Float
        | FixDatatype::Amt
        | FixDatatype::Price
        | FixDatatype::PriceOffset
        | FixDatatype::Qty
        | FixDatatype::Percentage => ValueFormat::Float,
        FixDatatype::Char => ValueFormat::Char,
        FixDatatype::Boolean => ValueFormat::Boolean,
        FixDatatype::UtcTimestamp => ValueFormat::UtcTimestamp,
        FixDatatype::UtcTimeOnly => ValueFormat::UtcTimeOnly,
        FixDatatype::UtcDateOnly => ValueFormat::UtcDate,
        _ => ValueFormat::Text,
    }
}

struct Flattener<'a> {
    components: HashMap<String, fefix::dict::Component<'a>>,
}

impl<'a> Flattener<'a> {
    fn new(dict: &'a fefix::Dictionary) -> Self {
        let mut components: HashMap<String, fefix::dict::Component<'a>> = HashMap::default();
        for c in dict.iter_components() {
            let better = components
                .get(c.name())
                .is_none_or(|old| old.items().count() < c.items().count());
            if better {
                components.insert(c.name().to_string(), c);
            }
        }
        Self { components }
    }

    fn flatten<'b>(
        &self,
        items: impl Iterator<Item = LayoutItem<'b>>,
        required: bool,
        out: &mut Layout,
    ) where
        'a: 'b,
    {
        for item in items {
            let item_required = required && item.required();
            match item.kind() {
                LayoutItemKind::Field(f) => {
                    let tag = u32::from(f.tag().get());
                    if out.fields.insert(tag) {
                        out.order.push(tag);
                    }
                    if item_required {
                        out.required.insert(tag);
                    }
                }
                LayoutItemKind::Component(c) => {
                    if let Some(comp) = self.components.get(c.name()) {
                        self.flatten(comp.items(), item_required, out);
                    }
                }
                LayoutItemKind::Group(count, members) => {
                    let tag = u32::from(count.tag().get());
                    if out.fields.insert(tag) {
                        out.order.push(tag);
                    }
                    if item_required {
                        out.required.insert(tag);
                    }
                    let mut layout = Layout::default();
                    self.flatten(members.into_iter(), true, &mut layout);
                    let delimiter = layout.order.first().copied().unwrap_or(0);
                    out.groups.insert(tag, Group { delimiter, layout });
                }
            }
        }
    }
}

impl Dictionary {
    /// Flattens a `fefix` dictionary, naming it `version`.
    pub fn from_fefix(dict: &fefix::Dictionary, version: &str) -> Self {
        let mut fields = HashMap::default();
        for f in dict.iter_fields() {
            let dt = f.fix_datatype();
            let values = f
                .enums()
                .map(|e| e.map(|v| v.value().to_string()).collect::<HashSet<_>>());
            fields.insert(
                u32::from(f.tag().get()),
                FieldSpec {
                    name: f.name().to_string(),
                    format: value_format(dt),
                    values,
                    multiple: matches!(
                        dt,
                        FixDatatype::MultipleCharValue | FixDatatype::MultipleStringValue
                    ),
                },
            );
        }
        let mut data_fields = HashMap::default();
        for f in dict.iter_fields() {
            if f.fix_datatype() != FixDatatype::Data && f.fix_datatype() != FixDatatype::XmlData {
                continue;
            }
            for suffix in ["Len", "Length"] {
                if let Some(len) = dict.field_by_name(format!("{}{suffix}", f.name())) {
                    data_fields.insert(u32::from(len.tag().get()), u32::from(f.tag().get()));
                }
            }
        }
        let flattener = Flattener::new(dict);
        let section = |name: &str| {
            let mut layout = Layout::default();
            if let Some(c) = flattener.components.get(name) {
                flattener.flatten(c.items(), true, &mut layout);
            }
            layout
        };
        let header = section("StandardHeader");
        let trailer = section("StandardTrailer");
        let mut messages = HashMap::default();
        for m in dict.iter_messages() {
            let mut layout = Layout::default();
            flattener.flatten(m.layout(), true, &mut layout);
            messages.insert(
                m.msg_type().to_string(),
                MessageSpec {
                    name: m.name().to_string(),
                    layout,
                },
            );
        }
        Self {
            version: version.to_string(),
            fields,
            header,
            trailer,
            messages,
            data_fields,
        }
    }
}

/// The dictionaries a session validates against: its session-level
/// dictionary (header, trailer, admin messages) and its application
/// dictionary (application messages). For FIX 4.4 both are FIX 4.4; for
/// FIXT.1.1 they are FIXT 1.1 and FIX 5.0 SP2.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// The BeginString (`FIX.4.4` or `FIXT.1.1`).
    pub begin_string: String,
    /// Header, trailer and admin messages.
    pub session: Arc<Dictionary>,
    /// Application messages.
    pub application: Arc<Dictionary>,
    /// Length-to-data tag pairs of both dictionaries.
    pub data_fields: HashMap<u32, u32>,
    /// Header tags (QuickFIX's fixed list and the dictionary's header).
    pub header_tags: HashSet<u32>,
}

/// Tags QuickFIX always treats as header fields.
const HEADER_TAGS: [u32; 34] = [
    8, 9, 35, 49, 56, 115, 128, 90, 91, 34, 50, 142, 57, 143, 116, 144, 129, 145, 43, 97, 52, 122,
    212, 213, 347, 369, 370, 1128, 1129, 627, 628, 629, 630, 1156,
];

impl Protocol {
    fn new(begin_string: &str, session: Arc<Dictionary>, application: Arc<Dictionary>) -> Self {
        let mut data_fields = session.data_fields.clone();
        data_fields.extend(application.data_fields.iter().map(|(k, v)| (*k, *v)));
        let mut header_tags: HashSet<u32> = HEADER_TAGS.into_iter().collect();
        header_tags.extend(session.header.fields.iter().copied());
        Self {
            begin_string: begin_string.to_string(),
            session,
            application,
            data_fields,
            header_tags,
        }
    }

    /// Whether `tag` belongs to the standard header.
    pub fn is_header_tag(&self, tag: i64) -> bool {
        u32::try_from(tag).is_ok_and(|t| self.header_tags.contains(&t))
    }

    /// Whether `tag` belongs to the standard trailer.
    pub fn is_trailer_tag(&self, tag: i64) -> bool {
        matches!(tag, 10 | 89 | 93)
    }

    /// Whether this is a FIXT session (application messages use the
    /// application dictionary).
    pub fn is_fixt(&self) -> bool {
        self.begin_string.starts_with("FIXT")
    }

    /// The dictionary that defines `msg_type`'s body.
    pub fn body_dictionary(&self, msg_type: &[u8]) -> &Dictionary {
        if self.is_fixt() && !is_admin_msg_type(msg_type) {
            &self.application
        } else {
            &self.session
        }
    }
}

/// Whether `msg_type` is a session-level (admin) message.
pub fn is_admin_msg_type(msg_type: &[u8]) -> bool {
    matches!(msg_type, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

/// The supported protocols, built once from the `fefix` dictionaries.
#[derive(Debug)]
pub struct Dictionaries {
    /// FIX.4.4 sessions.
    pub fix44: Protocol,
    /// FIXT.1.1 sessions with FIX.5.0SP2 applications.
    pub fixt11: Protocol,
}

impl Dictionaries {
    /// Parses and flattens the dictionaries (tens of milliseconds).
    pub fn load() -> Self {
        let fix44 = Arc::new(Dictionary::from_fefix(
            &fefix::Dictionary::fix44(),
            "FIX.4.4",
        ));
        let fixt11 = Arc::new(Dictionary::from_fefix(
            &fefix::Dictionary::fixt11(),
            "FIXT.1.1",
        ));
        let fix50sp2 = Arc::new(Dictionary::from_fefix(
            &fefix::Dictionary::fix50sp2(),
            "FIX.5.0SP2",
        ));
        Self {
            fix44: Protocol::new("FIX.4.4", fix44.clone(), fix44),
            fixt11: Protocol::new("FIXT.1.1", fixt11, fix50sp2),
        }
    }

    /// The process-wide copy, loaded on first use.
    pub fn shared() -> Arc<Dictionaries> {
        static SHARED: OnceLock<Arc<Dictionaries>> = OnceLock::new();
        SHARED.get_or_init(|| Arc::new(Self::load())).clone()
    }

    /// The protocol for a BeginString, if supported.
    pub fn protocol(&self, begin_string: &str) -> Option<&Protocol> {
        match begin_string {
            "FIX.4.4" => Some(&self.fix44),
            "FIXT.1.1" => Some(&self.fixt11),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix44_new_order_single_has_its_required_fields_and_groups() {
        let d = Dictionaries::shared();
        let nos = &d.fix44.session.messages["D"];
        assert_eq!(nos.name, "NewOrderSingle");
        for tag in [11, 54, 60, 40] {
            assert!(nos.layout.required.contains(&tag), "{tag} required");
        }
        assert!(
            !nos.layout.required.contains(&21),
            "HandlInst is optional in 4.4"
        );
        let trading_sessions = &nos.layout.groups[&386];
        assert_eq!(trading_sessions.delimiter, 336);
        assert!(d.fix44.session.header.required.contains(&49));
        assert_eq!(d.fix44.data_fields.get(&95), Some(&96));
    }

    #[test]
    fn nested_components_defined_later_are_expanded() {
        let d = Dictionaries::shared();
        let nos = &d.fixt11.application.messages["D"];
        // SecAltIDGrp is nested in Instrument in FIX 5.0 SP2.
        assert!(
            nos.layout.groups.contains_key(&454),
            "NoSecurityAltID group"
        );
        assert!(nos.layout.required.contains(&54));
        assert!(d.fixt11.session.messages.contains_key("A"));
        assert!(d.fixt11.session.messages["A"]
            .layout
            .required
            .contains(&1137));
    }

    #[test]
    fn formats_follow_quickfix_converters() {
        let d = Dictionaries::shared();
        let qty = &d.fix44.session.fields[&38];
        assert!(qty.format_ok(b"002000.00"));
        assert!(!qty.format_ok(b"+200.00"));
        assert!(!qty.format_ok(b"1.2.3"));
        let side = &d.fix44.session.fields[&54];
        assert!(side.value_ok(b"1"));
        assert!(!side.value_ok(b"Z"));
        let expire = &d.fix44.session.fields[&126];
        assert!(!expire.format_ok(b"20040415"));
    }
}
