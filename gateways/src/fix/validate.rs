//! Dictionary validation of a decoded message, in QuickFIX's order, so the
//! first problem found (and so the Reject's SessionRejectReason and
//! RefTagID) is the one the acceptance definitions expect:
//!
//! 1. a field outside its section (14, tag specified out of required order);
//! 2. an unknown MsgType (11);
//! 3. required fields, header then body then trailer then group entries,
//!    lowest tag first (1);
//! 4. every field, header then trailer then body, in tag order: repeated
//!    (13), empty (4), data format (6), enumerated value (5), known tag (0),
//!    allowed in this message type (2), NumInGroup matches the entries (16);
//!    then the fields of every group entry the same way.
//!
//! Any thread: pure functions over shared dictionaries.

use super::dictionary::{Dictionary, Layout, Protocol};
use super::message::{FieldMap, Message};

/// SessionRejectReason (373) values and their QuickFIX texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RejectReason {
    /// 0
    InvalidTagNumber = 0,
    /// 1
    RequiredTagMissing = 1,
    /// 2
    TagNotDefinedForMessageType = 2,
    /// 4
    TagSpecifiedWithoutValue = 4,
    /// 5
    ValueIsIncorrect = 5,
    /// 6
    IncorrectDataFormat = 6,
    /// 9
    CompIdProblem = 9,
    /// 10
    SendingTimeAccuracyProblem = 10,
    /// 11
    InvalidMsgType = 11,
    /// 13
    TagAppearsMoreThanOnce = 13,
    /// 14
    TagSpecifiedOutOfRequiredOrder = 14,
    /// 16
    IncorrectNumInGroupCount = 16,
}

impl RejectReason {
    /// The code sent in SessionRejectReason (373).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The text sent in Text (58), as QuickFIX writes it.
    pub fn text(self) -> &'static str {
        match self {
            Self::InvalidTagNumber => "Invalid tag number",
            Self::RequiredTagMissing => "Required tag missing",
            Self::TagNotDefinedForMessageType => "Tag not defined for this message type",
            Self::TagSpecifiedWithoutValue => "Tag specified without a value",
            Self::ValueIsIncorrect => "Value is incorrect (out of range) for this tag",
            Self::IncorrectDataFormat => "Incorrect data format for value",
            Self::CompIdProblem => "CompID problem",
            Self::SendingTimeAccuracyProblem => "SendingTime accuracy problem",
            Self::InvalidMsgType => "Invalid MsgType",
            Self::TagAppearsMoreThanOnce => "Tag appears more than once",
            Self::TagSpecifiedOutOfRequiredOrder => "Tag specified out of required order",
            Self::IncorrectNumInGroupCount => "Incorrect NumInGroup count for repeating group",
        }
    }
}

/// A validation failure: the reason and the tag it concerns (RefTagID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// SessionRejectReason.
    pub reason: RejectReason,
    /// RefTagID, when the reason names a field.
    pub tag: Option<i64>,
}

fn fail(reason: RejectReason, tag: Option<i64>) -> Result<(), Invalid> {
    Err(Invalid { reason, tag })
}

fn check_required(map: &FieldMap, layout: &Layout) -> Result<(), Invalid> {
    for &tag in &layout.required {
        if map.get(i64::from(tag)).is_none() {
            return fail(RejectReason::RequiredTagMissing, Some(i64::from(tag)));
        }
    }
    for g in &map.groups {
        let Some(spec) = u32::try_from(g.count_tag)
            .ok()
            .and_then(|t| layout.groups.get(&t))
        else {
            continue;
        };
        for e in &g.entries {
            check_required(e, &spec.layout)?;
        }
    }
    Ok(())
}

