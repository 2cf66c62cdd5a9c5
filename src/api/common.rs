//! Small types and patterns shared by several kinds: who a person is, what happens on deletion, and the
//! string shapes (names, service types, metrics, durations) the schema enforces.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A DNS label (RFC 1123): lower-case letters, digits and `-`, starting and ending with a letter or digit.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A DNS subdomain (RFC 1123): DNS labels joined by dots; the shape of most Kubernetes object names.
pub const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A service type or metric name: lower-case letters, digits, `-` and `.`, e.g. `compute` or `vcpu-hours`.
pub const IDENTIFIER: &str = r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$";

/// A duration as hours, minutes and seconds, in this order, each optional, e.g. `4h`, `1h30m`, `90s`.
pub const DURATION: &str = r"^([0-9]{1,5}h)?([0-9]{1,5}m)?([0-9]{1,5}s)?$";

/// What happens to what Navigator provisioned on the endpoint when the object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete it on the endpoint, then let the object go.
    #[default]
    Delete,
    /// Leave it on the endpoint, untouched, and only remove the Kubernetes object.
    Orphan,
}

/// Whether a subject is one person or a group of people.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum SubjectKind {
    /// One person, as the Kubernetes API server knows them (the user name of their credentials).
    #[default]
    User,
    /// A group, as the Kubernetes API server knows it (a group claim of the credentials).
    Group,
}

/// A person or a group of people, as the Kubernetes API server authenticates them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `User` for one person, `Group` for everyone in a group.
    pub kind: SubjectKind,
    /// The user or group name exactly as the Kubernetes API server authenticates it (this is what RoleBindings
    /// name), e.g. `jane@example.com` or `acme:operators`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// E-mail address, used to invite a user on the cloud endpoint and to reach them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(email, length(max = 254))]
    pub email: Option<String>,
}

/// How long a duration string such as `1h30m` lasts; `None` when it does not match [`DURATION`].
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    if text.is_empty() {
        return None;
    }
    let mut seconds: u64 = 0;
    let mut number = String::new();
    let mut last_unit = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let (rank, factor) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return None,
        };
        if number.is_empty() || number.len() > 5 || rank <= last_unit {
            return None;
        }
        seconds += number.parse::<u64>().ok()? * factor;
        number.clear();
        last_unit = rank;
    }
    number.is_empty().then(|| std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_as_the_schema_pattern_allows() {
        assert_eq!(parse_duration("4h"), Some(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        for bad in ["", "h", "4", "30m1h", "1d", "1h1h", "-1h", "1.5h", "123456h"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
