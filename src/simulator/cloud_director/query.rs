//! The pure parts of how Cloud Director answers lists: FIQL filters, pages, and the API version an
//! `Accept` header asks for.

use std::cmp::Ordering;

/// A FIQL filter as VCD takes it: terms `field<op>value` joined by `;` (AND) and `,` (OR, binding looser),
/// operators `==` (with `*` as a wildcard), `!=`, `=ge=`, `=gt=`, `=le=`, `=lt=`. Parentheses are not
/// supported (the emulator answers 400 for them).
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// Alternatives (OR) of conjunctions (AND).
    any_of: Vec<Vec<Term>>,
}

#[derive(Clone, Debug, PartialEq)]
struct Term {
    field: String,
    op: Op,
    value: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
}

impl Filter {
    /// Parses `filter`; `encoded` (`filterEncoded=true`) means each value is percent-encoded once more.
    pub fn parse(filter: &str, encoded: bool) -> Result<Filter, String> {
        if filter.contains('(') || filter.contains(')') {
            return Err(format!("unsupported filter '{filter}': parentheses are not supported"));
        }
        let any_of = filter
            .split(',')
            .map(|conjunction| {
                conjunction
                    .split(';')
                    .map(|term| Term::parse(term, encoded))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter { any_of })
    }

    /// Whether a record matches; `field` gives a record's value of a field (`None`: the record has none).
    pub fn matches<'a>(&self, field: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.any_of
            .iter()
            .any(|all| all.iter().all(|term| term.matches(field(&term.field))))
    }

    /// The fields the filter names, to refuse unknown ones.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.any_of.iter().flatten().map(|term| term.field.as_str())
    }
}

impl Term {
    fn parse(term: &str, encoded: bool) -> Result<Term, String> {
        const OPS: [(&str, Op); 6] = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("=ge=", Op::Ge),
            ("=gt=", Op::Gt),
            ("=le=", Op::Le),
            ("=lt=", Op::Lt),
        ];
        let (at, token, op) = OPS
            .iter()
            .filter_map(|(token, op)| term.find(token).map(|at| (at, *token, *op)))
            .min_by_key(|(at, _, _)| *at)
            .ok_or_else(|| format!("invalid filter term '{term}': expected field==value"))?;
        let field = term[..at].trim();
        let raw = &term[at + token.len()..];
        if field.is_empty() {
            return Err(format!("invalid filter term '{term}': no field"));
        }
        let value = if encoded { percent_decode(raw)? } else { raw.to_owned() };
        Ok(Term {
            field: field.to_owned(),
            op,
            value,
        })
    }

    fn matches(&self, actual: Option<&str>) -> bool {
        let Some(actual) = actual else {
            return self.op == Op::Ne;
        };
        match self.op {
            Op::Eq => wildcard_match(&self.value, actual),
            Op::Ne => !wildcard_match(&self.value, actual),
            Op::Ge => compare(actual, &self.value) != Ordering::Less,
            Op::Gt => compare(actual, &self.value) == Ordering::Greater,
            Op::Le => compare(actual, &self.value) != Ordering::Greater,
            Op::Lt => compare(actual, &self.value) == Ordering::Less,
        }
    }
}

/// Timestamps compare as instants (so `Z` and `+00:00` agree), numbers as numbers, the rest as text.
fn compare(actual: &str, wanted: &str) -> Ordering {
    if let (Ok(a), Ok(b)) = (actual.parse::<jiff::Timestamp>(), wanted.parse::<jiff::Timestamp>()) {
        return a.cmp(&b);
    }
    if let (Ok(a), Ok(b)) = (actual.parse::<f64>(), wanted.parse::<f64>()) {
        return a.partial_cmp(&b).unwrap_or(Ordering::Equal);
    }
    actual.cmp(wanted)
}

/// `==` with `*` matching any run of characters (case-sensitive, as VCD's names are).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("invalid percent-encoding in filter value '{text}'"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("filter value '{text}' is not UTF-8 once decoded"))
}

/// Page size when a client names none, and the most VCD returns per page.
pub const DEFAULT_PAGE_SIZE: usize = 25;
pub const MAX_PAGE_SIZE: usize = 128;

/// One page of a list.
#[derive(Clone, Debug, PartialEq)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    /// 1-based.
    pub page: usize,
    pub page_size: usize,
    pub total: usize,
    pub page_count: usize,
}