/// Checks the fields of one level. `layout` is `Some` for message bodies
/// and group entries (membership and group counts are checked), `None`
/// for the header and trailer.
fn check_fields(
    msg: &Message,
    map: &FieldMap,
    dict: &Dictionary,
    layout: Option<&Layout>,
) -> Result<(), Invalid> {
    let mut sorted: Vec<_> = map.fields.clone();
    sorted.sort_by_key(|f| f.tag);
    let mut last = None;
    for f in &sorted {
        let tag = f.tag;
        if last == Some(tag) {
            return fail(RejectReason::TagAppearsMoreThanOnce, Some(tag));
        }
        let value = msg.value(f);
        if value.is_empty() {
            return fail(RejectReason::TagSpecifiedWithoutValue, Some(tag));
        }
        let spec = u32::try_from(tag).ok().and_then(|t| dict.fields.get(&t));
        if let Some(spec) = spec {
            if !spec.format_ok(value) {
                return fail(RejectReason::IncorrectDataFormat, Some(tag));
            }
            if !spec.value_ok(value) {
                return fail(RejectReason::ValueIsIncorrect, Some(tag));
            }
        } else {
            return fail(RejectReason::InvalidTagNumber, Some(tag));
        }
        if let Some(layout) = layout {
            let t = tag as u32;
            if !layout.fields.contains(&t) {
                return fail(RejectReason::TagNotDefinedForMessageType, Some(tag));
            }
            if layout.groups.contains_key(&t) {
                let found = map.group(tag).map_or(0, |g| g.entries.len());
                if super::message::parse_uint(value) != Some(found as u64) {
                    return fail(RejectReason::IncorrectNumInGroupCount, Some(tag));
                }
            }
        }
        last = Some(tag);
    }
    if let Some(layout) = layout {
        for g in &map.groups {
            if let Some(spec) = u32::try_from(g.count_tag)
                .ok()
                .and_then(|t| layout.groups.get(&t))
            {
                for e in &g.entries {
                    check_fields(msg, e, dict, Some(&spec.layout))?;
                }
            }
        }
    }
    Ok(())
}

