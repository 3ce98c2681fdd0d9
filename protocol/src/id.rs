//! Who is who: node identities, State codes and the other participants of the federation.
//!
//! A [`NodeId`] is a node's ed25519 public key. People read it over the phone and paste it into
//! e-mails, so its text form is Syncthing's: base32 in groups, each group ending with a Luhn mod 32
//! check character, so a typo is caught instead of pinning the wrong peer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Base32 of 32 bytes without padding.
const RAW_LEN: usize = 52;
/// Four chunks of 13 characters, each followed by a check character.
const CHUNK: usize = 13;
const CHECKED_LEN: usize = RAW_LEN + RAW_LEN / CHUNK;
const GROUP: usize = 7;

/// A node's identity: its ed25519 public key. In JSON and TOML it is its checksummed text; on
/// the wire, its 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 32]);

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(NodeId(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// Why a text is not a NodeId.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// The text, without dashes and spaces, is not 56 characters long.
    #[error(
        "a NodeId has 56 letters and digits in 8 groups of 7 (got {0}); copy it again from `poa-node id`"
    )]
    Length(usize),
    /// A character outside A–Z and 2–7.
    #[error("'{0}' cannot appear in a NodeId (only A-Z and 2-7); copy it again from `poa-node id`")]
    Character(char),
    /// A check character does not match: the text was mistyped.
    #[error(
        "NodeId check failed in groups {} to {}: it was mistyped; copy it again from `poa-node id`",
        .0 * 2 - 1,
        .0 * 2
    )]
    Checksum(usize),
    /// The bytes are not an ed25519 public key.
    #[error("this NodeId is well-formed but is not a valid ed25519 public key")]
    NotAKey,
}

impl NodeId {
    /// The NodeId of a raw 32-byte public key, if it is a valid ed25519 point.
    pub fn from_key_bytes(bytes: [u8; 32]) -> Result<Self, NodeIdError> {
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| NodeIdError::NotAKey)?;
        Ok(NodeId(bytes))
    }

    /// The key this id names.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, NodeIdError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| NodeIdError::NotAKey)
    }

    /// A short form for logs and tables: the first group.
    pub fn short(&self) -> String {
        self.to_string()[..GROUP].to_string()
    }
}

fn luhn_check(chunk: &[u8]) -> u8 {
    let n = 32u32;
    let mut factor = 1;
    let mut sum = 0;
    for &c in chunk {
        let code = ALPHABET.iter().position(|&a| a == c).unwrap_or(0) as u32;
        let addend = factor * code;
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / n + addend % n;
    }
    ALPHABET[((n - sum % n) % n) as usize]
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = data_encoding::BASE32_NOPAD.encode(&self.0);
        let mut checked = Vec::with_capacity(CHECKED_LEN);
        for chunk in raw.as_bytes().chunks(CHUNK) {
            checked.extend_from_slice(chunk);
            checked.push(luhn_check(chunk));
        }
        for (i, group) in checked.chunks(GROUP).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            // Every byte comes from ALPHABET, which is ASCII.
            f.write_str(std::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut cleaned = Vec::with_capacity(CHECKED_LEN);
        for c in s.chars() {
            let c = match c.to_ascii_uppercase() {
                '-' | ' ' => continue,
                // The same forgiving reading as Syncthing: digits that look like letters.
                '0' => 'O',
                '1' => 'I',
                '8' => 'B',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(NodeIdError::Character(c));
            }
            cleaned.push(c as u8);
        }
        if cleaned.len() != CHECKED_LEN {
            return Err(NodeIdError::Length(cleaned.len()));
        }
        let mut raw = Vec::with_capacity(RAW_LEN);
        for (i, chunk) in cleaned.chunks(CHUNK + 1).enumerate() {
            let (body, check) = chunk.split_at(CHUNK);
            if luhn_check(body) != check[0] {
                return Err(NodeIdError::Checksum(i + 1));
            }
            raw.extend_from_slice(body);
        }
        let bytes = data_encoding::BASE32_NOPAD
            .decode(&raw)
            .map_err(|_| NodeIdError::Length(cleaned.len()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| NodeIdError::Length(cleaned.len()))?;
        NodeId::from_key_bytes(bytes)
    }
}

/// An ISO 3166-1 alpha-3 code of a State, or a code of the user-assigned range XAA–XZZ kept for
/// training and tests.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StateCode([u8; 3]);

/// Why a text is not a State or body code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not three letters.
    #[error(
        "'{0}' is not a State code: use the ISO 3166-1 alpha-3 code, three letters such as KEN or XAA"
    )]
    Shape(String),
    /// Three letters but not an assigned alpha-3 code.
    #[error(
        "'{0}' is not an ISO 3166-1 alpha-3 code; codes XAA-XZZ are free for training and tests"
    )]
    Unknown(String),
    /// A body acronym that is not 2–16 letters, digits or dashes.
    #[error(
        "'{0}' is not a body code: use its usual acronym, 2 to 16 letters or digits (XRB, ECOWAS, UNODA)"
    )]
    Body(String),
    /// Not `state:CODE` or `body:CODE`.
    #[error("'{0}' names no State or body: use state:XAA or body:XRB")]
    Principal(String),
}