impl<T> PageOf<T> {
    pub fn has_next(&self) -> bool {
        self.page < self.page_count
    }
}

/// Cuts page `page` (1-based, default 1) of `page_size` (default 25, at most 128) out of `items`.
pub fn paginate<T>(items: Vec<T>, page: Option<&str>, page_size: Option<&str>) -> Result<PageOf<T>, String> {
    let page = match page {
        None => 1,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| format!("page must be a whole number of at least 1, not '{text}'"))?,
    };
    let page_size = match page_size {
        None => DEFAULT_PAGE_SIZE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|&s| s >= 1)
            .ok_or_else(|| format!("pageSize must be a whole number of at least 1, not '{text}'"))?
            .min(MAX_PAGE_SIZE),
    };
    let total = items.len();
    let page_count = total.div_ceil(page_size);
    let items = items.into_iter().skip((page - 1) * page_size).take(page_size).collect();
    Ok(PageOf {
        items,
        page,
        page_size,
        total,
        page_count,
    })
}

/// An API version the emulator serves, as listed in `/api/versions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiVersion {
    pub version: String,
    pub deprecated: bool,
}

/// Parses `--api-versions`: `37.0,38.0,36.3:deprecated`.
pub fn parse_versions(list: &str) -> Result<Vec<ApiVersion>, String> {
    let versions = list
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|item| {
            let (version, deprecated) = match item.split_once(':') {
                Some((version, "deprecated")) => (version, true),
                Some((_, flag)) => return Err(format!("unknown version flag '{flag}' in '{item}'")),
                None => (item, false),
            };
            if version_key(version).is_none() {
                return Err(format!("'{version}' is not an API version like 38.0"));
            }
            Ok(ApiVersion {
                version: version.to_owned(),
                deprecated,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if versions.is_empty() {
        return Err("--api-versions names no version".into());
    }
    Ok(versions)
}

/// Sorts versions numerically (`37.10` after `37.2`).
pub fn version_key(version: &str) -> Option<Vec<u32>> {
    version.split('.').map(|part| part.parse().ok()).collect()
}

/// What an `Accept` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Requested<'a> {
    /// A version the emulator serves.
    Served(&'a str),
    /// A version it does not serve, or none at all: VCD answers 406.
    NotAcceptable,
}

/// The version of the `Accept` header's `version=` parameters (every value must name a served one; a
/// header without any version is not acceptable, as on VCD).
pub fn requested_version<'a>(accept: &[&str], served: &'a [ApiVersion]) -> Requested<'a> {
    let mut found = None;
    for value in accept.iter().flat_map(|header| header.split(',')) {
        for param in value.split(';').skip(1) {
            let Some((key, version)) = param.split_once('=') else {
                continue;
            };
            if !key.trim().eq_ignore_ascii_case("version") {
                continue;
            }
            match served.iter().find(|v| v.version == version.trim()) {
                Some(v) => found = Some(v.version.as_str()),
                None => return Requested::NotAcceptable,
            }
        }
    }
    found.map_or(Requested::NotAcceptable, Requested::Served)
}

/// The message of VCD's 406, listing what is served, highest first.
pub fn not_acceptable_message(served: &[ApiVersion]) -> String {
    let mut versions: Vec<&ApiVersion> = served.iter().collect();
    versions.sort_by_key(|v| std::cmp::Reverse(version_key(&v.version)));
    let list: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
    format!(
        "The request has invalid accept header: Invalid API version requested. Supported API versions are: [{}]",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(fields: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn filters_combine_and_before_or_and_decode_values_when_asked() {
        let acme = [("name", "acme corp"), ("orgName", "acme")];
        let other = [("name", "other"), ("orgName", "beta")];
        let filter = Filter::parse("name==acme%20corp;orgName==acme,name==nobody", true).unwrap();
        assert!(filter.matches(record(&acme)));
        assert!(!filter.matches(record(&other)));
        // Not encoded: the value is taken as it is (the SDK sends `name%3D%3DvApp+Author`, decoded once
        // by the query string to `name==vApp Author`).
        assert!(Filter::parse("name==acme corp", false).unwrap().matches(record(&acme)));
        assert!(
            !Filter::parse("name==acme%20corp", false)
                .unwrap()
                .matches(record(&acme))
        );
        assert!(Filter::parse("name==ac*rp", false).unwrap().matches(record(&acme)));
        assert!(Filter::parse("name!=other", false).unwrap().matches(record(&acme)));
        assert!(Filter::parse("missing!=x", false).unwrap().matches(record(&acme)));
        assert!(!Filter::parse("missing==x", false).unwrap().matches(record(&acme)));
        assert_eq!(Filter::parse("name==a,orgName==b", false).unwrap().fields().count(), 2);
    }

    #[test]
    fn filters_compare_timestamps_as_instants() {
        let event = [("timestamp", "2026-11-30T10:00:00.000Z")];
        let window = Filter::parse(
            "timestamp=ge=2026-11-30T10:00:00Z;timestamp=lt=2026-11-30T11:00:00+00:00",
            false,
        )
        .unwrap();
        assert!(window.matches(record(&event)));
        let later = Filter::parse("timestamp=gt=2026-11-30T10:00:00Z", false).unwrap();
        assert!(!later.matches(record(&event)));
        let le = Filter::parse("timestamp=le=2026-11-30T10:00:00Z", false).unwrap();
        assert!(le.matches(record(&event)));
    }

    #[test]
    fn bad_filters_are_refused_with_the_reason() {
        assert!(
            Filter::parse("name", false)
                .unwrap_err()
                .contains("expected field==value")
        );
        assert!(Filter::parse("==x", false).unwrap_err().contains("no field"));
        assert!(Filter::parse("(name==a)", false).unwrap_err().contains("parentheses"));
        assert!(Filter::parse("name==%zz", true).unwrap_err().contains("percent"));
    }

    #[test]
    fn pages_count_from_one_and_cap_their_size() {
        let page = paginate((1..=30).collect(), None, None).unwrap();
        assert_eq!(
            (page.items.len(), page.total, page.page_count, page.page),
            (25, 30, 2, 1)
        );
        assert!(page.has_next());
        let last = paginate((1..=30).collect::<Vec<i32>>(), Some("2"), None).unwrap();
        assert_eq!(last.items, (26..=30).collect::<Vec<_>>());
        assert!(!last.has_next());
        let capped = paginate((1..=300).collect::<Vec<i32>>(), None, Some("1000")).unwrap();
        assert_eq!((capped.page_size, capped.items.len(), capped.page_count), (128, 128, 3));
        let beyond = paginate((1..=3).collect::<Vec<i32>>(), Some("5"), Some("2")).unwrap();
        assert!(beyond.items.is_empty());
        let empty = paginate(Vec::<i32>::new(), None, None).unwrap();
        assert_eq!((empty.total, empty.page_count), (0, 0));
        assert!(paginate(vec![1], Some("0"), None).is_err());
        assert!(paginate(vec![1], None, Some("x")).is_err());
    }

    #[test]
    fn the_accept_header_must_name_a_served_version() {
        let served = parse_versions("37.0,37.2,38.0,36.3:deprecated").unwrap();
        assert!(served[3].deprecated);
        assert_eq!(
            requested_version(&["application/*+xml;version=38.0"], &served),
            Requested::Served("38.0")
        );
        // The SDK's queries send two values with the same version.
        assert_eq!(
            requested_version(
                &[
                    "application/*+xml;version=37.0",
                    "vnd.vmware.vcloud.org+xml;version=37.0"
                ],
                &served
            ),
            Requested::Served("37.0")
        );
        assert_eq!(
            requested_version(&["application/json; version = 36.3"], &served),
            Requested::Served("36.3")
        );
        assert_eq!(
            requested_version(&["application/json;version=39.0"], &served),
            Requested::NotAcceptable
        );
        assert_eq!(
            requested_version(&["application/json"], &served),
            Requested::NotAcceptable
        );
        assert_eq!(requested_version(&[], &served), Requested::NotAcceptable);
        assert_eq!(
            not_acceptable_message(&served),
            "The request has invalid accept header: Invalid API version requested. Supported API versions are: \
             [38.0, 37.2, 37.0, 36.3]"
        );
    }

    #[test]
    fn version_lists_are_checked() {
        assert!(parse_versions("37.0,x").unwrap_err().contains("'x'"));
        assert!(parse_versions("37.0:old").unwrap_err().contains("unknown version flag"));
        assert!(parse_versions(" ").is_err());
        assert!(version_key("37.10") > version_key("37.2"));
    }
}