/// Validates `msg` against its protocol's dictionaries.
pub fn validate(msg: &Message, protocol: &Protocol) -> Result<(), Invalid> {
    if let Some(tag) = msg.out_of_order_tag {
        return fail(RejectReason::TagSpecifiedOutOfRequiredOrder, Some(tag));
    }
    let msg_type = msg.msg_type();
    let body_dict = protocol.body_dictionary(msg_type);
    let Some(spec) = std::str::from_utf8(msg_type)
        .ok()
        .and_then(|t| body_dict.messages.get(t))
    else {
        return fail(RejectReason::InvalidMsgType, None);
    };
    check_required(&msg.header, &body_dict.header)?;
    check_required(&msg.body, &spec.layout)?;
    check_required(&msg.trailer, &body_dict.trailer)?;
    check_fields(msg, &msg.header, &protocol.session, None)?;
    check_fields(msg, &msg.trailer, &protocol.session, None)?;
    check_fields(msg, &msg.body, body_dict, Some(&spec.layout))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::dictionary::Dictionaries;
    use super::super::frame::checksum;
    use super::*;

    fn parse(begin: &str, fields: &str) -> Message {
        let body = fields.replace('|', "\x01");
        let mut out = format!("8={begin}\x019={}\x01{}", body.len(), body).into_bytes();
        let sum = checksum(&out);
        out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        let d = Dictionaries::shared();
        Message::parse(out, d.protocol(begin).unwrap()).unwrap()
    }

    fn check(begin: &str, fields: &str) -> Result<(), Invalid> {
        let d = Dictionaries::shared();
        validate(&parse(begin, fields), d.protocol(begin).unwrap())
    }

    const H: &str = "34=2|49=TW44|52=20240101-00:00:00|56=ISLD|";

    fn r(reason: RejectReason, tag: i64) -> Result<(), Invalid> {
        Err(Invalid {
            reason,
            tag: Some(tag),
        })
    }

    #[test]
    fn valid_messages_pass() {
        assert_eq!(check("FIX.4.4", &format!("35=0|{H}")), Ok(()));
        assert_eq!(
            check("FIX.4.4", &format!("35=D|{H}11=ID|21=1|40=1|54=1|38=002000.00|55=INTC|60=20240101-00:00:00|167=CS|")),
            Ok(())
        );
        assert_eq!(
            check(
                "FIX.4.4",
                &format!("35=D|{H}11=ID|21=3|40=1|54=1|55=X|60=20240101-00:00:00|386=1|336=A|")
            ),
            Ok(())
        );
    }

    #[test]
    fn each_problem_gets_quickfixs_reason_and_tag() {
        use RejectReason::*;
        assert_eq!(
            check("FIX.4.4", &format!("35=0|{H}999=HI|")),
            r(InvalidTagNumber, 999)
        );
        assert_eq!(
            check("FIX.4.4", &format!("35=0|{H}-1=HI|")),
            r(InvalidTagNumber, -1)
        );
        assert_eq!(
            check("FIX.4.4", "35=0|34=2|49=TW44|52=20240101-00:00:00|"),
            r(RequiredTagMissing, 56)
        );
        assert_eq!(
            check("FIX.4.4", &format!("35=0|{H}55=MSFT|")),
            r(TagNotDefinedForMessageType, 55)
        );
        assert_eq!(
            check("FIX.4.4", "35=0|34=2|49=TW44|52=20240101-00:00:00|56=|"),
            r(TagSpecifiedWithoutValue, 56)
        );
        let nos = "11=ID|40=1|54=1|38=200|55=INTC|60=20240101-00:00:00|";
        assert_eq!(
            check("FIX.4.4", &format!("35=D|{H}{nos}21=4|")),
            r(ValueIsIncorrect, 21)
        );
        assert_eq!(
            check("FIX.4.4", &format!("35=D|{H}{nos}21=1|167=BOO|")),
            r(ValueIsIncorrect, 167)
        );
        assert_eq!(
            check(
                "FIX.4.4",
                &format!("35=D|{H}11=ID|21=1|40=1|54=1|38=+200.00|55=INTC|60=20240101-00:00:00|")
            ),
            r(IncorrectDataFormat, 38)
        );
        assert_eq!(
            check("FIX.4.4", &format!("35=D|{H}{nos}21=1|40=2|")),
            r(TagAppearsMoreThanOnce, 40)
        );
        assert_eq!(
            check("FIX.4.4", &format!("35=D|{H}{nos}21=1|386=3|336=A|336=B|")),
            r(IncorrectNumInGroupCount, 386)
        );
        assert_eq!(
            check("FIX.4.4", "35=D|11=id|21=3|40=1|54=1|55=MSFT|60=20240101-00:00:00|34=2|49=TW44|52=20240101-00:00:00|56=ISLD|"),
            r(TagSpecifiedOutOfRequiredOrder, 34)
        );
        assert_eq!(
            check("FIX.4.4", &format!("35=*|{H}")),
            Err(Invalid {
                reason: InvalidMsgType,
                tag: None
            })
        );
        assert_eq!(
            check(
                "FIX.4.4",
                &format!("35=D|{H}40=1|60=20240101-00:00:00|54=1|21=3|")
            ),
            r(RequiredTagMissing, 11)
        );
        assert_eq!(
            check("FIXT.1.1", "35=D|34=3|49=TW50SP2|52=20240101-00:00:00|56=ISLD|40=1|60=20240101-00:00:00|11=id|21=3|"),
            r(RequiredTagMissing, 54)
        );
        assert_eq!(
            check("FIX.4.4", &format!("35=D|{H}43=Y|122=20240101-00:00:00|11=ID|21=3|38=100|40=1|54=1|55=IVP|60=20240101-00:00:00|126=20040415|")),
            r(IncorrectDataFormat, 126)
        );
    }
}