impl StateCode {
    /// A code for constants and tests: three letters, upper-cased; anything else becomes XXX
    /// (a code of the training range).
    pub fn from_static(code: &str) -> StateCode {
        let up = code.trim().to_ascii_uppercase();
        match <[u8; 3]>::try_from(up.as_bytes()) {
            Ok(b) if b.iter().all(u8::is_ascii_uppercase) => StateCode(b),
            _ => StateCode(*b"XXX"),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Built only from ASCII uppercase letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Whether the code is in the range reserved for training and tests.
    pub fn is_test(&self) -> bool {
        self.0[0] == b'X'
    }

    /// The UN M49 numeric area code (the ISO 3166-1 numeric code), if the State has one.
    pub fn m49(&self) -> Option<u32> {
        isocountry::CountryCode::for_alpha3(self.as_str())
            .ok()
            .map(|c| c.numeric_id())
    }

    /// The State's English short name, or the code itself for training codes.
    pub fn name(&self) -> &str {
        match isocountry::CountryCode::for_alpha3(self.as_str()) {
            Ok(c) => c.name(),
            Err(_) => self.as_str(),
        }
    }
}

impl FromStr for StateCode {
    type Err = CodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let bytes: [u8; 3] = upper
            .as_bytes()
            .try_into()
            .map_err(|_| CodeError::Shape(s.to_string()))?;
        if !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(CodeError::Shape(s.to_string()));
        }
        if bytes[0] != b'X' && isocountry::CountryCode::for_alpha3(&upper).is_err() {
            return Err(CodeError::Unknown(s.to_string()));
        }
        Ok(StateCode(bytes))
    }
}

impl TryFrom<String> for StateCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<StateCode> for String {
    fn from(c: StateCode) -> String {
        c.as_str().to_string()
    }
}

impl fmt::Display for StateCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for StateCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The acronym of a regional body, donor or organisation (XRB, ECOWAS, UNODA...).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BodyCode(String);

impl BodyCode {
    /// A code known to be valid (upper-case letters, digits, dashes; 2 to 16 of them), for
    /// constants. Anything else is upper-cased and trimmed to fit.
    pub fn from_static(code: &str) -> BodyCode {
        let mut c: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .map(|c| c.to_ascii_uppercase())
            .take(16)
            .collect();
        while c.len() < 2 {
            c.push('X');
        }
        BodyCode(c)
    }

    /// The acronym.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BodyCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let ok = (2..=16).contains(&upper.len())
            && upper
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(CodeError::Body(s.to_string()));
        }
        Ok(BodyCode(upper))
    }
}

impl TryFrom<String> for BodyCode {
    type Error = CodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BodyCode> for String {
    fn from(c: BodyCode) -> String {
        c.0
    }
}

impl fmt::Display for BodyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BodyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of participant a body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    /// A regional or sub-regional organisation (ECOWAS, SADC, RECSA...).
    Regional,
    /// A donor State agency or fund.
    Donor,
    /// The UN Secretariat (UNODA).
    Secretariat,
}

impl FromStr for BodyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "regional" => Ok(BodyKind::Regional),
            "donor" => Ok(BodyKind::Donor),
            "secretariat" => Ok(BodyKind::Secretariat),
            _ => Err(format!(
                "'{s}' is not a kind of body: use regional, donor or secretariat"
            )),
        }
    }
}

impl fmt::Display for BodyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyKind::Regional => "regional",
            BodyKind::Donor => "donor",
            BodyKind::Secretariat => "secretariat",
        })
    }
}

/// Whom a node acts for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Participant {
    /// A State (its ministries, its national point of contact).
    State {
        /// The State's code.
        code: StateCode,
    },
    /// A regional body, donor or the Secretariat.
    Body {
        /// The body's acronym.
        code: BodyCode,
        /// What it is.
        kind: BodyKind,
    },
}

impl Participant {
    /// Who owns this participant's documents and delegates its nodes.
    pub fn principal(&self) -> Principal {
        Principal::from(self)
    }

    /// The code as text: a State code or a body acronym.
    pub fn code(&self) -> String {
        match self {
            Participant::State { code } => code.to_string(),
            Participant::Body { code, .. } => code.to_string(),
        }
    }

    /// The State this node speaks for, if it is a State's node.
    pub fn state(&self) -> Option<StateCode> {
        match self {
            Participant::State { code } => Some(*code),
            Participant::Body { .. } => None,
        }
    }
}

impl fmt::Display for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Participant::State { code } => write!(f, "State {code}"),
            Participant::Body { code, kind } => write!(f, "{kind} body {code}"),
        }
    }
}

/// Whoever owns documents and delegates nodes to write them: a State, or a body (regional body,
/// donor, the Secretariat). Each has a key of its own, held by its first node, that signs
/// delegations; its documents are bound to that key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// A State.
    State(StateCode),
    /// A body.
    Body(BodyCode),
}

impl Principal {
    /// What a person calls the key of this principal.
    pub fn key_name(&self) -> &'static str {
        match self {
            Principal::State(_) => "State key",
            Principal::Body(_) => "body key",
        }
    }

    /// The code alone.
    pub fn code(&self) -> String {
        match self {
            Principal::State(s) => s.to_string(),
            Principal::Body(b) => b.to_string(),
        }
    }
}

impl From<&Participant> for Principal {
    fn from(p: &Participant) -> Principal {
        match p {
            Participant::State { code } => Principal::State(*code),
            Participant::Body { code, .. } => Principal::Body(code.clone()),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::State(s) => write!(f, "state:{s}"),
            Principal::Body(b) => write!(f, "body:{b}"),
        }
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Principal {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("state", code)) => Ok(Principal::State(code.parse()?)),
            Some(("body", code)) => Ok(Principal::Body(code.parse()?)),
            _ => Err(CodeError::Principal(s.to_string())),
        }
    }
}

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeId {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        NodeId(key.verifying_key().to_bytes())
    }

    #[test]
    fn node_id_round_trips_in_groups() {
        let id = sample();
        let text = id.to_string();
        assert_eq!(text.len(), 56 + 7);
        assert_eq!(text.split('-').count(), 8);
        assert_eq!(text.parse::<NodeId>(), Ok(id));
        assert_eq!(text.to_lowercase().parse::<NodeId>(), Ok(id));
        assert_eq!(text.replace('-', " ").parse::<NodeId>(), Ok(id));
    }

    #[test]
    fn node_id_catches_every_single_typo() {
        let text = sample().to_string().replace('-', "");
        for pos in 0..text.len() {
            for &c in ALPHABET {
                if text.as_bytes()[pos] == c {
                    continue;
                }
                let mut typo = text.clone().into_bytes();
                typo[pos] = c;
                let typo = String::from_utf8(typo).unwrap();
                assert!(
                    matches!(
                        typo.parse::<NodeId>(),
                        Err(NodeIdError::Checksum(_) | NodeIdError::NotAKey)
                    ),
                    "typo at {pos} to {} accepted",
                    c as char
                );
            }
        }
    }

    #[test]
    fn node_id_reports_length_and_characters() {
        let text = sample().to_string();
        assert_eq!(
            text[..text.len() - 1].parse::<NodeId>(),
            Err(NodeIdError::Length(55))
        );
        assert_eq!("ABC!".parse::<NodeId>(), Err(NodeIdError::Character('!')));
        let msg = NodeIdError::Checksum(2).to_string();
        assert!(msg.contains("mistyped"), "{msg}");
    }

    #[test]
    fn state_codes_are_checked_against_iso_3166() {
        assert_eq!("ken".parse::<StateCode>().unwrap().as_str(), "KEN");
        assert_eq!("KEN".parse::<StateCode>().unwrap().m49(), Some(404));
        assert!("XAA".parse::<StateCode>().unwrap().is_test());
        assert!(matches!(
            "QQQ".parse::<StateCode>(),
            Err(CodeError::Unknown(_))
        ));
        assert!(matches!(
            "KE".parse::<StateCode>(),
            Err(CodeError::Shape(_))
        ));
        assert!(matches!(
            "K3N".parse::<StateCode>(),
            Err(CodeError::Shape(_))
        ));
        assert!(matches!(
            "KENYA".parse::<StateCode>(),
            Err(CodeError::Shape(_))
        ));
    }

    #[test]
    fn body_codes() {
        assert_eq!("ecowas".parse::<BodyCode>().unwrap().as_str(), "ECOWAS");
        assert!("X".parse::<BodyCode>().is_err());
        assert!("A B".parse::<BodyCode>().is_err());
    }
}
